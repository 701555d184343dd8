/**
 * VP pixel padding prompts (compiler/methods/vp.ts) against the independent PyTorch reference
 * (tools/reference/method_vp.py → test/fixtures/method_vp.safetensors, fixture ViT, float64):
 * forward logits of inner, outer and outer without antialias, loss and gradients through both
 * training engines, the shrink's interpolation weights, and the fused uint8 export on the same
 * image. Then init distribution and parameter counts, the fused forms (inner = the bare backbone
 * with another pos_embed; outer = two extra MatMuls) against the unfused graph on real images,
 * compileTask end to end, a finite-difference check of the frame/shrink subgraph, and the
 * errors a bad option gets.
 */
import test from 'ava';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { PAD_NAMES, padFrame, padOf, resizeWeights, shrinkImage, shrinkMatrix, vpInner, vpOuter } from '../compiler/methods/vp.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { newOptimizerState, optimizerStep, type TrainableTensor } from '../compiler/train/optim.ts';
import { exportTask } from '../compiler/export/task.ts';
import { compareLogits, exportedLogits, referenceLogits } from '../compiler/export/verify-task.ts';
import { compileTask } from '../compiler/export/compile.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { makePartsSet } from '../compiler/data/parts.ts';
import { mulberry32 } from '../devices/rng.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { maxAbsDiff, type HostTensor } from '../compiler/ops/host-tensor.ts';
import type { PromptMethod } from '../compiler/methods/method.ts';
import { fixturePath, fixtureVit, relErr } from './helpers/fixtures.ts';
import { checkCase } from './helpers/grad-check.ts';
import { randn } from './helpers/random-vit.ts';

test.before(async () => {
  await initTf();
});

const ref = readSafetensors(fixturePath('method_vp.safetensors')).tensors;
const get = (k: string): HostTensor => {
  const t = ref.get(k);
  if (!t) throw new Error(`method_vp.safetensors lacks ${k}`);
  return t;
};
const C = 4;
const B = 4;
const { cfg: c0, sd } = fixtureVit();
const cfg = { ...c0, numClasses: C };
const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
const S = cfg.imgSize;
const P = 4; // round(30·32/224)
const D = cfg.embedDim;
const pixels = get('image').data; // [B, 3, S, S], 0..255
const labels = Int32Array.from(get('label').data);
// The normalised batch as the data pipeline makes it: fround((v/255 − μ)/σ).
const x = Float32Array.from(pixels, (v, i) => {
  const c = Math.floor(i / (S * S)) % 3;
  return (v / 255 - cfg.mean[c]!) / cfg.std[c]!;
});
const nhwc = new Uint8Array(B * S * S * 3);
pixels.forEach((v, i) => {
  const w = i % S;
  const h = Math.floor(i / S) % S;
  const c = Math.floor(i / (S * S)) % 3;
  const b = Math.floor(i / (3 * S * S));
  nhwc[((b * S + h) * S + w) * 3 + c] = v;
});

type Variant = 'inner' | 'outer' | 'outer_plain';
const methodOf = (v: Variant) => (v === 'inner' ? vpInner : vpOuter) as unknown as PromptMethod<Record<string, unknown>>;
const optionsOf = (v: Variant) => methodOf(v).resolveOptions(v === 'outer_plain' ? { antialias: false } : {});
function paramsOf(v: Variant): Map<string, HostTensor> {
  const src = v === 'inner' ? 'inner' : 'outer';
  const m = new Map<string, HostTensor>(PAD_NAMES.map((n) => [n, get(`${src}.${n}`)]));
  m.set('head.weight', get('head.weight'));
  m.set('head.bias', get('head.bias'));
  return m;
}
const engines = async (v: Variant) => {
  const common = { cfg, backbone, method: methodOf(v), options: optionsOf(v), params: paramsOf(v), numClasses: C, labelSmoothing: 0, seed: 0 };
  return { tfjs: new TfEngine({ ...common, backend: 'test' }), ort: await OrtEngine.create(common) };
};

