/**
 * SPT (compiler/methods/spt.ts) against the independent PyTorch reference
 * (tools/reference/method_spt.py → test/fixtures/method_spt.safetensors, fixture ViT, float64):
 * the captured layer tokens, mean/max window pooling (a remainder window and none), and the
 * SPT-deep forward, loss and gradients in both engines with prompts built from those pooled
 * vectors. Then every init draws its prompts from the sampled data (rows, pooled rows,
 * k-means fixed points), is seeded, counts its parameters; the head's own AdamW weight decay;
 * the fused export equals the unfused graph; and real training jobs on both engines.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { euclideanKmeans } from '../compiler/methods/kmeans.ts';
import { captureLayerTokens, poolTokens, poolWindows, sptDeep, sptShallow, type SptOptions } from '../compiler/methods/spt.ts';
import type { InitContext, PromptMethod, SampleRequest } from '../compiler/methods/method.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { newOptimizerState, optimizerStep, type TrainableTensor } from '../compiler/train/optim.ts';
import { exportTask } from '../compiler/export/task.ts';
import { compareLogits, exportedLogits, referenceLogits } from '../compiler/export/verify-task.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { makePartsSet } from '../compiler/data/parts.ts';
import { mulberry32 } from '../devices/rng.ts';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { maxAbsDiff, type HostTensor } from '../compiler/ops/host-tensor.ts';
import { fixturePath, fixtureVit, relErr } from './helpers/fixtures.ts';
import { randn } from './helpers/random-vit.ts';

test.before(async () => {
  await initTf();
});

const ref = readSafetensors(fixturePath('method_spt.safetensors')).tensors;
const get = (k: string): HostTensor => {
  const t = ref.get(k);
  if (!t) throw new Error(`method_spt.safetensors lacks ${k}`);
  return t;
};
const C = 4;
const { cfg: c0, sd } = fixtureVit();
const cfg = { ...c0, numClasses: C };
const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
const D = cfg.embedDim;
const L = cfg.depth;
const T = 16; // (32 / 8)²
const x = get('x');
const B = x.shape[0]!;
const labels = Int32Array.from(get('label').data);
const spt = (deep: boolean) => (deep ? sptDeep : sptShallow) as unknown as PromptMethod<SptOptions>;

/** An init context whose sampler hands back the fixture batch (and records what was asked). */
function ctxWith(seed: number, asked: SampleRequest[] = []): InitContext {
  return {
    cfg, numClasses: C, backbone, rng: mulberry32(seed),
    sample: async (r) => {
      asked.push(r);
      return { x, y: Int32Array.from({ length: B }, (_, i) => i % C) };
    },
  };
}
const opts = (deep: boolean, o: Partial<SptOptions> = {}) => spt(deep).resolveOptions({ prompts: 4, sampleSize: B, ...o });
/** Prompt rows per layer: [layers][N] of D-vectors. */
function layerRows(p: Map<string, HostTensor>, N: number): Float32Array[][] {
  const all = [p.get('prompt_embeddings')!.data, ...(p.has('deep_prompt_embeddings') ? [p.get('deep_prompt_embeddings')!.data] : [])];
  const flat = new Float32Array(all.reduce((s, a) => s + a.length, 0));
  let o = 0;
  for (const a of all) flat.set(a, (o += a.length) - a.length);
  return Array.from({ length: flat.length / (N * D) }, (_, l) => Array.from({ length: N }, (_, n) => flat.subarray((l * N + n) * D, (l * N + n + 1) * D)));
}
/** Index of the row of M [r, D] equal to v (≤ tol), or −1. */
const rowOf = (M: Float32Array, v: Float32Array, tol = 1e-5) => {
  for (let r = 0; r < M.length / D; r++) if (maxAbsDiff(M.subarray(r * D, (r + 1) * D), v) <= tol) return r;
  return -1;
};

