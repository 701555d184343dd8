/**
 * SA2VP (compiler/methods/sa2vp.ts) against docs/spec/sa2vp.md and the independent PyTorch reference
 * tools/reference/method_sa2vp.py (fixture ViT, r 4, b2p {0, 2}, add_scale 0.5, explicit
 * per-token 3×3 key lists): parameter count (and the spec's ViT-B/16 totals by formula),
 * initial distributions, the local-attention mask, forward parity of logits and logits_p,
 * the 0.8/0.2 loss and its gradients in both engines, and the export against the training graph.
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { bindVit } from '../compiler/backbones/vit.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { b2pLayersOf, neighbourhoodMask, sa2vp, sa2vpForward, sa2vpParamCount, type Sa2vpOptions } from '../compiler/methods/sa2vp.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { exportTask } from '../compiler/export/task.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { mulberry32 } from '../devices/rng.ts';
import { makePartsSet } from '../compiler/data/parts.ts';
import { preprocessFor, toBatch } from '../compiler/data/transforms.ts';
import type { HostTensor } from '../compiler/ops/host-tensor.ts';
import { fixturePath, fixtureVit, relErr } from './helpers/fixtures.ts';

test.before(async () => {
  await initTf();
});

const C = 4;
const { cfg: c0, sd } = fixtureVit();
const cfg = { ...c0, numClasses: C };
const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
const D = cfg.embedDim;
const T1 = 17; // 4×4 grid + CLS
const ref = readSafetensors(fixturePath('method_sa2vp.safetensors')).tensors;
const get = (k: string) => ref.get(k) ?? (() => { throw new Error(`fixture lacks ${k}`); })();
const refParams = new Map([...ref].filter(([k]) => k.startsWith('param.')).map(([k, v]) => [k.slice(6), v]));
// The reference's configuration; dropout off (its outputs are eval semantics).
const refOpts = sa2vp.resolveOptions({ interDim: 4, b2pLayers: [0, 2], addScale: 0.5, dropout: 0 });
const count = (m: Map<string, HostTensor>) => [...m.values()].reduce((s, t) => s + t.data.length, 0);
const absMax = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('parameter count: formula = init on the fixture, and docs/spec/sa2vp.md ViT-B/16 totals (372,912 at r 16; 202,200 at r 8; 714,336 at r 32)', (t) => {
  const vitB = (r: number) => sa2vpParamCount({ tokens: 197, dim: 768, depth: 12, interDim: r, deepMaps: 2 });
  t.deepEqual([16, 8, 32].map(vitB), [372_912, 202_200, 714_336]);
  const opts = sa2vp.resolveOptions({ interDim: 4, b2pLayers: [0, 2] });
  const params = sa2vp.init({ cfg, numClasses: C, backbone, rng: mulberry32(1) }, opts) as Map<string, HostTensor>;
  t.is(count(params), sa2vpParamCount({ tokens: T1, dim: D, depth: 3, interDim: 4, deepMaps: 1 }) + C * D + C);
  // The shipped backbone's default: r 8, b2p {0, 2, 4} (official {0, 4, 8} of 12 scaled to 6).
  const dflt = sa2vp.resolveOptions({});
  t.deepEqual(b2pLayersOf(dflt, 6), [0, 2, 4]);
  t.is(dflt.interDim, 8);
  t.is(sa2vpParamCount({ tokens: 65, dim: 96, depth: 6, interDim: 8, deepMaps: 2 }), 15_336);
});

test('bad b2p layers are refused naming the option', (t) => {
  const o = sa2vp.resolveOptions({ b2pLayers: [0, 3] });
  t.throws(() => sa2vp.init({ cfg, numClasses: C, backbone, rng: mulberry32(1) }, o), { message: /method\.options\.b2pLayers \[0,3\]: expected distinct layer indices in \[0, 3\)/ });
  t.throws(() => sa2vp.resolveOptions({ interDim: 0 }));
});

test('init: ppt/deep_ppt N(0, 0.02²), Xavier-uniform lifts and Mlp_small, biases ~1e-6, cross_conv N(0, 0.02²), LN 1/0, head N(0, 0.02²) bias 0', (t) => {
  const bigCfg = { ...cfg, depth: 3 };
  const p = sa2vp.init({ cfg: bigCfg, numClasses: C, backbone, rng: mulberry32(5) }, sa2vp.resolveOptions({ interDim: 16, b2pLayers: [0, 1, 2] })) as Map<string, HostTensor>;
  const std = (k: string) => Math.sqrt(p.get(k)!.data.reduce((s, v) => s + v * v, 0) / p.get(k)!.data.length);
  const max = (k: string) => Math.max(...p.get(k)!.data.map(Math.abs));
  t.deepEqual(p.get('ppt')!.shape, [1, T1, 16]);
  t.deepEqual(p.get('deep_ppt')!.shape, [2, 1, T1, 16]);
  t.deepEqual(p.get('cross_conv')!.shape, [2, D]);
  for (const k of ['ppt', 'deep_ppt', 'cross_conv', 'head.weight']) t.true(Math.abs(std(k) - 0.02) < 0.15 * 0.02, `${k} std ${std(k)}`);
  for (const [k, fanIn, fanOut] of [['ppt_proj.weight', 16, D], ['deep_proj.1.weight', 16, D], ['cross_attn.2.ffn.fc1.weight', D, 16], ['cross_attn.0.ffn.fc2.weight', 16, D]] as const) {
    const bound = Math.sqrt(6 / (fanIn + fanOut));
    t.deepEqual(p.get(k)!.shape, [fanOut, fanIn]);
    t.true(max(k) <= bound && max(k) > 0.95 * bound, `${k} max ${max(k)} vs ${bound}`);
    t.true(Math.abs(std(k) - bound / Math.sqrt(3)) < 0.1 * (bound / Math.sqrt(3)), `${k} std`);
  }
  for (const k of ['ppt_proj.bias', 'deep_proj.0.bias', 'cross_attn.1.ffn.fc1.bias']) t.true(max(k) < 6e-6 && max(k) > 0, `${k} max ${max(k)}`);
  t.true(p.get('cross_attn.1.ffn_norm.weight')!.data.every((v) => v === 1));
  t.true(p.get('cross_attn.1.ffn_norm.bias')!.data.every((v) => v === 0));
  t.true(p.get('head.bias')!.data.every((v) => v === 0));
});

test('neighbourhood mask: CLS row attends to all; corner 4, edge 6, inside 9 patch keys, never CLS (8×8 grid and the reference 4×4)', (t) => {
  const g = 8;
  const m = neighbourhoodMask(g);
  const T = g * g + 1;
  const keys = Array.from({ length: T }, (_, q) => m.data.subarray(q * T, (q + 1) * T).filter((v) => v === 0).length);
  t.is(keys[0], T);
  const at = (r: number, c: number) => keys[1 + r * g + c];
  t.deepEqual([at(0, 0), at(0, 7), at(7, 0), at(7, 7)], [4, 4, 4, 4]);
  t.deepEqual([at(0, 3), at(7, 5), at(2, 0), at(6, 7)], [6, 6, 6, 6]);
  t.deepEqual([at(1, 1), at(4, 5), at(6, 6)], [9, 9, 9]);
  t.true(Array.from({ length: T - 1 }, (_, q) => m.data[(q + 1) * T]).every((v) => v < -1e3), 'a patch query sees the CLS key');
  // Patch (2, 3) sees exactly rows 1–3 × columns 2–4.
  const row = m.data.subarray((1 + 2 * g + 3) * T, (2 + 2 * g + 3) * T);
  const seen = [...row].flatMap((v, k) => (v === 0 ? [[Math.floor((k - 1) / g), (k - 1) % g]] : []));
  t.deepEqual(seen, [1, 2, 3].flatMap((r) => [2, 3, 4].map((c) => [r, c])));
  const m4 = neighbourhoodMask(4);
  t.deepEqual(Array.from({ length: T1 }, (_, q) => m4.data.subarray(q * T1, (q + 1) * T1).filter((v) => v === 0).length), [...get('mask_keys').data]);
});

function tfForward(params: Map<string, HostTensor>, opts: Sa2vpOptions, x: Float32Array, B: number, needPrompt: boolean, mode: 'eval' | 'export' = 'eval') {
  const ops = new TfOps();
  const w = bindVit(ops, cfg, backbone);
  w.head = { w: ops.weight('head.weight', params.get('head.weight')!), b: ops.weight('head.bias', params.get('head.bias')!) };
  const out = tf.tidy(() => {
    const r = sa2vpForward({ ops, cfg, w, param: (n) => ops.param(n, params.get(n)!), mode }, tf.tensor(x, [B, 3, 32, 32]), opts, needPrompt);
    return [r.logits, ...(r.logitsP ? [r.logitsP] : [])];
  });
  const data = out.map((t) => t.dataSync() as Float32Array);
  tf.dispose(out);
  ops.dispose();
  return data;
}

test('forward parity with the PyTorch reference: logits and logits_p ≤ 1e-4; the CLS-trimmed export path gives the same logits', (t) => {
  const x = get('input').data;
  const [logits, logitsP] = tfForward(refParams, refOpts, x, 2, true) as [Float32Array, Float32Array];
  const [trimmed] = tfForward(refParams, refOpts, x, 2, false, 'export') as [Float32Array];
  const dl = absMax(logits, get('logits').data);
  const dp = absMax(logitsP, get('logits_p').data);
  t.log(`max |Δ| logits ${dl.toExponential(2)}, logits_p ${dp.toExponential(2)}, trimmed ${absMax(trimmed, logits).toExponential(2)}`);
  t.true(dl <= 1e-4 && dp <= 1e-4);
  t.true(absMax(trimmed, logits) <= 1e-5);
  // The prompt pathway matters: logits_p differ from logits by far more than the tolerance.
  t.true(absMax(logits, logitsP) > 0.1);
});

const engineInput = () => ({ cfg, backbone, method: sa2vp as never, options: refOpts as never, params: refParams, numClasses: C, labelSmoothing: 0, seed: 1 });

test('loss 0.8·CE(logits) + 0.2·CE(logits_p) and its gradients: tfjs and ort engines both match the reference (≤ 1e-4 relative)', async (t) => {
  const x = get('input').data;
  const y = Int32Array.from(get('y').data);
  const tfe = new TfEngine({ ...engineInput(), backend: 'test' });
  const oe = await OrtEngine.create(engineInput());
  const a = tfe.step(x, y, 0);
  const b = await oe.step(x, y, 0);
  const want = get('loss').data[0]!;
  t.true(Math.abs(a.loss - want) <= 1e-5 * want && Math.abs(b.loss - want) <= 1e-5 * want, `loss tfjs ${a.loss} ort ${b.loss} ref ${want}`);
  t.deepEqual([...a.grads.keys()].sort(), [...refParams.keys()].sort());
  t.deepEqual([...b.grads.keys()].sort(), [...refParams.keys()].sort());
  let worst = { tf: 0, ort: 0, between: 0 };
  for (const k of refParams.keys()) {
    const g = get(`grad.${k}`).data;
    worst = { tf: Math.max(worst.tf, relErr(a.grads.get(k)!, g)), ort: Math.max(worst.ort, relErr(b.grads.get(k)!, g)), between: Math.max(worst.between, relErr(b.grads.get(k)!, a.grads.get(k)!)) };
  }
  t.log(`worst relative gradient error: tfjs ${worst.tf.toExponential(2)}, ort ${worst.ort.toExponential(2)}, ort vs tfjs ${worst.between.toExponential(2)}`);
  t.true(worst.tf <= 1e-4 && worst.ort <= 1e-4 && worst.between <= 1e-4);
  // Eval logits (the trimmed path) agree between engines too.
  t.true(relErr(await oe.predict(x, 2), tfe.predict(x, 2)) <= 1e-5);
  tfe.dispose();
  oe.dispose();
});

test('dropout while training: the ort graph draws masks for P₀, every cross-attention output and Mlp_small; eval is deterministic', async (t) => {
  const oe = await OrtEngine.create({ ...engineInput(), options: { ...refOpts, dropout: 0.1 } as never });
  // 1 (P₀) + 3 per layer (attention output, Mlp_small hidden, Mlp_small output) × 3 layers.
  t.true(oe.notes[0]!.includes('10 dropout mask(s)'), oe.notes[0]);
  const x = get('input').data;
  const y = Int32Array.from(get('y').data);
  const a = await oe.step(x, y, 1);
  const b = await oe.step(x, y, 2);
  t.true(relErr(b.grads.get('ppt')!, a.grads.get('ppt')!) > 1e-3);
  t.deepEqual([...(await oe.predict(x, 2))], [...(await oe.predict(x, 2))]);
  oe.dispose();
});

test('export: fused (uint8 NHWC) equals the training graph ≤ 1e-4 with weight-only parts folded; the shared form agrees', async (t) => {
  const set = await makePartsSet({ perClass: 2, size: 32, seed: 4 });
  const B = 8;
  const images = new Uint8Array(B * 32 * 32 * 3);
  set.samples.slice(0, B).forEach((s, i) => images.set(s.image, i * s.image.length));
  const x = toBatch(set.samples.slice(0, B), preprocessFor(cfg)).x;
  const [want] = tfForward(refParams, refOpts, x, B, false) as [Float32Array];
  const task = { cfg, backbone, method: METHODS.sa2vp as never, options: refOpts as Record<string, unknown>, params: refParams };
  const fused = exportTask(task, { form: 'fused' });
  const shared = exportTask(task, { form: 'shared' });
  const run = async (bytes: Uint8Array) => {
    const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
    const feeds: Record<string, ort.Tensor> = { image: new ort.Tensor('uint8', images, [B, 32, 32, 3]) };
    for (const n of s.inputNames.filter((n) => n !== 'image')) feeds[n] = new ort.Tensor('float32', refParams.get(n)!.data, [...refParams.get(n)!.shape]);
    const out = (await s.run(feeds)).logits!.data as Float32Array;
    await s.release();
    return { out, inputs: s.inputNames };
  };
  const f = await run(fused);
  const sh = await run(shared);
  t.deepEqual(f.inputs, ['image']);
  t.log(`fused ${absMax(f.out, want).toExponential(2)}, shared ${absMax(sh.out, want).toExponential(2)}`);
  t.true(absMax(f.out, want) <= 1e-4);
  t.true(absMax(sh.out, want) <= 1e-4);
  // Folding: the fused graph runs no LayerNorm on constants. Per layer it normalises H for its
  // block (norm1, norm2) and the cross-block (LN1 of H, ffn_norm), and P likewise except where P
  // is still constant (layer 0: P₀ and Block₀(P₀); the deep map's block at layer 2); the last
  // layer runs only H's block and the cross-block on P (p2b not here: layer 2 is b2p → no P work).
  const ln = (b: Uint8Array) => summarizeModel(b).opCounts.LayerNormalization ?? 0;
  // Layer 0 (b2p, P constant): cross LN1(H) + ffn_norm + H block 2 = 4; layer 1 (p2b): cross
  // LN1(P), LN1(H), ffn_norm + P block 2 + H block 2 = 7; layer 2 (b2p, last, logits only): H block 2; final norm 1.
  t.is(ln(fused), 4 + 7 + 2 + 1, `fused LayerNormalization count ${ln(fused)}`);
  // Shared: P₀ is an input, so layer 0 also runs LN1(P₀) for the cross-attention and Block₀'s two
  // LayerNorms on P₀ at run time.
  t.is(ln(shared), ln(fused) + 3, `shared ${ln(shared)} vs fused ${ln(fused)}`);
});
