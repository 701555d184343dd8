/**
 * The ort training engine on the fixture ViT: gradients equal the tfjs engine's for every
 * method (≤ 1e-4 relative), the PyTorch reference fixtures are reproduced step for step exactly
 * as test/train-reference.test.ts checks the tfjs engine, the training graph prunes frozen
 * weights, one graph serves any batch size, and dropout masks are a function of (seed, step).
 */
import test from 'ava';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { buildTrainingGraph } from '../compiler/train/training-graph.ts';
import { newOptimizerState, optimizerStep, type TrainableTensor } from '../compiler/train/optim.ts';
import { mulberry32 } from '../devices/rng.ts';
import type { HostTensor } from '../compiler/ops/host-tensor.ts';
import type { OptimizerRecipe } from '../compiler/methods/method.ts';
import { fixturePath, fixtureVit, relErr } from './helpers/fixtures.ts';
import { randn } from './helpers/random-vit.ts';
import { randomImageSampler } from './helpers/image-sample.ts';

test.before(async () => {
  await initTf();
});

const C = 4;
const { cfg: c0, sd } = fixtureVit();
const cfg = { ...c0, numClasses: C };
const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));

async function setup(name: string, extra: Record<string, unknown> = {}) {
  const m = METHODS[name]!;
  // Dropout off: the engines draw different masks (sa2vp's P₀/cross-block dropout likewise).
  const opts = m.resolveOptions((name.startsWith('vpt') ? { prompts: 3, dropout: 0, ...extra } : name === 'sa2vp' ? { dropout: 0 } : {}) as never);
  const params = new Map<string, HostTensor>();
  for (const [k, t] of backbone) if (m.trainsBackbone(k, opts)) params.set(k, t);
  for (const [k, t] of await m.init({ cfg, numClasses: C, backbone, rng: mulberry32(7), sample: randomImageSampler(cfg, C) }, opts)) params.set(k, t);
  return { cfg, backbone, method: m as never, options: opts as never, params, numClasses: C, labelSmoothing: 0.1, seed: 1 };
}

for (const name of Object.keys(METHODS).filter((n) => !METHODS[n]!.requiresClip)) {
  test(`${name}: ort loss, gradients and eval logits match the tfjs engine`, async (t) => {
    const common = await setup(name);
    const tfe = new TfEngine({ ...common, backend: 'test' });
    const oe = await OrtEngine.create(common);
    const x = randn([3, 3, 32, 32], 1, 5);
    const y = Int32Array.of(0, 1, 3);
    // Methods with per-batch inputs (DA-VPT's proxy mask) get them from their initial state.
    const m = METHODS[name]!;
    const state = await m.initState?.({ cfg, numClasses: C, backbone, rng: mulberry32(7), sample: randomImageSampler(cfg, C), params: common.params }, common.options);
    const inputs = state && m.batchInputs?.(y, state, common.options);
    const a = tfe.step(x, y, 0, inputs);
    const b = await oe.step(x, y, 0, inputs);
    t.deepEqual([...b.grads.keys()].sort(), [...a.grads.keys()].sort());
    let worst = 0;
    for (const [k, g] of a.grads) {
      t.is(b.grads.get(k)!.length, g.length, k);
      worst = Math.max(worst, relErr(b.grads.get(k)!, g));
    }
    const logits = relErr(await oe.predict(x, 3), tfe.predict(x, 3));
    t.log(`loss ${b.loss.toFixed(6)} vs ${a.loss.toFixed(6)}; worst gradient ${worst.toExponential(2)}; logits ${logits.toExponential(2)}`);
    t.true(Math.abs(a.loss - b.loss) <= 1e-5 * Math.abs(a.loss));
    t.true(worst <= 1e-4);
    t.true(logits <= 1e-5);
    tfe.dispose();
    oe.dispose();
  });
}

for (const name of ['vpt-deep', 'vpt-shallow', 'linear']) {
  test(`${name}: ort reproduces the PyTorch reference (per-step loss, step-0 gradients, final tensors)`, async (t) => {
    const ref = readSafetensors(fixturePath(`train_ref_${name}.safetensors`)).tensors;
    const get = (k: string) => ref.get(k) ?? (t.fail(`fixture lacks ${k}`) as never);
    const init = new Map<string, HostTensor>([...ref].filter(([k]) => k.startsWith('init.')).map(([k, v]) => [k.slice(5), v]));
    const method = METHODS[name]!;
    const opts = method.resolveOptions((name === 'linear' ? {} : { prompts: 3, dropout: 0 }) as never);
    const engine = await OrtEngine.create({ cfg, backbone, method: method as never, options: opts as never, params: init, numClasses: C, labelSmoothing: 0, seed: 0 });
    const params: TrainableTensor[] = [...init].map(([k, v]) => ({ name: k, shape: [...v.shape], value: Float32Array.from(v.data), decay: k !== 'head.bias' }));
    const recipe: OptimizerRecipe = { kind: 'sgd', lr: 0, scaleLrByBatch: false, momentum: 0.9, weightDecay: 1e-4, betas: [0.9, 0.999] };
    const state = newOptimizerState();
    const lrs = get('lr').data;
    const losses = get('loss').data;
    let worstLoss = 0;
    let worstGrad = 0;
    for (let s = 0; s < lrs.length; s++) {
      const r = await engine.step(get(`x.${s}`).data, Int32Array.from(get(`y.${s}`).data), s);
      worstLoss = Math.max(worstLoss, Math.abs(r.loss - losses[s]!) / Math.abs(losses[s]!));
      if (s === 0) for (const [k, g] of r.grads) worstGrad = Math.max(worstGrad, relErr(g, get(`grad0.${k}`).data));
      optimizerStep(recipe, state, params, r.grads, lrs[s]!);
      engine.setParams(new Map(params.map((p) => [p.name, p.value])));
    }
    let worstFinal = 0;
    for (const p of params) worstFinal = Math.max(worstFinal, relErr(p.value, get(`final.${p.name}`).data));
    engine.dispose();
    t.log(`${lrs.length} steps: worst relative loss error ${worstLoss.toExponential(2)}, step-0 gradient ${worstGrad.toExponential(2)}, final tensors ${worstFinal.toExponential(2)}`);
    t.true(worstGrad <= 1e-4);
    t.true(worstLoss <= 1e-4);
    t.true(worstFinal <= 1e-4);
  });
}

