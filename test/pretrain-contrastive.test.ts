/**
 * Contrastive (CLIP) pretraining against an independent PyTorch reference
 * (tools/reference/contrastive_ref.py, float64, CLIP towers from tools/reference/clip_ref.py):
 * from the same tiny CLIP and batches (captions shared by several images), full-parameter AdamW
 * steps of the symmetric InfoNCE objective through each engine reproduce the reference's per-step
 * losses, step-0 gradients of every tensor (image tower, text tower with its token table,
 * projections, logit_scale) and final tensors. Also: the batch inputs (targets, masks, one-hot
 * captions) for a mixed batch, and the template choice being a pure function of the batch.
 */
import test from 'ava';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { readSafetensors, type StateDict } from '../compiler/backbones/safetensors.ts';
import { clipConfig } from '../compiler/backbones/clip-variants.ts';
import { convertClipStateDict } from '../compiler/backbones/clip-weights.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import type { Engine } from '../compiler/train/engine.ts';
import { newOptimizerState, optimizerStep, type TrainableTensor } from '../compiler/train/optim.ts';
import type { OptimizerRecipe, Recipe } from '../compiler/methods/method.ts';
import { pretrainMethod, type PretrainHead } from '../compiler/pretrain/method.ts';
import { CLIP_KEYS, templateOf, type CaptionTable } from '../compiler/pretrain/contrastive.ts';
import { fixturePath, relErr } from './helpers/fixtures.ts';

test.before(async () => {
  await initTf();
});

const optimizer: OptimizerRecipe = { kind: 'adamw', lr: 0, scaleLrByBatch: false, momentum: 0.9, weightDecay: 0.1, betas: [0.9, 0.999] };
const recipe: Recipe = { optimizer, epochs: 1, warmupEpochs: 0, batchSize: 6, schedulePer: 'step', labelSmoothing: 0, augment: { randomResizedCrop: false, hflip: false } };
const clip = clipConfig('clip_fixture', 'gelu');

/** The fixture's group (init / final / grad0) under our names, through the CLIP loader's one name table. */
function group(ref: StateDict, prefix: string): StateDict {
  const raw: StateDict = new Map([...ref].filter(([k]) => k.startsWith(`${prefix}.`)).map(([k, v]) => [k.slice(prefix.length + 1), v]));
  const sd = convertClipStateDict(raw, clip, `fixture ${prefix}`).stateDict;
  const ls = sd.get('logit_scale')!;
  sd.set('logit_scale', { shape: [1], data: ls.data }); // a scalar in CLIP files, [1] while training
  return sd;
}

function captionTable(ref: StateDict): CaptionTable {
  const ids = ref.get('ids')!;
  const [K, L] = ids.shape as [number, number];
  const rows = Array.from({ length: K }, (_, k) => {
    const r = new Int32Array(clip.text.contextLength);
    for (let p = 0; p < L; p++) r[p] = ids.data[k * L + p]!;
    return r;
  });
  const eot = rows.map((r) => [r.indexOf(clip.text.vocabSize - 1)]);
  return { clip, ids: rows.map((r) => [r]), eot, length: 1 + Math.max(...eot.flat()) };
}

const headOf = (captions: CaptionTable, offset = 0): PretrainHead & { captions: CaptionTable } => ({
  source: 'captions', classes: captions.ids.map((_, k) => `k${k}`), offset, labelSmoothing: 0, objective: 'contrastive', patches: 0, patchTokens: 16, captions,
});

for (const kind of ['ort', 'tfjs'] as const) {
  test(`${kind} engine: contrastive loss, step-0 gradients of every tensor and final tensors match the PyTorch reference`, async (t) => {
    const ref = readSafetensors(fixturePath('contrastive_ref.safetensors')).tensors;
    const get = (k: string) => ref.get(k) ?? (t.fail(`fixture lacks ${k}`) as never);
    const init = group(ref, 'init');
    const finals = group(ref, 'final');
    const grad0 = group(ref, 'grad0');
    const table = captionTable(ref);
    const heads = [headOf(table)];
    const cfg = { ...clip.vision, numClasses: table.ids.length };
    const backbone = new Map([...init].filter(([k]) => !k.startsWith('text.') && k !== 'image_proj.weight' && k !== 'logit_scale'));
    const method = pretrainMethod(heads, recipe);
    const spec = { cfg, backbone, method: method as never, options: {}, params: init, numClasses: cfg.numClasses, labelSmoothing: 0, seed: 0 };
    const engine: Engine = kind === 'ort' ? await OrtEngine.create(spec) : new TfEngine({ ...spec, backend: 'test' });
    t.teardown(() => engine.dispose());
    const params: TrainableTensor[] = [...init].map(([k, v]) => ({ name: k, shape: [...v.shape], value: Float32Array.from(v.data), decay: method.decays(k, {}) }));
    const state = newOptimizerState();
    const lrs = get('lr').data;
    const losses = get('loss').data;
    let worstLoss = 0;
    let worstGrad = 0;
    let worstGradKey = '';
    for (let s = 0; s < lrs.length; s++) {
      const y = Int32Array.from(get(`y.${s}`).data);
      const r = await engine.step(get(`x.${s}`).data, y, s, method.batchInputs!(y, {}, {}));
      worstLoss = Math.max(worstLoss, Math.abs(r.loss - losses[s]!) / Math.abs(losses[s]!));
      if (s === 0) {
        t.is(r.grads.size, params.length, 'every tensor has a gradient');
        for (const [k, g] of r.grads) {
          const e = relErr(g, grad0.get(k)!.data);
          if (e > worstGrad) [worstGrad, worstGradKey] = [e, k];
        }
      }
      optimizerStep(optimizer, state, params, r.grads, lrs[s]!);
      engine.setParams(new Map(params.map((p) => [p.name, p.value])));
    }
    // As in pretrain-reference.test.ts: the key third of every attn.qkv.bias has a zero gradient in
    // exact arithmetic (softmax ignores a shift shared by all keys), so Adam turns its float32
    // round-off into steps of up to lr; it is compared as "stayed within Σ lr of its start".
    const keyBias = (k: string) => /attn\.qkv\.bias$/.test(k);
    const drop = (k: string, v: Float32Array) => {
      if (!keyBias(k)) return v;
      const D = v.length / 3;
      return Float32Array.from([...v.subarray(0, D), ...v.subarray(2 * D)]);
    };
    let worstFinal = 0;
    let worstKey = '';
    for (const p of params) {
      const e = relErr(drop(p.name, p.value), drop(p.name, finals.get(p.name)!.data));
      if (e > worstFinal) [worstFinal, worstKey] = [e, p.name];
    }
    t.log(`${lrs.length} steps: worst relative loss error ${worstLoss.toExponential(2)}, step-0 gradient ${worstGrad.toExponential(2)} (${worstGradKey}), final tensor ${worstFinal.toExponential(2)} (${worstKey})`);
    t.true(worstLoss <= 1e-5, `loss ${worstLoss}`);
    t.true(worstGrad <= 1e-4, `gradient ${worstGrad} (${worstGradKey})`);
    t.true(worstFinal <= 5e-4, `final ${worstFinal} (${worstKey})`);
  });
}

