/**
 * DAPT's goldens (docs/spec/dapt.md): the inter-dispersion of two orthonormal text features is
 * e⁻⁴ and of identical ones 1; the intra-dispersion of f̂ = e₁ against the prototype 0.5·e₁ is
 * 0.25/512; the Dassl schedule at E 5, lr 2 is [1e-5, 2, 1.809017, 1.309017, 0.690983]; the
 * visual init bound is 0.0625 for patch 16 and 0.0395 for patch 32 at width 768; C ≥ 2. Also the
 * prototypes: the frozen tower's unit features averaged per class, not renormalised, in the state.
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { dapt, interDispersion, intraDispersion } from '../compiler/methods/dapt.ts';
import { vptBound } from '../compiler/methods/vpt.ts';
import { frozenImageEmbeddings } from '../compiler/methods/clip-common.ts';
import { lrAt } from '../compiler/train/schedule.ts';
import { mulberry32 } from '../devices/rng.ts';
import { randomImageSampler } from './helpers/image-sample.ts';
import { fixtureClipTask } from './helpers/clip.ts';

test.before(async () => {
  await initTf();
});

const E = 512;
const onehot = (i: number, s = 1) => Float32Array.from({ length: E }, (_, j) => (j === i ? s : 0));
function scalar(f: (ops: TfOps) => tf.Tensor): number {
  const ops = new TfOps();
  const v = tf.tidy(() => f(ops).dataSync()[0]!);
  ops.dispose();
  return v;
}

test('L_inter: e⁻⁴ for two orthonormal text features, 1 for identical ones (τ 2)', (t) => {
  const two = (a: Float32Array, b: Float32Array) => scalar(() => interDispersion(new TfOps(), tf.tensor([...a, ...b], [2, E]), 2));
  t.true(Math.abs(two(onehot(0), onehot(1)) - Math.exp(-4)) < 1e-7);
  t.true(Math.abs(two(onehot(3), onehot(3)) - 1) < 1e-7);
  t.true(Math.abs(Math.exp(-4) - 0.0183156) < 1e-7);
  // Three classes: the mean over the three pairs (two orthogonal pairs, one identical).
  const three = scalar(() => interDispersion(new TfOps(), tf.tensor([...onehot(0), ...onehot(1), ...onehot(1)], [3, E]), 2));
  t.true(Math.abs(three - (2 * Math.exp(-4) + 1) / 3) < 1e-7);
  t.throws(() => interDispersion(new TfOps(), tf.tensor(onehot(0), [1, E]), 2), { message: /at least two classes, got 1/ });
});

test('L_intra: f̂ = e₁ against the prototype 0.5·e₁ is 0.25/512 = 4.8828e-4', (t) => {
  const v = scalar(() => intraDispersion(new TfOps(), tf.tensor(onehot(0), [1, E]), tf.tensor(onehot(0, 0.5), [1, E])));
  t.true(Math.abs(v - 0.25 / 512) < 1e-9, `${v}`);
  t.true(Math.abs(0.25 / 512 - 4.8828e-4) < 1e-8);
});

test('Dassl schedule, E 5, lr 2: 1e-5, 2, 1.809017, 1.309017, 0.690983', (t) => {
  const recipe = dapt.recipe(dapt.resolveOptions({}));
  t.is(recipe.warmupLr, 1e-5);
  t.is(recipe.warmupEpochs, 1);
  t.is(recipe.schedulePer, 'epoch');
  const s = { baseLr: 2, warmup: recipe.warmupEpochs, total: 5, constantWarmupLr: recipe.warmupLr! };
  const got = [0, 1, 2, 3, 4].map((e) => lrAt(s, e));
  [1e-5, 2, 1.809017, 1.309017, 0.690983].forEach((want, e) => t.true(Math.abs(got[e]! - want) < 1e-6, `epoch ${e}: ${got[e]} vs ${want}`));
  t.is(recipe.optimizer.kind, 'sgd');
  t.is(recipe.optimizer.momentum, 0.9);
  t.is(recipe.optimizer.weightDecay, 5e-4);
  t.is(recipe.batchSize, 32);
});

test('visual prompt init bound: 0.0625 (B/16), 0.0395 (B/32)', (t) => {
  t.true(Math.abs(vptBound(16, 768) - 0.0625) < 5e-5);
  t.true(Math.abs(vptBound(32, 768) - 0.0395) < 5e-5);
});

test('init: 16 + 16 prompts by default, visual U(−v, v), text N(0, 0.02); one class is refused', async (t) => {
  const { cfg, stateDict, task } = fixtureClipTask({ classes: ['cat', 'dog'] });
  const o = dapt.resolveOptions({});
  t.like(o, { visualPrompts: 16, textContext: 16, betaIntra: 0.1, betaInter: 0.1, tau: 2 });
  const p = await dapt.init({ cfg: cfg.vision, numClasses: 2, backbone: stateDict, rng: mulberry32(3), clip: task }, { ...o, textContext: 4 });
  const vis = p.get('prompt_embeddings')!;
  t.deepEqual(vis.shape, [1, 16, 32]);
  const v = vptBound(8, 32);
  t.true(vis.data.every((x) => Math.abs(x) <= v) && Math.max(...vis.data.map(Math.abs)) > 0.9 * v);
  const txt = p.get('text_ctx')!;
  t.deepEqual(txt.shape, [4, 16]);
  const sd = Math.sqrt(txt.data.reduce((s, x) => s + x * x, 0) / txt.data.length);
  t.true(sd > 0.014 && sd < 0.026, `std ${sd}`);
  await t.throwsAsync(async () => dapt.init({ cfg: cfg.vision, numClasses: 1, backbone: stateDict, rng: mulberry32(3), clip: task }, o), { message: /at least two classes/ });
});

test('prototypes: per-class means of the frozen tower\'s unit features (not renormalised), fed per batch by label', async (t) => {
  const { cfg, stateDict, task } = fixtureClipTask();
  const sample = randomImageSampler(cfg.vision, 4);
  const o = dapt.resolveOptions({ prototypeShots: 3 });
  const state = await dapt.initState!({ cfg: cfg.vision, numClasses: 4, backbone: stateDict, rng: mulberry32(1), sample, clip: task, params: new Map() }, o);
  const protos = state.prototypes as number[][];
  t.is(protos.length, 4);
  const s = await sample({ perClass: 3, stream: 0x70726f74 });
  const f = frozenImageEmbeddings(task, stateDict, s.x);
  const E = task.cfg.embedDim;
  const want = Array.from({ length: E }, (_, e) => [0, 1, 2].reduce((acc, k) => acc + f[(k * 4 + 1) * E + e]!, 0) / 3); // class 1: images 1, 5, 9
  t.true(protos[1]!.every((v, e) => Math.abs(v - want[e]!) < 1e-6));
  const norm = Math.hypot(...protos[1]!);
  t.true(norm < 1 - 1e-4, `a mean of unit vectors is shorter than 1 (${norm})`);
  const inputs = dapt.batchInputs!(Int32Array.of(2, 0), state, o).get('prototypes')!;
  t.deepEqual(inputs.shape, [2, E]);
  t.deepEqual([...inputs.data.subarray(0, E)], protos[2]!.map(Math.fround));
});
