/**
 * Every registered method on the fixture backbone: forward shape, trainable-tensor count,
 * initial distributions (VPT: U(−v, v) with v = sqrt(6/(3p²+D)); head: N(0, 2/C)), that
 * training mode only changes what dropout touches, and that gradients reach exactly the
 * trainable tensors.
 */
import test from 'ava';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { mulberry32 } from '../devices/rng.ts';
import type { HostTensor } from '../compiler/ops/host-tensor.ts';
import { fixtureVit } from './helpers/fixtures.ts';
import { randn } from './helpers/random-vit.ts';
import { randomImageSampler } from './helpers/image-sample.ts';

test.before(async () => {
  await initTf();
});

const C = 4;
const B = 3;
const { cfg: cfg0, sd } = fixtureVit();
const cfg = { ...cfg0, numClasses: C };
const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
const count = (m: Map<string, HostTensor>) => [...m.values()].reduce((s, t) => s + t.data.length, 0);
const D = cfg.embedDim;
const L = cfg.depth;

const expected: Record<string, { prompts: Record<string, unknown>; params: number }> = {
  linear: { prompts: {}, params: C * D + C },
  full: { prompts: {}, params: [...backbone.values()].reduce((s, t) => s + t.data.length, 0) + C * D + C },
  'vpt-shallow': { prompts: { prompts: 5 }, params: 5 * D + C * D + C },
  'vpt-deep': { prompts: { prompts: 5 }, params: L * 5 * D + C * D + C },
  // A learnable frame of width p = round(30·32/224) = 4 on every channel: 3·(S² − (S − 2p)²) pixels.
  'vp-inner': { prompts: {}, params: 3 * (32 * 32 - 24 * 24) + C * D + C },
  'vp-outer': { prompts: {}, params: 3 * (32 * 32 - 24 * 24) + C * D + C },
  // r 4, default b2p {0, 1, 2} at depth 3 (two deep maps): ppt, lifts, gates, 3 cross-blocks (sa2vpParamCount).
  sa2vp: { prompts: { interDim: 4 }, params: 17 * 4 + 3 * (4 * D + D) + 2 * 17 * 4 + 2 * D + L * (2 * D + (D * 4 + 4) + (4 * D + D)) + C * D + C },
  'spt-shallow': { prompts: { prompts: 5, sampleSize: 8 }, params: 5 * D + C * D + C },
  'spt-deep': { prompts: { prompts: 5, sampleSize: 8 }, params: L * 5 * D + C * D + C },
  // p_len = min(10, C) proxies at the last block, N = 5 at the others; +bias adds cls_token and per block LN1 (2D), qkv.bias (3D), proj/fc2/norm2 biases (3D).
  'da-vpt': { prompts: { prompts: 5 }, params: C * D + (L - 1) * 5 * D + C * D + C },
  'da-vpt-bias': { prompts: { prompts: 5 }, params: C * D + (L - 1) * 5 * D + C * D + C + D + L * 8 * D },
};

async function initial(name: string) {
  const m = METHODS[name]!;
  const opts = m.resolveOptions(expected[name]!.prompts as never);
  const params = new Map<string, HostTensor>();
  for (const [k, t] of backbone) if (m.trainsBackbone(k, opts)) params.set(k, t);
  for (const [k, t] of await m.init({ cfg, numClasses: C, backbone, rng: mulberry32(7), sample: randomImageSampler(cfg, C) }, opts)) params.set(k, t);
  return { m, opts, params };
}

for (const name of Object.keys(METHODS).filter((n) => !METHODS[n]!.requiresClip)) {
  test(`${name}: logits [B, C], ${expected[name]!.params} trainable values, gradients for exactly those`, async (t) => {
    const { m, opts, params } = await initial(name);
    t.is(count(params), expected[name]!.params);
    const engine = new TfEngine({ cfg, backbone, method: m as never, options: opts as never, params, numClasses: C, labelSmoothing: 0, seed: 1, backend: 'test' });
    const x = randn([B, 3, 32, 32], 1, 5);
    const logits = engine.predict(x, B);
    t.is(logits.length, B * C);
    t.true(logits.every(Number.isFinite));
    const y = Int32Array.of(0, 1, 3);
    // Methods with per-batch inputs (DA-VPT's proxy mask) get them from their initial state.
    const state = await m.initState?.({ cfg, numClasses: C, backbone, rng: mulberry32(7), sample: randomImageSampler(cfg, C), params }, opts);
    const r = engine.step(x, y, 0, state && m.batchInputs?.(y, state, opts));
    t.true(Number.isFinite(r.loss));
    t.deepEqual([...r.grads.keys()].sort(), [...params.keys()].sort());
    for (const [k, g] of r.grads) t.true(g.some((v) => v !== 0), `zero gradient for ${k}`);
    engine.dispose();
  });
}

test('VPT init: prompts U(−v, v) with v = sqrt(6/(3p²+D)), head N(0, 2/C), bias 0', async (t) => {
  const { params } = await initial('vpt-deep');
  const v = Math.sqrt(6 / (3 * 8 * 8 + D));
  const p = params.get('deep_prompt_embeddings')!;
  t.deepEqual(p.shape, [L - 1, 5, D]);
  const max = Math.max(...p.data.map(Math.abs));
  t.true(max <= v && max > 0.95 * v, `max |p| ${max} vs bound ${v}`);
  const mean = p.data.reduce((s, x) => s + x, 0) / p.data.length;
  const variance = p.data.reduce((s, x) => s + x * x, 0) / p.data.length;
  t.true(Math.abs(mean) < 0.05 * v);
  t.true(Math.abs(variance - (v * v) / 3) < 0.1 * ((v * v) / 3)); // U(−v, v) has variance v²/3
  const h = params.get('head.weight')!.data;
  const hv = h.reduce((s, x) => s + x * x, 0) / h.length;
  t.true(Math.abs(hv - 2 / C) < 0.15 * (2 / C), `head variance ${hv}`);
  t.true(params.get('head.bias')!.data.every((b) => b === 0));
});

test('VPT-deep replaces prompts per layer: changing layer-2 prompts changes logits, eval is deterministic', async (t) => {
  const { m, opts, params } = await initial('vpt-deep');
  const mk = (p: Map<string, HostTensor>) => new TfEngine({ cfg, backbone, method: m as never, options: opts as never, params: p, numClasses: C, labelSmoothing: 0, seed: 1, backend: 'test' });
  const x = randn([B, 3, 32, 32], 1, 9);
  const a = mk(params);
  const l1 = a.predict(x, B);
  t.deepEqual([...a.predict(x, B)], [...l1]);
  const deep = params.get('deep_prompt_embeddings')!;
  const changed = Float32Array.from(deep.data);
  // Layer 2's prompts only; a random change (a constant shift would vanish in LayerNorm).
  const noise = randn([5 * D], 0.5, 11);
  for (let i = 0; i < 5 * D; i++) changed[5 * D + i] = changed[5 * D + i]! + noise[i]!;
  const b = mk(new Map([...params, ['deep_prompt_embeddings', { shape: deep.shape, data: changed }]]));
  t.true(Math.max(...b.predict(x, B).map((v, i) => Math.abs(v - l1[i]!))) > 1e-4);
  a.dispose();
  b.dispose();
});