test('vpt-deep training graph: backward only on paths from the prompts and head; frozen weights get no gradient', async (t) => {
  const tg = buildTrainingGraph(await setup('vpt-deep'));
  const init = new Set(tg.graph.initializers.map((i) => i.name));
  t.false([...tg.gradient.active].some((v) => init.has(v)), 'a frozen weight is on the gradient path');
  const backward = tg.graph.nodes.slice(tg.gradient.forwardNodes);
  const products = backward.filter((n) => n.op === 'MatMul' || n.op === 'Gemm').length;
  // Per block: dX of qkv, proj, fc1, fc2 (frozen: no dW) + both operands of q·kᵀ and attn·v = 8; head: dX and dW.
  t.is(products, 8 * cfg.depth + 2, `backward matrix products: ${products}`);
  t.deepEqual([...tg.gradient.grads.keys()].sort(), ['deep_prompt_embeddings', 'head.bias', 'head.weight', 'prompt_embeddings']);
  t.deepEqual(tg.gradient.unreached, []);
  t.deepEqual(tg.graph.outputs.map((o) => o.name).slice(0, 2), ['loss', 'logits']);
  t.deepEqual(tg.graph.outputs.map((o) => o.name).slice(2).sort(), ['grad:deep_prompt_embeddings', 'grad:head.bias', 'grad:head.weight', 'grad:prompt_embeddings']);
  t.is(tg.graph.inputs.find((i) => i.name === 'input')!.shape[0], 'N');
  // The patch embedding only sees the image: nothing flows back into it.
  t.false(backward.some((n) => n.inputs.some((i) => i.includes('patch_embed'))));
});

test('one ort graph serves any batch size; a batch of one row equals that row of a bigger batch', async (t) => {
  const oe = await OrtEngine.create(await setup('vpt-deep'));
  const x = randn([3, 3, 32, 32], 1, 8);
  const all = await oe.predict(x, 3);
  const one = await oe.predict(x.subarray(0, 3 * 32 * 32), 1);
  t.true(relErr(one, all.subarray(0, C)) <= 1e-5);
  const r2 = await oe.step(x.subarray(0, 2 * 3 * 32 * 32), Int32Array.of(1, 2), 0);
  t.true(Number.isFinite(r2.loss));
  await t.throwsAsync(oe.step(x.subarray(0, 100), Int32Array.of(1), 0), { message: /ort engine: input has 100 values, expected \[1, 3, 32, 32\]/ });
  oe.dispose();
});

test('prompt dropout: masks are graph inputs drawn from (seed, step): same step same gradients, another step others', async (t) => {
  const common = await setup('vpt-deep', { dropout: 0.3 });
  const oe = await OrtEngine.create(common);
  const again = await OrtEngine.create(common);
  t.true(oe.notes[0]!.includes(`${cfg.depth} dropout mask(s)`), oe.notes[0]);
  const x = randn([2, 3, 32, 32], 1, 9);
  const y = Int32Array.of(0, 2);
  const a = await oe.step(x, y, 5);
  const b = await again.step(x, y, 5); // a fresh engine (a resumed run) draws the same masks
  const c = await oe.step(x, y, 6);
  const g = (r: typeof a) => r.grads.get('prompt_embeddings')!;
  t.deepEqual([...g(a)], [...g(b)]);
  t.true(relErr(g(c), g(a)) > 1e-3);
  // Dropped prompt elements get exactly zero gradient: ~30 % of them, at the mask's positions.
  const zeros = g(a).filter((v) => v === 0).length / g(a).length;
  t.true(zeros > 0.15 && zeros < 0.45, `zero fraction ${zeros}`);
  // Eval runs without dropout: predictions are deterministic and mask-free.
  t.deepEqual([...(await oe.predict(x, 2))], [...(await again.predict(x, 2))]);
  oe.dispose();
  again.dispose();
});
