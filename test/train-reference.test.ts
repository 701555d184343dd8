/**
 * Training parity with the independent PyTorch reference (tools/reference/train_ref.py, written
 * from docs/spec/, float64): the same initial tensors and batches through the tfjs engine and
 * the shared SGD must reproduce the reference's per-step losses, step-0 gradients and final
 * tensors for vpt-deep, vpt-shallow and linear.
 */
import test from 'ava';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { newOptimizerState, optimizerStep, type TrainableTensor } from '../compiler/train/optim.ts';
import type { HostTensor } from '../compiler/ops/host-tensor.ts';
import type { OptimizerRecipe } from '../compiler/methods/method.ts';
import { fixturePath, fixtureVit, relErr } from './helpers/fixtures.ts';

test.before(async () => {
  await initTf();
});

for (const name of ['vpt-deep', 'vpt-shallow', 'linear']) {
  test(`${name}: per-step loss, step-0 gradients and final tensors match the PyTorch reference`, (t) => {
    const ref = readSafetensors(fixturePath(`train_ref_${name}.safetensors`)).tensors;
    const get = (k: string) => ref.get(k) ?? t.fail(`fixture lacks ${k}`) as never;
    const { cfg: c0, sd } = fixtureVit();
    const C = 4;
    const cfg = { ...c0, numClasses: C };
    const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
    const init = new Map<string, HostTensor>([...ref].filter(([k]) => k.startsWith('init.')).map(([k, v]) => [k.slice(5), v]));
    const method = METHODS[name]!;
    const opts = method.resolveOptions((name === 'linear' ? {} : { prompts: 3, dropout: 0 }) as never);
    const engine = new TfEngine({ cfg, backbone, method: method as never, options: opts as never, params: init, numClasses: C, labelSmoothing: 0, seed: 0, backend: 'test' });
    const params: TrainableTensor[] = [...init].map(([k, v]) => ({ name: k, shape: [...v.shape], value: Float32Array.from(v.data), decay: k !== 'head.bias' }));
    const recipe: OptimizerRecipe = { kind: 'sgd', lr: 0, scaleLrByBatch: false, momentum: 0.9, weightDecay: 1e-4, betas: [0.9, 0.999] };
    const state = newOptimizerState();
    const lrs = get('lr').data;
    const losses = get('loss').data;
    let worstLoss = 0;
    for (let s = 0; s < lrs.length; s++) {
      const y = Int32Array.from(get(`y.${s}`).data);
      const r = engine.step(get(`x.${s}`).data, y, s);
      worstLoss = Math.max(worstLoss, Math.abs(r.loss - losses[s]!) / Math.abs(losses[s]!));
      if (s === 0) for (const [k, g] of r.grads) t.true(relErr(g, get(`grad0.${k}`).data) <= 1e-4, `grad0 ${k}: ${relErr(g, get(`grad0.${k}`).data)}`);
      optimizerStep(recipe, state, params, r.grads, lrs[s]!);
      engine.setParams(new Map(params.map((p) => [p.name, p.value])));
    }
    let worstFinal = 0;
    for (const p of params) worstFinal = Math.max(worstFinal, relErr(p.value, get(`final.${p.name}`).data));
    engine.dispose();
    t.log(`${lrs.length} steps: worst relative loss error ${worstLoss.toExponential(2)}, worst relative final-tensor error ${worstFinal.toExponential(2)}`);
    t.true(worstLoss <= 1e-4);
    t.true(worstFinal <= 1e-4);
  });
}
