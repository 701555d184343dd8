/**
 * Pretraining parity with an independent PyTorch reference (tools/reference/pretrain_ref.py,
 * float64): from the same initial tensors and batches, full-parameter steps of the two-source
 * objective (a head per source, label smoothing, loss summed over sources ÷ batch, source a's
 * patch-level term on every patch token) through each
 * engine and the shared AdamW reproduce the reference's per-step losses, step-0 gradients of every
 * tensor and final tensors.
 */
import test from 'ava';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import type { Engine } from '../compiler/train/engine.ts';
import { newOptimizerState, optimizerStep, type TrainableTensor } from '../compiler/train/optim.ts';
import type { HostTensor } from '../compiler/ops/host-tensor.ts';
import type { OptimizerRecipe, Recipe } from '../compiler/methods/method.ts';
import { decaysTimm, pretrainMethod, type PretrainHead } from '../compiler/pretrain/method.ts';
import { fixturePath, relErr } from './helpers/fixtures.ts';

test.before(async () => {
  await initTf();
});

const optimizer: OptimizerRecipe = { kind: 'adamw', lr: 0, scaleLrByBatch: false, momentum: 0.9, weightDecay: 0.05, betas: [0.9, 0.999] };
const recipe: Recipe = { optimizer, epochs: 1, warmupEpochs: 0, batchSize: 6, schedulePer: 'step', labelSmoothing: 0.1, augment: { randomResizedCrop: false, hflip: false } };
const heads: PretrainHead[] = [
  { source: 'a', classes: ['a0', 'a1', 'a2'], offset: 0, labelSmoothing: 0.1, objective: 'classify', patches: 0.5, patchTokens: 16 },
  { source: 'b', classes: ['b0', 'b1'], offset: 3, labelSmoothing: 0.1, objective: 'classify', patches: 0, patchTokens: 16 },
];

for (const kind of ['ort', 'tfjs'] as const) {
  test(`${kind} engine: per-step loss, step-0 gradients of every tensor and final tensors match the PyTorch reference`, async (t) => {
    const ref = readSafetensors(fixturePath('pretrain_ref.safetensors')).tensors;
    const get = (k: string) => ref.get(k) ?? (t.fail(`fixture lacks ${k}`) as never);
    const cfg = vitConfig('vit_fixture_patch8_32', { imgSize: 16, patchSize: 4, embedDim: 24, depth: 2, numHeads: 2, numClasses: 5 });
    const init = new Map<string, HostTensor>([...ref].filter(([k]) => k.startsWith('init.')).map(([k, v]) => [k.slice(5), v]));
    const backbone = new Map([...init].filter(([k]) => !k.startsWith('heads.')));
    const method = pretrainMethod(heads, recipe);
    const spec = { cfg, backbone, method: method as never, options: {}, params: init, numClasses: 5, labelSmoothing: 0.1, seed: 0 };
    const engine: Engine = kind === 'ort' ? await OrtEngine.create(spec) : new TfEngine({ ...spec, backend: 'test' });
    t.teardown(() => engine.dispose());
    const params: TrainableTensor[] = [...init].map(([k, v]) => ({ name: k, shape: [...v.shape], value: Float32Array.from(v.data), decay: decaysTimm(k) }));
    t.is(params.length, 4 + 12 * 2 + 2 + 6, 'every backbone tensor, both heads and the patch head train');
    const state = newOptimizerState();
    const lrs = get('lr').data;
    const losses = get('loss').data;
    let worstLoss = 0;
    let worstGrad = 0;
    for (let s = 0; s < lrs.length; s++) {
      const y = Int32Array.from(get(`y.${s}`).data);
      // Patch labels [6, 16] (−1 on source b's rows) as the one-hot input the mixture builds.
      const pt = get(`pt.${s}`).data;
      const onehot = new Float32Array(6 * 16 * 3);
      pt.forEach((c, i) => c >= 0 && (onehot[i * 3 + c] = 1));
      const inputs = new Map([...method.batchInputs!(y, {}, {}), ['patch_targets.a', { shape: [6, 16, 3], data: onehot }]]);
      const r = await engine.step(get(`x.${s}`).data, y, s, inputs);
      worstLoss = Math.max(worstLoss, Math.abs(r.loss - losses[s]!) / Math.abs(losses[s]!));
      if (s === 0) {
        t.is(r.grads.size, params.length);
        for (const [k, g] of r.grads) worstGrad = Math.max(worstGrad, relErr(g, get(`grad0.${k}`).data));
      }
      optimizerStep(optimizer, state, params, r.grads, lrs[s]!);
      engine.setParams(new Map(params.map((p) => [p.name, p.value])));
    }
    // The key bias (rows D..2D of attn.qkv.bias) has a zero gradient in exact arithmetic (adding a
    // constant to every key shifts all of a query's scores equally; softmax ignores it), so its
    // float32 gradient is round-off, which Adam's normalisation turns into steps of up to lr. It is
    // compared as "stayed within Σ lr of its start"; every other value is compared as computed.
    const D = cfg.embedDim;
    const keyBias = (k: string) => /attn\.qkv\.bias$/.test(k);
    const drop = (k: string, v: Float32Array) => (keyBias(k) ? Float32Array.from([...v.subarray(0, D), ...v.subarray(2 * D)]) : v);
    let worstFinal = 0;
    let worstKey = '';
    for (const p of params) {
      const e = relErr(drop(p.name, p.value), drop(p.name, get(`final.${p.name}`).data));
      if (e > worstFinal) [worstFinal, worstKey] = [e, p.name];
      if (keyBias(p.name)) {
        const sumLr = lrs.reduce((a, v) => a + v, 0);
        for (const v of [p.value, get(`final.${p.name}`).data]) t.true(Math.max(...Array.from(v.subarray(D, 2 * D), Math.abs)) <= sumLr * 1.01, `${p.name}: key bias moved more than Σ lr`);
      }
    }
    t.log(`${lrs.length} steps: worst relative loss error ${worstLoss.toExponential(2)}, step-0 gradient ${worstGrad.toExponential(2)}, final tensor ${worstFinal.toExponential(2)} (${worstKey})`);
    t.true(worstLoss <= 1e-5);
    t.true(worstGrad <= 1e-4);
    // Adam divides by √v, so a value whose gradient is near float32 round-off moves by a different
    // fraction of lr than in float64: final tensors agree to 5e-4 of their largest value (the
    // gradients above, the actual computation, to 1e-4).
    t.true(worstFinal <= 5e-4);
  });
}