test('the shrink is torch’s bilinear resize (align_corners=False), with and without antialias', (t) => {
  for (const [aa, key] of [[true, 'resize_aa'], [false, 'resize_plain']] as const) {
    const d = maxAbsDiff(resizeWeights(S - 2 * P, S, aa), get(key).data);
    t.log(`${key}: max |Δ| ${d.toExponential(2)}`);
    t.true(d <= 1e-6, key);
  }
  const M = shrinkMatrix(S, P, true);
  for (let r = 0; r < S; r++) {
    const sum = M.data.subarray(r * S, (r + 1) * S).reduce((a, b) => a + b, 0);
    t.true(r < P || r >= S - P ? sum === 0 : Math.abs(sum - 1) < 1e-6, `row ${r} sums to ${sum}`);
  }
});

for (const v of ['inner', 'outer', 'outer_plain'] as Variant[]) {
  test(`${v}: logits equal the PyTorch reference in both engines (≤ 1e-4)`, async (t) => {
    const e = await engines(v);
    const want = get(`${v}.logits`).data;
    const a = maxAbsDiff(e.tfjs.predict(x, B), want);
    const b = maxAbsDiff(await e.ort.predict(x, B), want);
    t.log(`max |Δlogit| tfjs ${a.toExponential(2)}, ort ${b.toExponential(2)}`);
    t.true(a <= 1e-4 && b <= 1e-4);
    e.tfjs.dispose();
    e.ort.dispose();
  });
}

for (const v of ['inner', 'outer'] as Variant[]) {
  test(`${v}: loss and gradients (strips and head) equal the PyTorch reference in both engines`, async (t) => {
    const e = await engines(v);
    const wantLoss = get(`${v}.loss`).data[0]!;
    for (const [name, r] of [['tfjs', e.tfjs.step(x, labels, 0)], ['ort', await e.ort.step(x, labels, 0)]] as const) {
      t.true(Math.abs(r.loss - wantLoss) <= 1e-5 * wantLoss, `${name}: loss ${r.loss} vs ${wantLoss}`);
      let worst = 0;
      for (const k of [...PAD_NAMES, 'head.weight', 'head.bias']) worst = Math.max(worst, relErr(r.grads.get(k)!, get(`${v}.grad.${k}`).data));
      t.log(`${name}: loss ${r.loss.toFixed(6)} vs ${wantLoss.toFixed(6)}, worst gradient ${worst.toExponential(2)}`);
      t.true(worst <= 1e-4, name);
    }
    e.tfjs.dispose();
    e.ort.dispose();
  });

  test(`${v}: the fused uint8 export on the reference image gives the reference logits`, async (t) => {
    const bytes = exportTask({ cfg, backbone, method: methodOf(v), options: optionsOf(v), params: paramsOf(v) });
    const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
    const r = await s.run({ image: new ort.Tensor('uint8', nhwc, [B, S, S, 3]) });
    await s.release();
    const d = maxAbsDiff(r.logits!.data as Float32Array, get(`${v}.logits`).data);
    t.log(`max |Δlogit| ${d.toExponential(2)}`);
    t.true(d <= 1e-4);
  });
}