test('captured tokens equal the reference: patch_embed output (no CLS/pos) and block inputs without CLS (≤ 1e-4)', (t) => {
  const tokens = captureLayerTokens(cfg, backbone, x, L);
  t.is(tokens.length, L);
  for (let i = 0; i < L; i++) {
    const d = maxAbsDiff(tokens[i]!, get(`tokens.${i}`).data);
    t.log(`layer ${i}: max |Δ| ${d.toExponential(2)}`);
    t.true(d <= 1e-4, `layer ${i}`);
  }
  // Fewer layers asked, fewer computed, same values.
  t.deepEqual([...captureLayerTokens(cfg, backbone, x, 1)[0]!], [...tokens[0]!]);
});

test('pooling windows: w = ⌊T/(N−1)⌋, N−1 windows plus the remainder; none when it is 0; N = 1 pools all; too many prompts refused', (t) => {
  t.deepEqual(poolWindows(16, 4), [[0, 5], [5, 10], [10, 15], [15, 16]]);
  t.deepEqual(poolWindows(16, 5), [[0, 4], [4, 8], [8, 12], [12, 16]]);
  t.deepEqual(poolWindows(196, 20).length, 20); // docs/spec/spt.md: 19 windows of 10 + a last one of 6
  t.deepEqual(poolWindows(196, 20).at(-1), [190, 196]);
  t.deepEqual(poolWindows(16, 1), [[0, 16]]);
  t.throws(() => poolWindows(16, 18), { message: /18 prompts need N − 1 = 17 pooling windows but a layer has only 16 tokens/ });
  for (const N of [4, 5])
    for (const kind of ['mean', 'max'] as const)
      for (let i = 0; i < L; i++) {
        const d = maxAbsDiff(poolTokens(get(`tokens.${i}`).data, B, T, D, N, kind), get(`${kind}${N}.${i}`).data);
        t.true(d <= 1e-4, `${kind}${N} layer ${i}: ${d}`);
      }
});

test('spt-deep forward, loss and gradients equal the reference in both engines, prompts = pooled prototypes (≤ 1e-4)', async (t) => {
  const pick = [...get('pick').data];
  const N = pick.length;
  const rows = (i: number) => {
    const pooled = poolTokens(captureLayerTokens(cfg, backbone, x, L)[i]!, B, T, D, N, 'mean');
    const out = new Float32Array(N * D);
    pick.forEach((r, j) => out.set(pooled.subarray(r * D, (r + 1) * D), j * D));
    return out;
  };
  const deep = new Float32Array((L - 1) * N * D);
  for (let i = 1; i < L; i++) deep.set(rows(i), (i - 1) * N * D);
  const params = new Map<string, HostTensor>([
    ['prompt_embeddings', { shape: [1, N, D], data: rows(0) }],
    ['deep_prompt_embeddings', { shape: [L - 1, N, D], data: deep }],
    ['head.weight', get('head.weight')],
    ['head.bias', get('head.bias')],
  ]);
  const common = { cfg, backbone, method: spt(true) as never, options: opts(true) as never, params, numClasses: C, labelSmoothing: 0, seed: 0 };
  const tfe = new TfEngine({ ...common, backend: 'test' });
  const oe = await OrtEngine.create(common);
  for (const [name, logits] of [['tfjs', tfe.predict(x.data, B)], ['ort', await oe.predict(x.data, B)]] as const) {
    const d = maxAbsDiff(logits, get('logits').data);
    t.log(`${name}: max |Δlogit| ${d.toExponential(2)}`);
    t.true(d <= 1e-4, name);
  }
  const want = get('loss').data[0]!;
  for (const [name, r] of [['tfjs', tfe.step(x.data, labels, 0)], ['ort', await oe.step(x.data, labels, 0)]] as const) {
    let worst = 0;
    for (const k of params.keys()) worst = Math.max(worst, relErr(r.grads.get(k)!, get(`grad.${k}`).data));
    t.log(`${name}: loss ${r.loss.toFixed(6)} vs ${want.toFixed(6)}, worst gradient ${worst.toExponential(2)}`);
    t.true(Math.abs(r.loss - want) <= 1e-5 * want && worst <= 1e-4, name);
  }
  tfe.dispose();
  oe.dispose();
});

