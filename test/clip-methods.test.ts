/**
 * Every CLIP method on the fixture CLIP (tiny random weights, the hand-made vocabulary): logits
 * [B, C], gradients for exactly its trainable tensors, the ort engine equal to the tfjs engine,
 * and every export form equal to the training graph on uint8 images; zero-shot's fused graph
 * holds one class head and no text tower; a CLIP method on a plain ViT is refused.
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { exportTask } from '../compiler/export/task.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { bindBackbone } from '../compiler/backbones/bind.ts';
import { mulberry32 } from '../devices/rng.ts';
import { summarizeModel, decodeModel } from '../compiler/ops/onnx-proto.ts';
import { maxAbsDiff, type HostTensor } from '../compiler/ops/host-tensor.ts';
import { fixtureVit, relErr } from './helpers/fixtures.ts';
import { randn } from './helpers/random-vit.ts';
import { randomImageSampler } from './helpers/image-sample.ts';
import { fixtureClip, fixtureClipTask } from './helpers/clip.ts';
import type { ClipTask } from '../compiler/backbones/clip-task.ts';

const fixture = fixtureClip();
const { cfg: clipCfg, stateDict } = fixture;
let task: ClipTask;
test.before(async () => {
  await initTf();
  task = fixtureClipTask().task; // runs the text tower: after initTf
});

const cfg = clipCfg.vision;
const C = 4;
const B = 3;
const CLIP_METHODS = Object.keys(METHODS).filter((n) => METHODS[n]!.requiresClip);
// Small prompts: the fixture's text context is 16 tokens.
const OPTIONS: Record<string, Record<string, unknown>> = { coop: { contextTokens: 4 }, dapt: { visualPrompts: 3, textContext: 4, prototypeShots: 2 }, 'clip-vpt-shallow': { prompts: 3 } };
const D = cfg.embedDim;
const W = clipCfg.text.width;
const EXPECTED: Record<string, number> = {
  'zero-shot': 0,
  coop: 4 * W,
  'clip-vp-inner': 3 * (32 * 32 - 24 * 24),
  'clip-vp-outer': 3 * (32 * 32 - 24 * 24),
  'clip-vpt-shallow': 3 * D,
  dapt: 3 * D + 4 * W,
};

async function setup(name: string, trainedScale = 0) {
  const m = METHODS[name]!;
  const options = m.resolveOptions((OPTIONS[name] ?? {}) as never) as Record<string, unknown>;
  const init = { cfg, numClasses: C, backbone: stateDict, rng: mulberry32(7), sample: randomImageSampler(cfg, C), clip: task };
  const params = new Map<string, HostTensor>(await m.init(init, options as never));
  // Trained prompts are larger than their init: scale them so a wrong fusion cannot hide.
  if (trainedScale) for (const [k, p] of params) params.set(k, { shape: p.shape, data: randn([...p.shape], trainedScale, 17 + k.length) });
  const state = await m.initState?.({ ...init, params }, options as never);
  return { m, options, params, state, spec: { cfg, backbone: stateDict, method: m as never, options: options as never, params, numClasses: C, labelSmoothing: 0.1, seed: 1, clip: task } };
}

for (const name of CLIP_METHODS) {
  test(`${name}: logits [B, C], ${EXPECTED[name]} trainable values, gradients for exactly those; ort equals tfjs`, async (t) => {
    const { m, options, params, state, spec } = await setup(name);
    t.is([...params.values()].reduce((s, p) => s + p.data.length, 0), EXPECTED[name]!);
    const tfe = new TfEngine({ ...spec, backend: 'test' });
    const oe = await OrtEngine.create(spec);
    const x = randn([B, 3, 32, 32], 1, 5);
    const logits = tfe.predict(x, B);
    t.is(logits.length, B * C);
    t.true(logits.every(Number.isFinite));
    t.true(relErr(await oe.predict(x, B), logits) <= 1e-5, 'ort logits');
    if (params.size) {
      const y = Int32Array.of(0, 1, 3);
      const inputs = state && m.batchInputs?.(y, state, options as never);
      const a = tfe.step(x, y, 0, inputs);
      const b = await oe.step(x, y, 0, inputs);
      t.deepEqual([...a.grads.keys()].sort(), [...params.keys()].sort());
      t.deepEqual([...b.grads.keys()].sort(), [...params.keys()].sort());
      let worst = 0;
      for (const [k, g] of a.grads) {
        t.true(g.some((v) => v !== 0), `zero gradient for ${k}`);
        worst = Math.max(worst, relErr(b.grads.get(k)!, g));
      }
      t.log(`loss tfjs ${a.loss.toFixed(6)} ort ${b.loss.toFixed(6)}; worst gradient ${worst.toExponential(2)}`);
      t.true(Math.abs(a.loss - b.loss) <= 1e-5 * Math.abs(a.loss));
      t.true(worst <= 1e-4);
    }
    tfe.dispose();
    oe.dispose();
  });

  test(`${name}: fused and naive exports equal the training graph on uint8 images; no shared form`, async (t) => {
    const { m, options, params } = await setup(name, name.startsWith('clip-vp') ? 1 : 0.5);
    const x = randn([B, 3, 32, 32], 1, 21);
    // uint8 images and their normalised float form.
    const u8 = Uint8Array.from(x, (v) => Math.max(0, Math.min(255, Math.round(128 + 60 * v))));
    const nchw = new Float32Array(B * 3 * 32 * 32);
    for (let b = 0; b < B; b++) for (let h = 0; h < 32; h++) for (let w = 0; w < 32; w++) for (let c = 0; c < 3; c++) nchw[((b * 3 + c) * 32 + h) * 32 + w] = (u8[((b * 32 + h) * 32 + w) * 3 + c]! / 255 - cfg.mean[c]!) / cfg.std[c]!;
    const ops = new TfOps();
    const { w, clip } = bindBackbone(ops, { cfg, backbone: stateDict, params, clip: task });
    const ref = tf.tidy(() => m.forward({ ops, cfg, w, clip: clip!, param: (n) => ops.weight(n, params.get(n)!), mode: 'eval' }, tf.tensor(nchw, [B, 3, 32, 32]), options as never).dataSync() as Float32Array);
    ops.dispose();
    const exp = { cfg, backbone: stateDict, method: m as never, options, params, clip: task };
    for (const form of ['fused', 'naive'] as const) {
      const bytes = exportTask(exp, { form });
      const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
      const r = await s.run({ image: new ort.Tensor('uint8', u8, [B, 32, 32, 3]) });
      await s.release();
      const d = maxAbsDiff(r.logits!.data as Float32Array, ref);
      t.log(`${form}: max |Δlogit| ${d.toExponential(2)}`);
      t.true(d <= 1e-4, `${form} ${d}`);
      if (form === 'fused') {
        const g = decodeModel(bytes).graph;
        t.false(g.initializers.some((i) => i.name.startsWith('text.')), 'no text tower weights on the device');
        const head = g.initializers.find((i) => i.name === 'clip.class_head');
        t.deepEqual(head?.shape, [C, clipCfg.embedDim], 'one constant class head [C, E]');
        t.deepEqual(summarizeModel(bytes).inputs.map((i) => i.name), ['image']);
        // ln_pre on the patches, two per block, ln_post: ln_pre(CLS + pos[0]) is a folded constant row.
        t.is(g.nodes.filter((n) => n.op === 'LayerNormalization').length, 2 + 2 * cfg.depth);
        // ln_post carries no affine: γ and β live in the projection.
        const lnPost = g.nodes.filter((n) => n.op === 'LayerNormalization').at(-1)!;
        const gamma = g.initializers.find((i) => i.name === lnPost.inputs[1]);
        t.true(gamma !== undefined && [...gamma.data!].every((v) => v === 1), 'ln_post scale is all ones');
      }
    }
    t.throws(() => exportTask(exp, { form: 'shared' }), { message: /not built for CLIP tasks yet; export it fused/ });
  });
}

test('a CLIP method on a plain ViT is refused with one line naming the backbone', async (t) => {
  const { cfg: vit, sd } = fixtureVit();
  for (const name of CLIP_METHODS) {
    const m = METHODS[name]!;
    const e = await t.throwsAsync(async () => m.init({ cfg: vit, numClasses: 3, backbone: sd, rng: mulberry32(1) }, m.resolveOptions({} as never) as never));
    t.regex(e!.message, new RegExp(`^${name} needs a CLIP backbone \\(backbone.arch clip_\\*, with backbone.tokenizer\\); this task's backbone is vit_fixture_patch8_32$`));
  }
});