test('init: strips N(0, 1) in normalised units (VP’s torch.randn; inner\'s default), black (outer\'s default) or zeros; head N(0, 2/C); 3·(S² − (S−2p)²) prompt values', async (t) => {
  for (const m of [vpInner, vpOuter]) {
    const params = await m.init({ cfg, numClasses: C, backbone, rng: mulberry32(7) }, m.resolveOptions({ init: 'normal' }));
    t.deepEqual([...params.keys()].sort(), ['head.bias', 'head.weight', 'pad_down', 'pad_left', 'pad_right', 'pad_up']);
    t.deepEqual(params.get('pad_up')!.shape, [1, 3, P, S]);
    t.deepEqual(params.get('pad_left')!.shape, [1, 3, S - 2 * P, P]);
    const strips = PAD_NAMES.flatMap((n) => [...params.get(n)!.data]);
    t.is(strips.length, 3 * (S * S - (S - 2 * P) ** 2)); // 1,344
    t.is([...params.values()].reduce((a, p) => a + p.data.length, 0), 1344 + C * D + C);
    const mean = strips.reduce((a, b) => a + b, 0) / strips.length;
    const variance = strips.reduce((a, b) => a + (b - mean) ** 2, 0) / strips.length;
    t.true(Math.abs(mean) < 0.1 && Math.abs(variance - 1) < 0.12, `${m.name}: mean ${mean}, variance ${variance}`);
    const h = params.get('head.weight')!.data;
    const hv = h.reduce((a, b) => a + b * b, 0) / h.length;
    t.true(Math.abs(hv - 2 / C) < 0.15 * (2 / C), `head variance ${hv}`);
    t.true(params.get('head.bias')!.data.every((b) => b === 0));
  }
  // Defaults: inner starts as VP does (N(0, 1)), outer as EVP does (a black border).
  t.is(vpInner.resolveOptions({}).init, 'normal');
  t.is(vpOuter.resolveOptions({}).init, 'black');
  const zero = await vpInner.init({ cfg, numClasses: C, backbone, rng: mulberry32(7) }, vpInner.resolveOptions({ init: 'zeros' }));
  t.true(zero.get('pad_up')!.data.every((v) => v === 0));
  const black = await vpOuter.init({ cfg, numClasses: C, backbone, rng: mulberry32(7) }, vpOuter.resolveOptions({ init: 'black' }));
  const left = black.get('pad_left')!; // [1, 3, S−2p, p]: channel c is the c-th third
  for (let c = 0; c < 3; c++) t.true(left.data.subarray((c * left.data.length) / 3, ((c + 1) * left.data.length) / 3).every((v) => Math.abs(v + cfg.mean[c]! / cfg.std[c]!) < 1e-6));
});

test('frame width: VP’s 30 px at 224 (69,840 values), scaled to the input, at least 1; a frame with no image left is refused', (t) => {
  const o = vpInner.resolveOptions({});
  t.is(padOf('vp-inner', { imgSize: 224 }, o), 30);
  t.is(3 * (224 ** 2 - 164 ** 2), 69840);
  t.is(padOf('vp-inner', { imgSize: 32 }, o), 4);
  t.is(padOf('vp-inner', { imgSize: 4 }, o), 1);
  t.is(padOf('vp-inner', { imgSize: 32 }, vpInner.resolveOptions({ padSize: 2 })), 2);
  t.throws(() => padOf('vp-outer', { imgSize: 32 }, vpOuter.resolveOptions({ padSize: 16 })), { message: /vp-outer: method\.options\.padSize 16 leaves no image inside a 32×32 input; use at most 15/ });
  t.throws(() => vpInner.resolveOptions({ antialias: true } as never), { message: /antialias/ });
  t.throws(() => vpOuter.resolveOptions({ padSize: 0 }));
  t.true(METHODS['vp-inner'] === (vpInner as never) && METHODS['vp-outer'] === (vpOuter as never));
});

test('fused inner is the bare backbone with another pos_embed; fused outer adds only the two shrink MatMuls; both equal the unfused graph on real images', async (t) => {
  const set = await makePartsSet({ perClass: 20, size: 32, seed: 5 });
  const bare = summarizeModel(exportTask({ cfg, backbone, method: METHODS.linear as never, options: {}, params: paramsOf('inner') }));
  for (const v of ['inner', 'outer'] as Variant[]) {
    // Prompts larger than their init, so a wrong fold cannot hide.
    const params = paramsOf(v);
    for (const n of PAD_NAMES) params.set(n, { shape: params.get(n)!.shape, data: randn([...params.get(n)!.shape], 3, 21) });
    const task = { cfg, backbone, method: methodOf(v), options: optionsOf(v), params };
    const fused = exportTask(task);
    const g = summarizeModel(fused);
    t.false(g.inputs.some((i) => i.name !== 'image'));
    const extra = v === 'inner' ? {} : { MatMul: 2, Transpose: 2 };
    const expected = { ...bare.opCounts };
    for (const [op, n] of Object.entries(extra)) expected[op] = (expected[op] ?? 0) + n;
    t.deepEqual(g.opCounts, expected, v);
    const reference = referenceLogits(task, set);
    const labels = set.samples.map((s) => s.label);
    const f = compareLogits(reference, await exportedLogits(fused, set), labels, C);
    const n = compareLogits(reference, await exportedLogits(exportTask(task, { form: 'naive' }), set), labels, C);
    t.log(`${v}: fused max |Δlogit| ${f.maxAbsDiff.toExponential(2)}, top-1 agreement ${f.top1Agreement}; naive ${n.maxAbsDiff.toExponential(2)}`);
    t.true(f.maxAbsDiff <= 1e-4 && n.maxAbsDiff <= 1e-4);
    t.is(f.top1Agreement, 1);
  }
});