test('random init: each prompt is a distinct token row of its layer; shallow uses patch_embed tokens; sample of sampleSize with replacement', async (t) => {
  const asked: SampleRequest[] = [];
  const p = await spt(true).init(ctxWith(1, asked), opts(true));
  t.deepEqual(asked.map((r) => 'count' in r && r.count), [B]);
  const rows = layerRows(p, 4);
  t.is(rows.length, L);
  rows.forEach((layer, i) => {
    const idx = layer.map((v) => rowOf(get(`tokens.${i}`).data, v));
    t.true(idx.every((r) => r >= 0), `layer ${i}: ${idx}`);
    t.is(new Set(idx).size, 4, `layer ${i}: distinct`);
  });
  const s = await spt(false).init(ctxWith(1), opts(false));
  t.false(s.has('deep_prompt_embeddings'));
  t.true(layerRows(s, 4)[0]!.every((v) => rowOf(get('tokens.0').data, v) >= 0));
});

test('mean / max init: each prompt is a pooled window vector of its layer (with and without a remainder window)', async (t) => {
  for (const N of [4, 5])
    for (const init of ['mean', 'max'] as const) {
      const p = await spt(true).init(ctxWith(2), opts(true, { init, prompts: N }));
      layerRows(p, N).forEach((layer, i) => {
        const idx = layer.map((v) => rowOf(get(`${init}${N}.${i}`).data, v, 1e-4));
        t.true(idx.every((r) => r >= 0) && new Set(idx).size === N, `${init}${N} layer ${i}: ${idx}`);
      });
    }
});

test('k-means init: centres are fixed points (each the mean of the tokens nearest it), seeded, and differ by seed', async (t) => {
  const o = opts(true, { init: 'kmeans' });
  const a = await spt(true).init(ctxWith(3), o);
  const b = await spt(true).init(ctxWith(3), o);
  const c = await spt(true).init(ctxWith(4), o);
  t.deepEqual([...a.get('deep_prompt_embeddings')!.data], [...b.get('deep_prompt_embeddings')!.data]);
  t.notDeepEqual([...a.get('deep_prompt_embeddings')!.data], [...c.get('deep_prompt_embeddings')!.data]);
  layerRows(a, 4).forEach((centres, i) => {
    const X = get(`tokens.${i}`).data;
    const sum = centres.map(() => new Float64Array(D));
    const cnt = centres.map(() => 0);
    for (let r = 0; r < B * T; r++) {
      const v = X.subarray(r * D, (r + 1) * D);
      let best = 0;
      let bd = Infinity;
      centres.forEach((cv, k) => {
        const d2 = cv.reduce((s, u, j) => s + (u - v[j]!) ** 2, 0);
        if (d2 < bd) [bd, best] = [d2, k];
      });
      cnt[best]!++;
      for (let j = 0; j < D; j++) sum[best]![j] += v[j]!;
    }
    t.true(cnt.every((n) => n > 0), `layer ${i}: counts ${cnt}`);
    const worst = Math.max(...centres.map((cv, k) => maxAbsDiff(cv, sum[k]!.map((s) => s / cnt[k]!))));
    t.true(worst <= 1e-4 * Math.max(1, Math.max(...X.map(Math.abs))), `layer ${i}: centre vs mean ${worst}`);
  });
});

