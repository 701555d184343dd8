/** Pure pieces of the trainer: optimiser updates (PyTorch semantics), schedules, metrics, report. */
import test from 'ava';
import { newOptimizerState, optimizerStep, optimizerTensors, optimizerFromTensors, type TrainableTensor } from '../compiler/train/optim.ts';
import { lrAt, scaledLr } from '../compiler/train/schedule.ts';
import { MetricAccumulator } from '../compiler/train/metrics.ts';
import { renderReport } from '../compiler/train/report.ts';
import type { OptimizerRecipe } from '../compiler/methods/method.ts';
import type { TrainState } from '../compiler/train/checkpoint.ts';
import type { RunFingerprint } from '../compiler/train/fingerprint.ts';
import { vptDeep } from '../compiler/methods/vpt.ts';

const sgd: OptimizerRecipe = { kind: 'sgd', lr: 0.1, scaleLrByBatch: false, momentum: 0.9, weightDecay: 0.01, betas: [0.9, 0.999] };
const adamw: OptimizerRecipe = { ...sgd, kind: 'adamw', weightDecay: 0.1 };
const param = (v: number[], decay = true): TrainableTensor => ({ name: 'p', shape: [v.length], value: Float32Array.from(v), decay });

test('SGD with momentum and coupled weight decay follows torch.optim.SGD', (t) => {
  const p = param([1, -2]);
  const s = newOptimizerState();
  const g = new Map([['p', Float32Array.of(0.5, 0.25)]]);
  optimizerStep(sgd, s, [p], g, 0.1);
  // g' = g + 0.01·x = [0.51, 0.23]; buf = g'; x -= 0.1·buf
  t.deepEqual([...p.value].map((v) => +v.toFixed(6)), [0.949, -2.023]);
  optimizerStep(sgd, s, [p], g, 0.1);
  // g' = [0.5 + 0.00949, 0.25 − 0.02023]; buf = 0.9·buf + g'
  const b0 = 0.9 * 0.51 + 0.50949;
  const b1 = 0.9 * 0.23 + 0.22977;
  t.true(Math.abs(p.value[0]! - (0.949 - 0.1 * b0)) < 1e-6);
  t.true(Math.abs(p.value[1]! - (-2.023 - 0.1 * b1)) < 1e-6);
});

test('weight decay is skipped for tensors marked decay=false', (t) => {
  const p = param([1], false);
  optimizerStep({ ...sgd, momentum: 0 }, newOptimizerState(), [p], new Map([['p', Float32Array.of(0)]]), 0.1);
  t.is(p.value[0], 1);
});

test('AdamW follows torch.optim.AdamW (decoupled decay, bias correction)', (t) => {
  const p = param([1]);
  const s = newOptimizerState();
  optimizerStep(adamw, s, [p], new Map([['p', Float32Array.of(0.5)]]), 0.01);
  // step 1: x·(1 − lr·wd) − lr·m̂/(√v̂ + ε), m̂ = g, v̂ = g² → 0.999 − 0.01
  t.true(Math.abs(p.value[0]! - (0.999 - 0.01 * (0.5 / (0.5 + 1e-8)))) < 1e-6);
  const round = optimizerFromTensors(optimizerTensors(s, [p]));
  t.is(round.step, 1);
  t.deepEqual([...round.m.get('p')!], [...s.m.get('p')!]);
});

test('a missing or mis-sized gradient names the tensor', (t) => {
  t.throws(() => optimizerStep(sgd, newOptimizerState(), [param([1, 2])], new Map([['p', Float32Array.of(1)]]), 0.1), { message: /gradient for "p" is 1 values, expected 2/ });
});

test('warmup from 0 then cosine to 0; VPT batch scaling', (t) => {
  const s = { baseLr: 1, warmup: 10, total: 100 };
  t.is(lrAt(s, 0), 0); // VPT quirk: epoch 0 runs at lr 0
  t.is(lrAt(s, 5), 0.5);
  t.is(lrAt(s, 10), 1);
  t.true(Math.abs(lrAt(s, 55) - 0.5) < 1e-12);
  t.true(lrAt(s, 100) < 1e-12);
  t.is(scaledLr(25, 128, true), 12.5);
  t.is(scaledLr(25, 128, false), 25);
});

test('metrics: top-1, per-class, confusion matrix, cross-entropy', (t) => {
  const m = new MetricAccumulator(3);
  m.add(Float32Array.of(2, 0, 0, 0, 2, 0, 0, 0, 2, 2, 0, 0), [0, 1, 1, 2]);
  const r = m.result();
  t.is(r.count, 4);
  t.is(r.top1, 0.5);
  t.deepEqual(r.perClass, [1, 0.5, 0]);
  t.deepEqual(r.confusion, [[1, 0, 0], [0, 1, 1], [1, 0, 0]]);
  const ce = (z: number[], y: number) => Math.log(z.reduce((p, v) => p + Math.exp(v), 0)) - z[y]!;
  t.true(Math.abs(r.loss - (ce([2, 0, 0], 0) + ce([0, 2, 0], 1) + ce([0, 0, 2], 1) + ce([2, 0, 0], 2)) / 4) < 1e-6);
});

test('the report is one self-contained page with both charts and the confusion matrix', (t) => {
  const fingerprint = {
    version: 1, method: { name: 'vpt-deep', options: { prompts: 4 } }, backbone: { arch: 'vit_micro_patch4_32', imgSize: 32, sha256: 'ab'.repeat(32), weights: 'w.safetensors' },
    data: { config: {}, kShot: null, sha256: 'cd'.repeat(32), classes: ['ok', 'dent'], trainImages: 8, valImages: 8 }, seed: 0, recipe: vptDeep.recipe(vptDeep.resolveOptions({})),
  } satisfies RunFingerprint;
  const state = {
    version: 2, fingerprint, name: 'r<1>', method: 'vpt-deep', options: { prompts: 4 }, classes: ['ok', 'dent'], arch: 'vit_micro_patch4_32', backboneSha256: 'ab'.repeat(32),
    engine: 'tfjs', backend: 'wasm', seed: 0, epoch: 2, stepInEpoch: 0, globalStep: 8, bestTop1: 0.75, bestEpoch: 2, epochsWithoutImprovement: 0,
    history: [1, 2].map((e) => ({ epoch: e, lr: 0.1, trainLoss: 1 / e, valLoss: 1.2 / e, valTop1: 0.5 + e / 8, perClass: [0.5, 1], imagesPerSec: 10, seconds: 1 })),
    lastConfusion: [[3, 1], [0, 4]], config: {}, createdAt: '', updatedAt: '',
  } satisfies TrainState;
  const html = renderReport(state);
  t.regex(html, /<h1>r&lt;1&gt;<\/h1>/);
  t.is((html.match(/<svg/g) ?? []).length, 2);
  t.regex(html, /75\.00 %/);
  t.regex(html, /<th>true \\ predicted<\/th><th>ok<\/th><th>dent<\/th>/);
  t.notRegex(html, /<script|\ssrc=|\shref=/); // no scripts, no external assets
});
