/**
 * `edgeprompt explain`: rollout and Grad-CAM maps of a really trained task (the fixture backbone,
 * one quick VPT-deep epoch on Fashion-MNIST), the pure map functions on hand-built cases, the
 * report, and its errors.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import * as tf from '@tensorflow/tfjs';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { bindVit, block, embed, forwardHead } from '../compiler/backbones/vit.ts';
import { loadFashionMnist } from '../compiler/data/fashion-mnist.ts';
import { preprocessFor, toBatch } from '../compiler/data/transforms.ts';
import { METHODS, methodByName } from '../compiler/methods/registry.ts';
import type { SampleRequest } from '../compiler/methods/method.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { loadExplainModel, type ExplainModel } from '../compiler/explain/model.ts';
import { explain, type ExplainResult } from '../compiler/explain/run.ts';
import { Tracer } from '../compiler/explain/trace.ts';
import { rollout, type AttentionLayer } from '../compiler/explain/rollout.ts';
import { gradCam } from '../compiler/explain/gradcam.ts';
import { blend, upsample } from '../compiler/explain/overlay.ts';
import { fixturePath, fixtureVit, repoPath } from './helpers/fixtures.ts';
import { randn } from './helpers/random-vit.ts';
import { mulberry32 } from '../devices/rng.ts';

const dir = mkdtempSync(join(tmpdir(), 'ep-explain-'));
const configFile = join(dir, 'task.yaml');
writeFileSync(
  configFile,
  `name: explain-task
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: fashion-mnist, classes: [5, 7, 9], limitPerClass: 16, valLimitPerClass: 8 }
method: { name: vpt-deep, options: { prompts: 2 } }
recipe: { epochs: 1, batchSize: 8, warmupEpochs: 0, optimizer: { lr: 2.0 } }
seed: 5
output: { dir: task-out }
`,
);
const imagesDir = join(dir, 'images');
const G2 = 16; // 32 px, patch 8
const sum = (v: ArrayLike<number>) => Array.from(v).reduce((a, b) => a + b, 0);

let model: ExplainModel;
let first: ExplainResult;

test.before(async () => {
  await initTf();
  const p = await prepareJob(loadCompileConfig(configFile), configFile, { resume: false, progress: makeProgress('none') });
  await train(p.job);
  // Three test-split images (one per class, 28 px padded to 32 as the model sees them), one in a sub-folder.
  const set = loadFashionMnist({ split: 'test', classes: [5, 7, 9], limit: 1 });
  mkdirSync(join(imagesDir, 'more'), { recursive: true });
  for (const [i, s] of set.samples.entries()) {
    await sharp(s.image, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(imagesDir, i === 2 ? 'more' : '', `${i}.png`));
  }
  model = loadExplainModel(loadCompileConfig(configFile), configFile);
  first = await explain(model, { imagesDir, outDir: join(dir, 'report-1'), size: 64 });
});

test('one report entry per image, predictions for both forms, maps of the right shape and range', (t) => {
  t.deepEqual(first.images.map((i) => i.file), ['0.png', '1.png', join('more', '2.png')]);
  t.is(first.html.match(/<section class="image"/g)?.length, 3);
  t.is(first.html.match(/data:image\/png;base64,/g)?.length, 3 * 2 * 3, 'input, rollout and Grad-CAM for both forms of 3 images');
  for (const im of first.images) {
    t.true(first.html.includes(`<h2>${im.file}</h2>`));
    for (const [form, v] of [['prompted', im.prompted], ['bare', im.bare]] as const) {
      t.true(model.classes.includes(v.predicted));
      t.is(v.score, Math.max(...v.probs));
      t.is(v.rollout.patches.length, G2, `${form}: rollout over a 4×4 grid`);
      t.is(v.gradcam.length, G2);
      t.true(v.gradcam.every((c) => c >= 0 && c <= 1), `${form}: Grad-CAM in [0, 1]`);
      t.true(Math.max(...v.gradcam) === 1 || v.gradcam.every((c) => c === 0), `${form}: Grad-CAM scaled by its maximum`);
      t.true(Math.abs(v.rollout.cls + sum(v.rollout.patches) + v.rollout.prompt - 1) < 1e-9, `${form}: rollout shares sum to 1`);
      t.true(v.rollout.patches.every((p) => p >= 0));
    }
    t.is(im.bare.rollout.prompt, 0, 'no prompt, no prompt share');
    t.true(im.prompted.rollout.prompt > 0, 'the CLS token reads the deep prompts');
  }
});

test('the same images twice give identical bytes', async (t) => {
  const second = await explain(model, { imagesDir, outDir: join(dir, 'report-2'), size: 64 });
  t.is(second.json, first.json);
  t.true(readFileSync(join(dir, 'report-2', 'explain.html')).equals(readFileSync(join(dir, 'report-1', 'explain.html'))));
});

test('rollout of fused deep VPT (prompts as constant prefix K/V) equals its token form', (t) => {
  const set = loadFashionMnist({ split: 'test', classes: [5, 7, 9], limit: 2 });
  const { x } = toBatch(set.samples, preprocessFor(model.cfg, 'stretch'));
  const tokens = new Tracer(model, 'prompted', 'eval');
  const fused = new Tracer(model, 'prompted', 'export');
  try {
    const a = tokens.trace(x, set.samples.length);
    const b = fused.trace(x, set.samples.length);
    for (const [i, r] of a.entries()) {
      const f = b[i]!;
      t.true(Math.max(...r.logits.map((v, k) => Math.abs(v - f.logits[k]!))) < 1e-4);
      t.true(Math.abs(r.rollout.prompt - f.rollout.prompt) < 1e-5, `prompt share ${r.rollout.prompt} vs ${f.rollout.prompt}`);
      t.true(Math.abs(r.rollout.cls - f.rollout.cls) < 1e-5);
      t.true(r.rollout.patches.every((p, k) => Math.abs(p - f.rollout.patches[k]!) < 1e-5));
      t.true(r.gradcam.every((p, k) => Math.abs(p - f.gradcam[k]!) < 1e-3));
    }
  } finally {
    tokens.dispose();
    fused.dispose();
  }
});

test('taps change nothing: the traced logits are the trainer’s', (t) => {
  const set = loadFashionMnist({ split: 'test', classes: [5, 7, 9], limit: 1 });
  const { x } = toBatch(set.samples, preprocessFor(model.cfg, 'stretch'));
  const tracer = new Tracer(model, 'prompted');
  const engine = new TfEngine({ cfg: model.cfg, backbone: model.backbone, method: model.method, options: model.options, params: model.params, numClasses: 3, labelSmoothing: 0, seed: 0, backend: 'test' });
  try {
    const traced = tracer.trace(x, 3).flatMap((r) => [...r.logits]);
    const ref = engine.predict(x, 3);
    t.true(traced.every((v, i) => Math.abs(v - ref[i]!) < 1e-5), `${traced.join()} vs ${ref.join()}`);
  } finally {
    tracer.dispose();
    engine.dispose();
  }
});

test('Grad-CAM of the bare model equals one computed by differentiating the last block directly', (t) => {
  const set = loadFashionMnist({ split: 'test', classes: [5, 7, 9], limit: 1 });
  const { x } = toBatch(set.samples, preprocessFor(model.cfg, 'stretch'));
  const tracer = new Tracer(model, 'bare');
  const ops = new TfOps();
  try {
    const traced = tracer.trace(x, 3);
    const { cfg } = model;
    const w = bindVit(ops, cfg, model.backbone);
    w.head = { w: ops.weight('head.weight', model.params.get('head.weight')!), b: ops.weight('head.bias', model.params.get('head.bias')!) };
    const L = cfg.depth;
    const xs = tf.tensor(x, [3, 3, 32, 32]);
    // The last block's input by running the trunk by hand, then ∂ logit_c / ∂ input with no probe.
    const h = tf.tidy(() => w.blocks.slice(0, L - 1).reduce((a, bw) => block(ops, cfg, bw, a), embed(ops, cfg, w, xs)));
    const target = tf.oneHot(tf.tensor1d(traced.map((r) => r.top), 'int32'), 3).toFloat();
    const g = tf.grad((hin: tf.Tensor) => tf.sum(tf.mul(forwardHead(ops, cfg, w, ops.layerNorm(block(ops, cfg, w.blocks[L - 1]!, hin, undefined, true), w.norm.w, w.norm.b, cfg.eps)), target)))(h);
    const [acts, grads] = [h.dataSync(), g.dataSync()];
    const T = 1 + G2;
    const D = cfg.embedDim;
    for (const [b, r] of traced.entries()) {
      const rows = (d: Float32Array | Int32Array | Uint8Array) => Float32Array.from(d.subarray((b * T + 1) * D, (b + 1) * T * D));
      const ref = gradCam(rows(acts), rows(grads), G2, D);
      t.true(ref.some((v) => v > 0));
      t.true(r.gradcam.every((v, k) => Math.abs(v - ref[k]!) < 1e-5), `${r.gradcam.join()} vs ${ref.join()}`);
    }
    tf.dispose([xs, h, target, g]);
  } finally {
    tracer.dispose();
    ops.dispose();
  }
});

test('every registered method traces: maps shaped and normalised with and without its prompt', async (t) => {
  const { cfg: base, sd } = fixtureVit();
  const cfg = { ...base, numClasses: 3 };
  const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
  const x = randn([2, 3, 32, 32], 1, 9);
  // Data-dependent inits (prototype or class-mean methods) draw from random images here.
  const sample = async (r: SampleRequest) => {
    const n = 'count' in r ? r.count : r.perClass * 3;
    return { x: { shape: [n, 3, 32, 32], data: randn([n, 3, 32, 32], 1, 13) }, y: Int32Array.from({ length: n }, (_, i) => i % 3) };
  };
  for (const name of Object.keys(METHODS).filter((n) => !METHODS[n]!.requiresClip)) {
    const method = methodByName(name);
    const options = method.resolveOptions({});
    const params = new Map(await method.init({ cfg, numClasses: 3, backbone, rng: mulberry32(1), sample }, options));
    const m: ExplainModel = { name, cfg, backbone, method, options, params, classes: ['a', 'b', 'c'], checkpoint: '<memory>', metadata: {} };
    for (const variant of ['prompted', 'bare'] as const) {
      const tracer = new Tracer(m, variant);
      try {
        for (const r of tracer.trace(x, 2)) {
          t.is(r.rollout.patches.length, G2, `${name} ${variant}`);
          t.true(Math.abs(r.rollout.cls + sum(r.rollout.patches) + r.rollout.prompt - 1) < 1e-9, `${name} ${variant}: shares sum to 1`);
          t.is(r.gradcam.length, G2);
          t.true(r.gradcam.every((v) => v >= 0 && v <= 1), `${name} ${variant}: Grad-CAM in [0, 1]`);
          t.is(r.view.length, 32 * 32 * 3);
        }
      } finally {
        tracer.dispose();
      }
    }
  }
});

test('hand-built: uniform attention (zero query and key weights) rolls out to 0.5^L·e_CLS + (1 − 0.5^L)/T', (t) => {
  const { cfg: base, sd } = fixtureVit();
  const cfg = { ...base, numClasses: 3 };
  const D = cfg.embedDim;
  const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
  for (let i = 0; i < cfg.depth; i++) {
    // qkv rows [0, 2D) are the query and key projections: zero them and every score is 0.
    const w = backbone.get(`blocks.${i}.attn.qkv.weight`)!;
    const b = backbone.get(`blocks.${i}.attn.qkv.bias`)!;
    backbone.set(`blocks.${i}.attn.qkv.weight`, { shape: w.shape, data: w.data.map((v, k) => (k < 2 * D * D ? 0 : v)) });
    backbone.set(`blocks.${i}.attn.qkv.bias`, { shape: b.shape, data: b.data.map((v, k) => (k < 2 * D ? 0 : v)) });
  }
  const params = new Map([
    ['head.weight', { shape: [3, D], data: randn([3, D], 0.1, 7) }],
    ['head.bias', { shape: [3], data: new Float32Array(3) }],
  ]);
  const m: ExplainModel = { name: 'uniform', cfg, backbone, method: methodByName('linear'), options: {}, params, classes: ['a', 'b', 'c'], checkpoint: '<memory>', metadata: {} };
  const tracer = new Tracer(m, 'prompted');
  try {
    const x = randn([2, 3, 32, 32], 1, 3);
    const L = cfg.depth;
    const T = 1 + G2;
    const keep = 0.5 ** L;
    for (const r of tracer.trace(x, 2)) {
      t.true(Math.abs(r.rollout.cls - (keep + (1 - keep) / T)) < 1e-6, `cls ${r.rollout.cls}`);
      t.true(r.rollout.patches.every((p) => Math.abs(p - (1 - keep) / T) < 1e-6));
      t.is(r.rollout.prompt, 0);
    }
  } finally {
    tracer.dispose();
  }
});

test('hand-built: identity attention keeps every token its own; a prefix key feeds the prompt source', (t) => {
  const eye = (n: number) => Float32Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? 1 : 0));
  const id = rollout([1, 2, 3].map(() => ({ tokens: 5, rows: 5, keys: 5, probs: eye(5) })), 4);
  t.is(id.cls, 1);
  t.deepEqual([...id.patches], [0, 0, 0, 0]);
  t.is(id.prompt, 0);
  // One block, tokens [CLS, patch], one prefix key. CLS attends 0.5 prefix, 0.25 CLS, 0.25 patch:
  // ((Ā + I)/2) CLS row = prompt 0.25, CLS 0.625, patch 0.125.
  const one = rollout([{ tokens: 2, rows: 2, keys: 3, probs: [0.5, 0.25, 0.25, 0, 0, 1] }], 1);
  t.is(one.prompt, 0.25);
  t.is(one.cls, 0.625);
  t.deepEqual([...one.patches], [0.125]);
  t.deepEqual([...one.matrix!], [0.625, 0.125, 0.25, 0, 1, 0]);
});

test('rollout rows sum to 1 with prompt tokens, a changing prompt count and prefix keys; a CLS-only last block gives the same CLS row', (t) => {
  const rng = mulberry32(11);
  const P = 9;
  const T = 1 + 3 + P; // CLS, 3 prompt tokens, 3×3 patches
  const layer = (rows: number, prefix: number, tokens = T): AttentionLayer => {
    const keys = prefix + tokens;
    const probs = new Float32Array(rows * keys).map(() => rng());
    for (let r = 0; r < rows; r++) {
      const s = sum(probs.subarray(r * keys, (r + 1) * keys));
      for (let k = 0; k < keys; k++) probs[r * keys + k]! /= s;
    }
    return { tokens, rows, keys, probs };
  };
  // The middle block has one prompt token instead of three (DA-VPT's proxy blocks change the count).
  const layers = [layer(T, 2), layer(T - 2, 0, T - 2), layer(T, 2)];
  const full = rollout(layers, P);
  const S = P + 2;
  t.is(full.matrix!.length, (1 + P) * S, 'CLS and patch rows');
  for (let r = 0; r <= P; r++) t.true(Math.abs(sum(full.matrix!.subarray(r * S, (r + 1) * S)) - 1) < 1e-12, `row ${r}`);
  for (let r = 0; r <= P; r++) t.true(full.matrix![r * S + S - 1]! > 0, 'every token took up prompt mass');
  const last = layers[2]!;
  const clsOnly = rollout([layers[0]!, layers[1]!, { ...last, rows: 1, probs: Array.from(last.probs).slice(0, last.keys) }], P);
  t.is(clsOnly.matrix, null);
  t.is(clsOnly.cls, full.cls);
  t.deepEqual([...clsOnly.patches], [...full.patches]);
  const bad = t.throws(() => rollout([{ tokens: 5, rows: 5, keys: 5, probs: new Float32Array(25) }], 9), { instanceOf: CompilerError });
  t.regex(bad.message, /block 0 attends with 5 queries over 5 keys and 5 tokens; expected \[CLS \| prompts \| 9 patches\]/);
});

test('hand-built Grad-CAM: channel weights are mean gradients, ReLU, scaled to a maximum of 1', (t) => {
  // grads [[1, 0], [3, 2]] → α = [2, 1]; acts [[1, 1], [−1, 0]] → [3, −2] → ReLU → [3, 0] → [1, 0].
  t.deepEqual([...gradCam([1, 1, -1, 0], [1, 0, 3, 2], 2, 2)], [1, 0]);
  t.deepEqual([...gradCam([1, 1, 1, 1], [-1, 0, -1, 0], 2, 2)], [0, 0], 'no positive evidence: all zero');
});

test('overlay: a constant map upsamples to itself; blending is per pixel and deterministic', (t) => {
  t.true(upsample(new Float32Array(16).fill(0.25), 4, 32).every((v) => v === 0.25));
  const ramp = upsample([0, 1, 0, 1], 2, 4);
  t.deepEqual([...ramp.subarray(0, 4)], [0, 0.25, 0.75, 1]);
  const img = new Uint8Array(2 * 2 * 3).fill(200);
  const a = blend(img, 2, [0, 1, 0, 1], 2, 4);
  t.deepEqual(a, blend(img, 2, [0, 1, 0, 1], 2, 4));
  t.deepEqual([...a.subarray(0, 3)], [100, 100, 164], 'alpha 0.5 of grey 200 and jet(0) = (0, 0, 128)');
});

test('bad --images folders are named with what to do', async (t) => {
  const out = join(dir, 'bad-out');
  const missing = await t.throwsAsync(explain(model, { imagesDir: join(dir, 'nope'), outDir: out, size: 64 }), { instanceOf: CompilerError });
  t.is((missing as CompilerError).code, 'FILE_NOT_FOUND');
  t.regex(missing!.message, /--images .*nope: no such folder; give a folder of \.jpg\/\.jpeg\/\.png\/\.webp images/);
  const empty = join(dir, 'empty');
  mkdirSync(join(empty, 'sub'), { recursive: true });
  writeFileSync(join(empty, 'notes.txt'), 'not an image');
  const none = await t.throwsAsync(explain(model, { imagesDir: empty, outDir: out, size: 64 }));
  t.regex(none!.message, /empty: no \.jpg\/\.jpeg\/\.png\/\.webp images in it/);
  const file = await t.throwsAsync(explain(model, { imagesDir: configFile, outDir: out, size: 64 }));
  t.regex(file!.message, /task\.yaml: is a file, expected a folder of images/);
  const broken = join(dir, 'broken');
  mkdirSync(broken);
  writeFileSync(join(broken, 'x.png'), 'not a png');
  const bad = await t.throwsAsync(explain(model, { imagesDir: broken, outDir: out, size: 64 }), { instanceOf: CompilerError });
  t.regex(bad!.message, /broken\/x\.png: not a readable image \(.+\); fix or remove it/);
});

test('edgeprompt explain without trained tensors says so and exits 2', async (t) => {
  const f = join(dir, 'untrained.yaml');
  writeFileSync(f, readFileSync(configFile, 'utf8').replace('task-out', 'never-trained'));
  const r = await promisify(execFile)(process.execPath, [repoPath('tools/edgeprompt.mjs'), 'explain', '-c', f, '--images', imagesDir], { timeout: 60_000 }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  t.is(r.code, 2);
  t.regex(r.stderr, /error \[FILE_NOT_FOUND\]: .*never-trained\/best\.safetensors: no trained tensors for .*untrained\.yaml; train first \(edgeprompt train -c .*\) or pass --checkpoint/);
});
