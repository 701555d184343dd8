/**
 * The shared-backbone shape from the compiler's side: a `shared` export cut into a backbone graph
 * and prompt-pack tensors gives the fused artifact's logits (≤ 1e-4, same top-1) — on real
 * Fashion-MNIST images through the shipped backbone with the demo task's method and options, read
 * back from signed .epk/.epp bytes and run by the runtime's sessions — and for every method.
 */
import test from 'ava';
import { resolve } from 'node:path';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { loadVitWeights } from '../compiler/backbones/vit-weights.ts';
import { loadFashionMnist } from '../compiler/data/fashion-mnist.ts';
import { makePartsSet } from '../compiler/data/parts.ts';
import { exportedLogits } from '../compiler/export/verify-task.ts';
import { packFeeds, planBackbonePack } from '../compiler/export/backbone-pack.ts';
import { exportTask } from '../compiler/export/task.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { maxAbsDiff } from '../compiler/ops/host-tensor.ts';
import { readArtifact, readModelArtifact, readPromptPack, isBackbone } from '../runtime/artifact/index.ts';
import { BackboneSession, ModelSession } from '../runtime/session/index.ts';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { fixtureVit, repoPath } from './helpers/fixtures.ts';
import { cpuProfile } from './helpers/runtime-models.ts';
import { backboneArtifact, fusedArtifact, promptPack, backbonePackTask } from './helpers/backbone-pack-models.ts';

test.before(async () => {
  await initTf();
});

function fixtureKeys(): string[] {
  return [...fixtureVit().sd.keys()].filter((k) => !k.startsWith('head.'));
}

/** An RGB tile S×S scaled to T×T by nearest neighbour. */
function scaleNearest(img: Uint8Array, S: number, T: number): Uint8Array {
  if (S === T) return img;
  const out = new Uint8Array(T * T * 3);
  for (let y = 0; y < T; y++)
    for (let x = 0; x < T; x++) {
      const src = (Math.floor((y * S) / T) * S + Math.floor((x * S) / T)) * 3;
      out.set(img.subarray(src, src + 3), (y * T + x) * 3);
    }
  return out;
}

const argmax = (d: Float32Array, r: number, C: number) => {
  let b = 0;
  for (let c = 1; c < C; c++) if (d[r * C + c]! > d[r * C + b]!) b = c;
  return b;
};

test('shipped backbone, demo task: backbone.epk + task.epp give the fused artifact\'s logits on real Fashion-MNIST images (≤ 1e-4, same top-1)', async (t) => {
  const demo = loadCompileConfig(repoPath('configs/demo-fmnist.yaml'), []);
  const cfg = vitConfig(demo.backbone.arch);
  const { stateDict } = loadVitWeights(resolve(repoPath('configs'), demo.backbone.weights), cfg);
  const C = demo.data.kind === 'fashion-mnist' ? (demo.data.classes?.length ?? 10) : 10;
  const task = await backbonePackTask(7, { classes: C, vit: { cfg, sd: stateDict }, method: demo.method.name, options: demo.method.options });
  const images = loadFashionMnist({ split: 'test', classes: [5, 6, 7, 8, 9], limit: 40 });
  // Frames at the model's input size, as a camera scaled to it delivers them (nearest: 32 → 64 px).
  const frames = images.samples.map((s) => scaleNearest(s.image, images.size, cfg.imgSize));
  t.is(frames.length, 200);

  // Through the files and the runtime, as a device runs them.
  const bb = readModelArtifact(backboneArtifact(task).bytes, 'backbone.epk');
  if (!isBackbone(bb)) return t.fail('not read as a shared backbone');
  const pack = readPromptPack(promptPack(task, bb.manifest.model.sha256).bytes, 'task.epp');
  const fused = await ModelSession.create(readArtifact(fusedArtifact(task).bytes, 'fused.epk'), { profile: cpuProfile({ maxBatch: 16 }) });
  const shared = await BackboneSession.create(bb, pack, { profile: cpuProfile({ maxBatch: 16 }) });
  t.teardown(async () => Promise.all([fused.release(), shared.release()]).then(() => undefined));
  const packTask = shared.bind(pack);
  let maxDiff = 0;
  let agree = 0;
  for (let i = 0; i < frames.length; i += 16) {
    const part = frames.slice(i, i + 16);
    const [a, b] = [await fused.run(part, 1), await packTask.run(part, 1)];
    a.predictions.forEach((p, j) => {
      maxDiff = Math.max(maxDiff, maxAbsDiff(p.logits, b.predictions[j]!.logits));
      if (p.index === b.predictions[j]!.index) agree++;
    });
  }
  t.log(`${demo.method.name} ${JSON.stringify(task.task.options)} on ${cfg.name}, ${frames.length} test images: max |Δlogit| ${maxDiff.toExponential(2)}, top-1 agreement ${agree}/${frames.length}`);
  t.true(maxDiff <= 1e-4, `${maxDiff}`);
  t.is(agree, frames.length);
  // The pack holds the per-block prefix K/V and the head, not the prompts: no prompt rows run per frame.
  t.deepEqual(task.split.inputs.map((i) => i.name).filter((n) => !n.includes('attn.prompt_')), ['head.weight', 'head.bias']);
  t.is(task.split.inputs.filter((i) => i.name.includes('attn.prompt_')).length, 2 * cfg.depth);
  t.false(summarizeModel(task.split.backbone).inputs.some((v) => v.name.includes('prompt_embeddings')));
});