test('batch inputs: multi-positive targets per caption key, other sources masked, one-hot captions pooled at EOT', (t) => {
  const ref = readSafetensors(fixturePath('contrastive_ref.safetensors')).tensors;
  const table = captionTable(ref);
  const h = headOf(table, 2); // global labels 2..5 are this source's keys 0..3; 0, 1 another source's
  const method = pretrainMethod([h], recipe);
  const y = Int32Array.of(2, 0, 2, 5, 1, 3);
  const m = method.batchInputs!(y, {}, {});
  const T = m.get(CLIP_KEYS.targets)!.data;
  const M = m.get(CLIP_KEYS.mask)!.data;
  const B = 6;
  // Row 0 (key 0) has two positives (rows 0 and 2): ½ each; row 3 (key 3) only itself.
  t.deepEqual(Array.from(T.subarray(0, B)), [0.5, 0, 0.5, 0, 0, 0]);
  t.deepEqual(Array.from(T.subarray(3 * B, 4 * B)), [0, 0, 0, 1, 0, 0]);
  t.deepEqual(Array.from(T.subarray(1 * B, 2 * B)), [0, 0, 0, 0, 0, 0], 'another source\'s row has no target');
  for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) t.is(M[i * B + j] !== 0, [1, 4].includes(i) || [1, 4].includes(j));
  for (let i = 0; i < B; i++) t.is(T.subarray(i * B, (i + 1) * B).reduce((a, v) => a + v, 0), [1, 4].includes(i) ? 0 : 1);
  const tok = m.get(CLIP_KEYS.tokens)!;
  const eot = m.get(CLIP_KEYS.eot)!;
  const [, L, V] = tok.shape as [number, number, number];
  t.is(L, table.length);
  t.is(V, clip.text.vocabSize);
  // Row 3 is key 3: its one-hot rows spell the key's ids, its EOT pick sits at the key's first EOT.
  for (let p = 0; p < L; p++) t.is(tok.data[(3 * L + p) * V + table.ids[3]![0]![p]!], 1);
  t.is(eot.data[3 * L + table.eot[3]![0]!], 1);
  t.is(tok.data.subarray(1 * L * V, 2 * L * V).reduce((a, v) => a + v, 0), 0, 'no caption for another source\'s row');
  // The template a row uses depends only on the batch's labels and the row.
  const a = Array.from({ length: 6 }, (_, b) => templateOf(y, b, 4));
  t.deepEqual(a, Array.from({ length: 6 }, (_, b) => templateOf(Int32Array.from(y), b, 4)));
  t.true(a.every((v) => v >= 0 && v < 4));
  const many = new Set(Array.from({ length: 64 }, (_, b) => templateOf(y, b, 4)));
  t.is(many.size, 4, 'every template is used');
});

test('decay: logit_scale, norms, biases, ln_pre and the image tower\'s embeddings are not decayed; the text tables are', (t) => {
  const ref = readSafetensors(fixturePath('contrastive_ref.safetensors')).tensors;
  const method = pretrainMethod([headOf(captionTable(ref))], recipe);
  for (const k of ['logit_scale', 'norm_pre.weight', 'norm.weight', 'text.norm.weight', 'text.blocks.0.norm1.weight', 'pos_embed', 'cls_token', 'text.blocks.1.attn.qkv.bias']) t.false(method.decays(k, {}), k);
  for (const k of ['text.token_embedding.weight', 'text.pos_embed', 'text.proj.weight', 'image_proj.weight', 'patch_embed.proj.weight', 'blocks.0.attn.qkv.weight']) t.true(method.decays(k, {}), k);
});
