/**
 * DA-VPT (compiler/methods/da-vpt.ts) against the independent PyTorch reference
 * (tools/reference/method_da_vpt.py → test/fixtures/method_da_vpt.safetensors, fixture ViT,
 * float64): Proxy-Anchor alone on similarities up to ±5 (past float32's exp range), the full
 * loss (CE + metric terms at two proxy blocks of different prompt counts) with its gradients
 * through both engines, for the prompt-only and the +bias variant. Then init bound and counts,
 * cosine k-means properties, a real training run that re-clusters every epoch and resumes with
 * the same mapping, and the fused export (per-block prefix K/V of varying length) against the
 * unfused graph for both variants.
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { cosineKmeans } from '../compiler/methods/kmeans.ts';
import { daVpt, daVptBias, proxyAnchorLoss, xavierBound, type DaVptState } from '../compiler/methods/da-vpt.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { exportTask } from '../compiler/export/task.ts';
import { decodeGraph, summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress, type Progress } from '../compiler/train/progress.ts';
import { mulberry32 } from '../devices/rng.ts';
import { maxAbsDiff, type HostTensor } from '../compiler/ops/host-tensor.ts';
import type { PromptMethod } from '../compiler/methods/method.ts';
import { fixturePath, fixtureVit, relErr } from './helpers/fixtures.ts';
import { randn } from './helpers/random-vit.ts';

test.before(async () => {
  await initTf();
});

const ref = readSafetensors(fixturePath('method_da_vpt.safetensors')).tensors;
const get = (k: string): HostTensor => {
  const t = ref.get(k);
  if (!t) throw new Error(`method_da_vpt.safetensors lacks ${k}`);
  return t;
};
const C = 4;
const B = 6;
const { cfg: c0, sd } = fixtureVit();
const cfg = { ...c0, numClasses: C };
const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
const D = cfg.embedDim;
const L = cfg.depth;
const x = get('x').data;
const y = Int32Array.from(get('label').data);
const state: DaVptState = { pLen: 2, mapping: [...get('mapping').data], centres: null, kmeansIterations: 0 };
const BIAS_KEYS = [...ref.keys()].filter((k) => /^bias\.(cls_token|blocks\.)/.test(k)).map((k) => k.slice(5));

type Variant = 'plain' | 'bias';
const methodOf = (v: Variant) => (v === 'plain' ? daVpt : daVptBias) as unknown as PromptMethod<Record<string, unknown>>;
// The reference's options: proxies (2) at blocks 1–2, 3 other prompts at block 0, w_vpt 0.5, w_cls 0.3.
const optionsOf = (v: Variant) => methodOf(v).resolveOptions({ proxyPrompts: 2, proxyStart: 1, proxyEnd: 2, prompts: 3, vptLossWeight: 0.5, clsLossWeight: 0.3, vptNorm: v === 'plain' ? 'l2' : 'none' });
function paramsOf(v: Variant): Map<string, HostTensor> {
  const m = new Map<string, HostTensor>(['proxy_prompt_tokens', 'other_prompt_tokens', 'head.weight', 'head.bias'].map((k) => [k, get(k)]));
  if (v === 'bias') for (const k of BIAS_KEYS) m.set(k, get(`bias.${k}`));
  return m;
}

test('Proxy-Anchor equals the PyTorch reference on similarities up to ±5 (exp(32·5.1) overflows float32)', (t) => {
  const ops = new TfOps();
  const S = get('pa.S');
  const pos = get('pa.pos');
  const v = tf.tidy(() => proxyAnchorLoss(ops, tf.tensor(S.data, [...S.shape]), tf.tensor(pos.data, [...pos.shape])).dataSync()[0]!);
  const want = get('pa.loss').data[0]!;
  t.log(`PA ${v} vs ${want}`);
  t.true(Number.isFinite(v));
  t.true(Math.abs(v - want) <= 1e-5 * Math.abs(want), `${v} vs ${want}`);
  ops.dispose();
});

for (const v of ['plain', 'bias'] as Variant[]) {
  test(`${v}: loss (CE + metric terms) and every gradient equal the PyTorch reference in both engines`, async (t) => {
    const common = { cfg, backbone, method: methodOf(v), options: optionsOf(v), params: paramsOf(v), numClasses: C, labelSmoothing: 0, seed: 0 };
    const tfe = new TfEngine({ ...common, backend: 'test' });
    const oe = await OrtEngine.create(common);
    const inputs = methodOf(v).batchInputs!(y, state, common.options);
    t.deepEqual([...inputs.get('proxy_mask')!.data], [...y].flatMap((c) => (state.mapping[c] === 0 ? [1, 0] : [0, 1])));
    const wantLoss = get(`${v}.loss`).data[0]!;
    const wantLogits = get(`${v}.logits`).data;
    const a = tfe.step(x, y, 0, inputs);
    const b = await oe.step(x, y, 0, inputs);
    for (const [name, r] of [['tfjs', a], ['ort', b]] as const) {
      let worst = 0;
      for (const k of paramsOf(v).keys()) worst = Math.max(worst, relErr(r.grads.get(k)!, get(`${v}.grad.${k}`).data));
      t.log(`${name}: loss ${r.loss.toFixed(6)} vs ${wantLoss.toFixed(6)} (CE ${get(`${v}.ce`).data[0]!.toFixed(4)} + DA ${get(`${v}.da`).data[0]!.toFixed(4)}), worst gradient ${worst.toExponential(2)}`);
      t.true(Math.abs(r.loss - wantLoss) <= 1e-5 * wantLoss, name);
      t.true(worst <= 1e-4, name);
    }
    let between = 0;
    for (const [k, g] of a.grads) between = Math.max(between, relErr(b.grads.get(k)!, g));
    t.true(between <= 1e-4, `tfjs vs ort gradients ${between}`);
    t.true(maxAbsDiff(tfe.predict(x, B), wantLogits) <= 1e-4);
    t.true(maxAbsDiff(await oe.predict(x, B), wantLogits) <= 1e-4);
    const e = t.throws(() => tfe.step(x, y, 0));
    t.regex(e!.message, /per-batch input "proxy_mask" was not provided/);
    tfe.dispose();
    oe.dispose();
  });
}

test('init: xavier-uniform bounds (÷8), head N(0, 0.02²); p_len = min(p_len, C); counts and trained backbone keys', async (t) => {
  const ctx = { cfg, numClasses: C, backbone, rng: mulberry32(5) };
  const o = daVpt.resolveOptions({ proxyPrompts: 10, prompts: 20 });
  const p = await daVpt.init(ctx, o);
  t.deepEqual(p.get('proxy_prompt_tokens')!.shape, [1, C, D]); // default: the last block, 10 → C proxies
  t.deepEqual(p.get('other_prompt_tokens')!.shape, [L - 1, 20, D]);
  for (const [k, depth, len] of [['proxy_prompt_tokens', 1, C], ['other_prompt_tokens', L - 1, 20]] as const) {
    const bound = xavierBound(depth, len, D) / 8;
    const max = Math.max(...p.get(k)!.data.map(Math.abs));
    t.true(max <= bound && max > 0.9 * bound, `${k}: max ${max} vs bound ${bound}`);
  }
  t.is(xavierBound(2, 10, 768) / 8, Math.sqrt(6 / (768 * 12)) / 8); // docs/spec/da-vpt.md#init's example: 0.0255/8
  const raw = await daVpt.init({ ...ctx, rng: mulberry32(5) }, { ...o, initDivideBy8: false });
  t.true(Math.abs(Math.max(...raw.get('other_prompt_tokens')!.data.map(Math.abs)) - 8 * Math.max(...p.get('other_prompt_tokens')!.data.map(Math.abs))) < 1e-6);
  const h = p.get('head.weight')!.data;
  const sd2 = Math.sqrt(h.reduce((s, v) => s + v * v, 0) / h.length);
  t.true(Math.abs(sd2 - 0.02) < 0.003, `head std ${sd2}`);
  t.true(p.get('head.bias')!.data.every((b) => b === 0));
  const trainedKeys = [...backbone.keys()].filter((k) => daVptBias.trainsBackbone(k, o));
  t.is(trainedKeys.length, 1 + 6 * L);
  t.true(trainedKeys.includes('cls_token') && trainedKeys.includes('blocks.2.attn.qkv.bias') && !trainedKeys.includes('blocks.0.mlp.fc1.bias') && !trainedKeys.includes('pos_embed'));
  t.is([...backbone.keys()].filter((k) => daVpt.trainsBackbone(k, o)).length, 0);
  t.throws(() => daVpt.init(ctx, { ...o, proxyStart: 2, proxyEnd: 3 }), { message: /proxyStart 2 … proxyEnd 3 must satisfy 0 ≤ proxyStart ≤ proxyEnd < depth 3/ });
  t.throws(() => daVpt.resolveOptions({ vptNorm: 'layer' } as never), { message: /vptNorm/ });
});

test('cosine k-means: seeded and deterministic, finds separated clusters, a warm start from its result is a fixed point', (t) => {
  const rng = mulberry32(3);
  const Dk = 8;
  // Two directions ± noise, 6 rows each, plus an all-zero row (a class without images).
  const X = new Float32Array(13 * Dk);
  for (let i = 0; i < 12; i++) for (let d = 0; d < Dk; d++) X[i * Dk + d] = (d === (i < 6 ? 0 : 1) ? 3 : 0) + 0.3 * (rng() - 0.5);
  const run = (seed: number, init?: Float32Array) => cosineKmeans(X, Dk, 2, { iterations: 20, tol: 1e-4, rng: mulberry32(seed), ...(init ? { init } : {}) });
  const a = run(1);
  t.deepEqual(run(1), a);
  const first = a.assign[0]!;
  t.deepEqual([...a.assign.slice(0, 12)], [...Array(6).fill(first), ...Array(6).fill(1 - first)]);
  t.true(a.assign[12]! === 0 || a.assign[12]! === 1);
  const warm = run(2, a.centres);
  t.deepEqual([...warm.centres], [...a.centres]);
  t.deepEqual(warm.assign.slice(0, 12), a.assign.slice(0, 12));
  t.is(warm.iterations, 1);
  t.throws(() => cosineKmeans(new Float32Array(2 * Dk), Dk, 2, { iterations: 5, tol: 0, rng }), { message: /every class mean is zero/ });
});

const dir = mkdtempSync(join(tmpdir(), 'ep-davpt-'));
async function job(name: string, opts: { resume?: boolean; abortAtStep?: number } = {}) {
  const f = join(dir, `${name}.yaml`);
  // 4 classes onto 2 proxies: a real k-means mapping, re-run after every epoch.
  writeFileSync(
    f,
    `name: ${name}
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: fashion-mnist, classes: [5, 6, 7, 9], limitPerClass: 12, valLimitPerClass: 4 }
method: { name: da-vpt, options: { proxyPrompts: 2, prompts: 2, samplePerClass: 3, vptLossWeight: 0.5, clsLossWeight: 0.3 } }
recipe: { epochs: 2, batchSize: 8, warmupEpochs: 1, optimizer: { lr: 0.05 } }
engine: ort
seed: 4
output: { dir: ${name}-out }
`,
  );
  const abort = new AbortController();
  const progress: Progress = { ...makeProgress('none'), step: (i) => void (i === opts.abortAtStep && abort.abort()) };
  return (await prepareJob(loadCompileConfig(f, []), f, { resume: opts.resume ?? false, progress, signal: abort.signal })).job;
}

test('training re-clusters the class→proxy mapping every epoch; an interrupted run resumes with the same mapping', async (t) => {
  const cut = await train(await job('cut', { abortAtStep: 2 }));
  t.true(cut.interrupted);
  const initial = cut.state.methodState as DaVptState;
  t.is(initial.pLen, 2);
  t.is(initial.mapping.length, 4);
  t.true(initial.mapping.every((j) => j === 0 || j === 1));
  t.is(initial.centres!.length, 2 * D);
  const straight = await train(await job('straight'));
  const final = straight.state.methodState as DaVptState;
  t.notDeepEqual(final.centres, initial.centres, 'epochEnd re-clustered with the prompted model');
  t.true(final.kmeansIterations >= 1);
  const resumed = await train(await job('cut', { resume: true }));
  t.deepEqual(resumed.state.methodState, final);
  t.is(resumed.state.bestTop1, straight.state.bestTop1);
});

for (const v of ['plain', 'bias'] as Variant[]) {
  test(`${v}: the fused export (per-block prefix K/V of 3, 2, 2 rows) equals the unfused graph (≤ 1e-4)`, async (t) => {
    const params = paramsOf(v);
    // Trained prompts are larger than the fixture's: a wrong fusion cannot hide.
    params.set('proxy_prompt_tokens', { shape: [2, 2, D], data: randn([2, 2, D], 1, 21) });
    params.set('other_prompt_tokens', { shape: [1, 3, D], data: randn([1, 3, D], 1, 22) });
    const task = { cfg, backbone, method: methodOf(v), options: optionsOf(v), params };
    const xs = new ort.Tensor('float32', Float32Array.from(randn([B, 3, 32, 32], 1, 23)), [B, 3, 32, 32]);
    const logits = async (form: 'fused' | 'naive') => {
      const bytes = exportTask(task, { form, input: 'float-nchw' });
      const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
      const r = await s.run({ input: xs });
      await s.release();
      return { bytes, logits: r.logits!.data as Float32Array };
    };
    const fused = await logits('fused');
    const naive = await logits('naive');
    const d = maxAbsDiff(fused.logits, naive.logits);
    t.log(`max |Δlogit| ${d.toExponential(2)}`);
    t.true(d <= 1e-4);
    const g = summarizeModel(fused.bytes);
    t.deepEqual(g.inputs.map((i) => i.name), ['input']);
    // The prefix keys and values, [1, H, n, dh] constants: n = 3 at block 0, 2 at the proxy blocks.
    const H = cfg.numHeads;
    const prefix = decodeGraph(fused.bytes).initializers.filter((i) => i.shape.length === 4 && i.shape[0] === 1 && i.shape[1] === H && i.shape[3] === D / H);
    t.deepEqual(prefix.map((i) => i.shape[2]).sort(), [2, 2, 2, 2, 3, 3]);
  });
}