test('k-means++ recovers well-separated clusters, and an iteration cap of 1 still returns means of its assignment', (t) => {
  const centres = [[0, 0], [10, 0], [0, 10], [10, 10]];
  const g = randn([400 * 2], 0.5, 9);
  const X = new Float32Array(400 * 2);
  for (let i = 0; i < 400; i++) {
    X[2 * i] = centres[i % 4]![0]! + g[2 * i]!;
    X[2 * i + 1] = centres[i % 4]![1]! + g[2 * i + 1]!;
  }
  const km = (X: Float32Array, k: number, seed: number, it?: number) => {
    // D comes from the argument; 2-D points here.
    return euclideanKmeans(X, 2, k, { iterations: it ?? 100, tol: 1e-6, rng: mulberry32(seed) });
  };
  const r = km(X, 4, 1);
  const found = Array.from({ length: 4 }, (_, k) => [r.centres[2 * k]!, r.centres[2 * k + 1]!]);
  for (const [cx, cy] of centres) t.true(found.some(([fx, fy]) => Math.hypot(fx! - cx!, fy! - cy!) < 0.2), `centre (${cx}, ${cy}) not found in ${JSON.stringify(found)}`);
  t.true(r.iterations < 100);
  const one = km(X, 4, 2, 1);
  t.is(one.iterations, 1);
  for (let k = 0; k < 4; k++) {
    const pts = [...one.assign.keys()].filter((i) => one.assign[i] === k);
    const mx = pts.reduce((s, i) => s + X[2 * i]!, 0) / pts.length;
    t.true(Math.abs(mx - one.centres[2 * k]!) < 1e-4);
  }
  t.throws(() => euclideanKmeans(X.subarray(0, 6), 2, 4, { iterations: 100, tol: 1e-6, rng: mulberry32(1) }), { message: /k-means: 4 centres need at least 4 rows, got 3/ });
});

test('parameter counts, head trunc_normal(0.02) with zero bias, and the errors of a bad context or option', async (t) => {
  const count = (m: Map<string, HostTensor>) => [...m.values()].reduce((s, v) => s + v.data.length, 0);
  t.is(count(await spt(true).init(ctxWith(5), opts(true))), L * 4 * D + C * D + C);
  t.is(count(await spt(false).init(ctxWith(5), opts(false))), 4 * D + C * D + C);
  t.is(count(await spt(true).init(ctxWith(5), opts(true, { depth: 2 }))), 2 * 4 * D + C * D + C);
  // The paper's ViT-B deep default: 12 × 20 × 768 prompt values.
  t.is(12 * 20 * 768, 184320);
  const p = await spt(true).init(ctxWith(6), spt(true).resolveOptions({ prompts: 4, sampleSize: B }));
  const h = p.get('head.weight')!.data;
  const sd = Math.sqrt(h.reduce((s, v) => s + v * v, 0) / h.length);
  t.true(Math.abs(sd - 0.02) < 0.003, `head std ${sd}`);
  t.true(p.get('head.bias')!.data.every((v) => v === 0));
  const { sample: _, ...bare } = ctxWith(1);
  await t.throwsAsync(async () => spt(true).init(bare, opts(true)), { message: /spt-deep: the init builds prompts from training images/ });
  await t.throwsAsync(async () => spt(true).init(ctxWith(1), opts(true, { prompts: 60 })), { message: /cannot pick 60 prompts from 48 candidate vectors; raise method\.options\.sampleSize/ });
  t.throws(() => spt(true).resolveOptions({ init: 'median' } as never), { message: /init/ });
  t.true(METHODS['spt-deep'] === (sptDeep as never) && METHODS['spt-shallow'] === (sptShallow as never));
  t.false(spt(true).resolveOptions({}).deep === false);
});

test('AdamW weight decay: prompts by the recipe’s, head.weight by headWeightDecay, head.bias none', (t) => {
  const m = spt(true);
  const o = m.resolveOptions({ headWeightDecay: 3 });
  const recipe = m.recipe(o).optimizer;
  t.is(recipe.kind, 'adamw');
  const names = ['deep_prompt_embeddings', 'head.weight', 'head.bias'];
  const params: TrainableTensor[] = names.map((name) => {
    const wd = m.weightDecayFor?.(name, o);
    return { name, shape: [2], value: Float32Array.of(1, -2), decay: m.decays(name, o), ...(wd === undefined ? {} : { weightDecay: wd }) };
  });
  const lr = 0.01;
  optimizerStep(recipe, newOptimizerState(), params, new Map(names.map((n) => [n, new Float32Array(2)])), lr); // zero gradients: decay only
  t.deepEqual([...params[0]!.value], [...Float32Array.of(1 - lr * 1e-2, -2 * (1 - lr * 1e-2))]);
  t.deepEqual([...params[1]!.value], [...Float32Array.of(1 - lr * 3, -2 * (1 - lr * 3))]);
  t.deepEqual([...params[2]!.value], [1, -2]);
});

