/**
 * Every method exports in every form, and each export computes what the training graph
 * computes: onnxruntime on uint8 NHWC images vs TfOps on the normalised float batch (≤ 1e-4),
 * on real images (the generated parts set).
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { exportTask, type ExportForm } from '../compiler/export/task.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { bindVit } from '../compiler/backbones/vit.ts';
import { mulberry32 } from '../devices/rng.ts';
import { makePartsSet } from '../compiler/data/parts.ts';
import { toBatch, preprocessFor } from '../compiler/data/transforms.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { maxAbsDiff, type HostTensor } from '../compiler/ops/host-tensor.ts';
import { fixtureVit } from './helpers/fixtures.ts';
import { randn } from './helpers/random-vit.ts';
import { randomImageSampler } from './helpers/image-sample.ts';

const C = 5;
const { cfg: c0, sd } = fixtureVit();
const cfg = { ...c0, numClasses: C };
const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
let images: Uint8Array;
let floatBatch: Float32Array;
const B = 10;

test.before(async () => {
  await initTf();
  const set = await makePartsSet({ perClass: 2, size: 32, seed: 4 });
  images = new Uint8Array(B * 32 * 32 * 3);
  set.samples.slice(0, B).forEach((s, i) => images.set(s.image, i * s.image.length));
  floatBatch = toBatch(set.samples.slice(0, B), preprocessFor(cfg)).x;
});

async function trained(name: string) {
  const m = METHODS[name]!;
  const options = m.resolveOptions((name.startsWith('vpt') ? { prompts: 4 } : {}) as never) as Record<string, unknown>;
  const params = new Map<string, HostTensor>();
  for (const [k, t] of backbone) if (m.trainsBackbone(k, options as never)) params.set(k, { shape: t.shape, data: t.data.map((v, i) => v + 0.01 * Math.sin(i)) });
  for (const [k, t] of await m.init({ cfg, numClasses: C, backbone, rng: mulberry32(3), sample: randomImageSampler(cfg, C) }, options as never)) params.set(k, t);
  // Trained prompts are larger than their init: scale them so a wrong fusion cannot hide.
  for (const k of ['prompt_embeddings', 'deep_prompt_embeddings']) {
    const p = params.get(k);
    if (p) params.set(k, { shape: p.shape, data: randn([...p.shape], 1, 17) });
  }
  return { method: m as never, options, params };
}

function reference(t: Awaited<ReturnType<typeof trained>>): Float32Array {
  const ops = new TfOps();
  const w = bindVit(ops, cfg, new Map([...backbone, ...[...t.params].filter(([k]) => backbone.has(k))]));
  w.head = { w: ops.param('head.weight', t.params.get('head.weight')!), b: ops.param('head.bias', t.params.get('head.bias')!) };
  const m = t.method as (typeof METHODS)[string];
  const y = tf.tidy(() => m.forward({ ops, cfg, w, param: (n) => ops.param(n, t.params.get(n)!), mode: 'eval' }, tf.tensor(floatBatch, [B, 3, 32, 32]), t.options as never));
  const out = y.dataSync() as Float32Array;
  y.dispose();
  ops.dispose();
  return out;
}

for (const name of Object.keys(METHODS).filter((n) => !METHODS[n]!.requiresClip)) {
  for (const form of ['fused', 'naive', 'shared'] as ExportForm[]) {
    if ((name === 'full' || name === 'da-vpt-bias') && form === 'shared') {
      test(`${name} tunes backbone weights, so has no shared-backbone form, and says so`, async (t) => {
        const task = await trained(name);
        t.throws(() => exportTask({ cfg, backbone, ...task }, { form }), { message: new RegExp(`${name} changes backbone weights, so there is no shared backbone`) });
      });
      continue;
    }
    test(`${name} exports ${form} and equals the training graph (uint8 NHWC in, ≤ 1e-4)`, async (t) => {
      const task = await trained(name);
      const ref = reference(task);
      const bytes = exportTask({ cfg, backbone, ...task }, { form });
      const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
      const feeds: Record<string, ort.Tensor> = { image: new ort.Tensor('uint8', images, [B, 32, 32, 3]) };
      if (form === 'shared') for (const n of s.inputNames.filter((n) => n !== 'image')) feeds[n] = new ort.Tensor('float32', task.params.get(n)!.data, [...task.params.get(n)!.shape]);
      const r = await s.run(feeds);
      await s.release();
      const d = maxAbsDiff(r.logits!.data as Float32Array, ref);
      t.log(`max |Δlogit| ${d.toExponential(2)}`);
      t.true(d <= 1e-4, `${d}`);
      const g = summarizeModel(bytes);
      if (form === 'shared') t.true(g.inputs.some((v) => v.name === 'head.weight'));
      if (name === 'vpt-deep' && form === 'fused') t.false(g.inputs.some((v) => v.name.includes('prompt')));
    });
  }
}

test('ORT offline optimisation (level extended) keeps the fused model equal to the training graph', async (t) => {
  const { optimizeOffline } = await import('../compiler/export/optimize.ts');
  const { verifyTask } = await import('../compiler/export/verify-task.ts');
  const task = { cfg, backbone, ...(await trained('vpt-deep')) };
  const fused = exportTask(task);
  const optimized = await optimizeOffline(fused);
  const ops = summarizeModel(optimized).opCounts;
  t.true(Object.keys(ops).some((k) => k.startsWith('com.microsoft:')), JSON.stringify(ops));
  t.false(Object.keys(ops).some((k) => k.includes('nchwc')));
  const set = await makePartsSet({ perClass: 4, size: 32, seed: 9 });
  const v = await verifyTask(task, optimized, set);
  t.log(`optimized: max |Δlogit| ${v.maxAbsDiff.toExponential(2)}, top-1 agreement ${v.top1Agreement}`);
  t.true(v.maxAbsDiff <= 1e-4);
  t.is(v.top1Agreement, 1);
});