test('one backbone graph for every task of a method: tasks with 3 and 5 labels and other prompts get the same bytes', async (t) => {
  const a = await backbonePackTask(1, { classes: 3 });
  const b = await backbonePackTask(2, { classes: 5 });
  t.deepEqual(Buffer.from(a.split.backbone), Buffer.from(b.split.backbone));
  t.deepEqual(a.split.inputs.find((i) => i.name === 'head.weight')!.shape, ['classes', a.task.cfg.embedDim]);
  const g = summarizeModel(a.split.backbone);
  t.deepEqual(g.outputs.map((o) => o.shape), [['N', 'classes'], ['N', 'classes']]);
  t.is(g.metadata['edgeprompt.form'], 'shared-backbone');
  // b's pack on a's backbone bytes: b's own fused logits.
  const set = await makePartsSet({ perClass: 2, size: 32, seed: 4 });
  const viaA = await exportedLogits(a.split.backbone, set, packFeeds(b.split.tensors));
  const fusedB = await exportedLogits(b.fused, set);
  t.true(maxAbsDiff(viaA, fusedB) <= 1e-4);
});

for (const name of Object.keys(METHODS).filter((n) => !METHODS[n]!.requiresClip)) {
  // A method that trains backbone weights has no shared form (export-task.test.ts checks the refusal).
  if (fixtureKeys().some((k) => METHODS[name]!.trainsBackbone(k, METHODS[name]!.resolveOptions({} as never)))) continue;
  test(`${name}: split shared export equals the fused export (uint8 NHWC, ≤ 1e-4, same top-1)`, async (t) => {
    const options = name.startsWith('vpt') ? { prompts: 3 } : {};
    const task = await backbonePackTask(5, { classes: 5, method: name, options });
    const set = await makePartsSet({ perClass: 3, size: 32, seed: 9 });
    const fused = await exportedLogits(task.fused, set);
    const shared = await exportedLogits(task.split.backbone, set, packFeeds(task.split.tensors));
    const d = maxAbsDiff(fused, shared);
    const n = set.samples.length;
    const same = Array.from({ length: n }, (_, r) => argmax(fused, r, 5) === argmax(shared, r, 5)).filter(Boolean).length;
    t.log(`pack inputs ${task.split.inputs.map((i) => `${i.name}[${i.shape.join(',')}]`).join(' ')}; max |Δlogit| ${d.toExponential(2)}`);
    // Pack tensors are named for what they are (vp.pos_embed.slice), never the recorder's v83.
    t.deepEqual(task.split.inputs.filter((i) => /^(v|const_)\d+(_\d+)?$/.test(i.name)), []);
    t.true(d <= 1e-4, `${d}`);
    t.is(same, n);
    // The pack carries only what the trained tensors determine; the backbone none of them.
    const bbInits = summarizeModel(task.split.backbone);
    t.is(bbInits.inputs[0]!.name, 'image');
    for (const k of task.task.params.keys()) t.false(bbInits.inputs.some((v) => v.name === k) && !task.split.tensors.has(k), k);
  });
}

test('a shared export whose trained tensors never meet the image is refused, naming why', async (t) => {
  const task = await backbonePackTask(3, { classes: 4 });
  const fused = exportTask(task.task); // no graph inputs besides the image: nothing for a pack
  t.throws(() => planBackbonePack(fused), { message: /no trained tensor reaches the image path; export it fused/ });
  t.throws(() => planBackbonePack(fused, 'pixels'), { message: /no graph input "pixels"/ });
});