test('compileTask trains, fuses and verifies both variants (tiny parts task)', async (t) => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'ep-vp-'));
  for (const name of ['vp-inner', 'vp-outer']) {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `name: tiny-${name}
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: parts, perClass: 8, size: 32, seed: 1, valFraction: 0.25 }
method: { name: ${name} }
recipe: { epochs: 1, batchSize: 8, warmupEpochs: 0 }
engine: ort
gates: { minTop1: 0 }
output: { dir: out-${name} }
`,
    );
    const r = await compileTask({ configFile: file, precisions: ['fp32'], maxDropPt: 100, progress: makeProgress('none') });
    t.is(r.manifest.method.name, name);
    t.true(r.results[0]!.accepted && r.results[0]!.verification.maxAbsDiff <= 1e-4, JSON.stringify(r.results[0]!.verification));
  }
});

test('a few AdamW steps on one batch lower the loss in both engines', async (t) => {
  for (const v of ['inner', 'outer'] as Variant[]) {
    const e = await engines(v);
    for (const [name, engine] of [['tfjs', e.tfjs], ['ort', e.ort]] as const) {
      const params: TrainableTensor[] = [...paramsOf(v)].map(([k, h]) => ({ name: k, shape: [...h.shape], value: Float32Array.from(h.data), decay: false }));
      engine.setParams(new Map(params.map((p) => [p.name, p.value])));
      const state = newOptimizerState();
      const losses: number[] = [];
      for (let s = 0; s < 5; s++) {
        const r = await engine.step(x, labels, s);
        losses.push(r.loss);
        optimizerStep({ kind: 'adamw', lr: 0.05, scaleLrByBatch: false, momentum: 0, weightDecay: 0, betas: [0.9, 0.999] }, state, params, r.grads, 0.05);
        engine.setParams(new Map(params.map((p) => [p.name, p.value])));
      }
      t.log(`${v} ${name}: ${losses.map((l) => l.toFixed(3)).join(' → ')}`);
      t.true(losses.at(-1)! < 0.8 * losses[0]!, `${v} ${name}`);
    }
    e.tfjs.dispose();
    e.ort.dispose();
  }
});

test('autodiff through the frame, the shrink and the patch projection matches finite differences (float64) and tf', async (t) => {
  const s = 8;
  const p = 2;
  const m = shrinkMatrix(s, p, true);
  const r = await checkCase({
    name: 'VP frame + shrink + patchify',
    inputs: [
      { kind: 'c', shape: [2, 3, s, s] },
      { kind: 'p', shape: [1, 3, p, s] },
      { kind: 'p', shape: [1, 3, p, s] },
      { kind: 'p', shape: [1, 3, s - 2 * p, p] },
      { kind: 'p', shape: [1, 3, s - 2 * p, p] },
      { kind: 'w', shape: [5, 3 * 4 * 4], std: 0.2 },
    ],
    build: (o, [img, ...rest]) => {
      const frame = padFrame(o, rest.slice(0, 4), s, p);
      const xin = o.add(shrinkImage(o, img!, m, false), frame);
      const patches = o.reshape(o.transpose(o.reshape(xin, [0, 3, 2, 4, 2, 4]), [0, 2, 4, 1, 3, 5]), [0, 4, 48]);
      return o.linear(patches, rest[4]!);
    },
  });
  t.log(`fd ${r.fd.toExponential(2)}, ort ${r.ort.toExponential(2)}, tf ${r.tf.toExponential(2)}`);
  t.true(r.fd <= 1e-6 && r.ort <= 1e-4 && r.tf <= 1e-4);
});