test('fused export equals the unfused graph on real images (≤ 1e-4, same top-1); fused deep has no prompt tokens', async (t) => {
  const set = await makePartsSet({ perClass: 8, size: 32, seed: 5 });
  for (const deep of [true, false]) {
    const options = opts(deep, { init: 'kmeans' });
    const params = await spt(deep).init(ctxWith(7), options);
    // Trained heads are larger than their init, so a wrong fold cannot hide behind tiny logits.
    params.set('head.weight', { shape: [C, D], data: randn([C * D], 0.5, 13) });
    const task = { cfg, backbone, method: spt(deep) as never, options: options as never, params };
    const reference = referenceLogits(task, set);
    const lab = set.samples.map((s) => s.label);
    const fused = exportTask(task);
    const f = compareLogits(reference, await exportedLogits(fused, set), lab, C);
    const n = compareLogits(reference, await exportedLogits(exportTask(task, { form: 'naive' }), set), lab, C);
    t.log(`${deep ? 'deep' : 'shallow'}: fused max |Δlogit| ${f.maxAbsDiff.toExponential(2)} (top-1 agreement ${f.top1Agreement}), naive ${n.maxAbsDiff.toExponential(2)}`);
    t.true(f.maxAbsDiff <= 1e-4 && n.maxAbsDiff <= 1e-4 && f.top1Agreement === 1);
    const g = summarizeModel(fused);
    t.false(g.inputs.some((v) => v.name !== 'image'));
    if (deep) t.deepEqual(summarizeModel(fused).opCounts, summarizeModel(exportTask({ ...task, method: METHODS['vpt-deep'] as never, options: { prompts: 4, deep: true, dropout: 0.1 } as never })).opCounts);
  }
});

test('a training job builds the prompts from Fashion-MNIST samples and trains on both engines (loss falls)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ep-spt-'));
  for (const [engine, init] of [['ort', 'kmeans'], ['tfjs', 'mean']] as const) {
    const file = join(dir, `${engine}.yaml`);
    writeFileSync(
      file,
      `name: spt-${engine}
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: fashion-mnist, classes: [5, 7, 9], limitPerClass: 16, valLimitPerClass: 8 }
method: { name: spt-deep, options: { prompts: 3, init: ${init}, sampleSize: 16 } }
recipe: { epochs: 3, batchSize: 8, warmupEpochs: 1, optimizer: { lr: 0.01 } }
engine: ${engine}
seed: 2
output: { dir: out-${engine} }
`,
    );
    const p = await prepareJob(loadCompileConfig(file, []), file, { resume: false, progress: makeProgress('none') });
    t.is(p.job.recipe.optimizer.kind, 'adamw');
    // The initial prompts are actual tokens' prototypes, not a random draw: not all-zero, finite.
    const p0 = p.job.initial.get('deep_prompt_embeddings')!;
    t.true(p0.data.every(Number.isFinite) && p0.data.some((v) => v !== 0));
    const r = await train(p.job);
    const h = r.state.history;
    t.log(`${engine}/${init}: train loss ${h.map((e) => e.trainLoss.toFixed(3)).join(' → ')}, val top-1 ${h.map((e) => e.valTop1.toFixed(2)).join(' ')}`);
    t.is(r.state.engine, engine);
    t.true(h.at(-1)!.trainLoss < h[0]!.trainLoss, engine);
  }
});
