/**
 * The CLIP methods against the independent float64 PyTorch reference
 * (tools/reference/method_clip.py) on the fixture CLIP: logits of zero-shot, CoOp, VP inner and
 * outer, VPT-shallow and DAPT; CoOp's and DAPT's loss and gradients (DAPT with β_v 10, β_t 1 so
 * both dispersion terms count), through the tfjs and the ort engine.
 */
import test from 'ava';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { TfEngine } from '../compiler/train/engine-tfjs.ts';
import { OrtEngine } from '../compiler/train/engine-ort.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { maxAbsDiff, type HostTensor } from '../compiler/ops/host-tensor.ts';
import type { Engine } from '../compiler/train/engine.ts';
import type { ClipTask } from '../compiler/backbones/clip-task.ts';
import { fixturePath, get, relErr } from './helpers/fixtures.ts';
import { fixtureClipTask } from './helpers/clip.ts';

const ref = readSafetensors(fixturePath('method_clip.safetensors')).tensors;
const x = get(ref, 'input');
const y = Int32Array.from(get(ref, 'labels').data);
const B = y.length;
let fx: ReturnType<typeof fixtureClipTask>;

test.before(async () => {
  await initTf();
  fx = fixtureClipTask({ classes: ['cat', 'dog', 'cat_dog', 'a dog!'], templates: ['a {}.', '{} & cat'] });
});

const PARAMS: Record<string, string[]> = {
  'zero-shot': [],
  coop: ['text_ctx'],
  'clip-vp-inner': ['pad_up', 'pad_down', 'pad_left', 'pad_right'],
  'clip-vp-outer': ['pad_up', 'pad_down', 'pad_left', 'pad_right'],
  'clip-vpt-shallow': ['prompt_embeddings'],
  dapt: ['prompt_embeddings', 'text_ctx'],
};
const OPTIONS: Record<string, Record<string, unknown>> = {
  'clip-vp-inner': { padSize: 4 },
  'clip-vp-outer': { padSize: 4, antialias: true },
  'clip-vpt-shallow': { prompts: 3 },
  coop: { contextTokens: 4 },
  dapt: { visualPrompts: 3, textContext: 4, betaIntra: 10, betaInter: 1, tau: 2 },
};

async function engines(name: string): Promise<{ engines: [string, Engine][]; task: ClipTask; options: Record<string, unknown> }> {
  const m = METHODS[name]!;
  const options = m.resolveOptions((OPTIONS[name] ?? {}) as never) as Record<string, unknown>;
  const params = new Map<string, HostTensor>(PARAMS[name]!.map((k) => [k, get(ref, k)]));
  const spec = { cfg: fx.cfg.vision, backbone: fx.stateDict, method: m as never, options: options as never, params, numClasses: 4, labelSmoothing: 0, seed: 0, clip: fx.task };
  return { engines: [['tfjs', new TfEngine({ ...spec, backend: 'test' })], ['ort', await OrtEngine.create(spec)]], task: fx.task, options };
}

test('the zero-shot class embeddings equal the reference', (t) => {
  const d = maxAbsDiff(fx.task.zeroShot.data, get(ref, 'zero_shot_classes').data);
  t.log(`max |Δ| ${d.toExponential(2)}`);
  t.true(d <= 1e-6);
});

for (const name of Object.keys(PARAMS)) {
  test(`${name}: logits equal the PyTorch reference (≤ 1e-5) on both engines`, async (t) => {
    const { engines: es } = await engines(name);
    for (const [engine, e] of es) {
      const d = maxAbsDiff(await e.predict(x.data, B), get(ref, `logits.${name}`).data);
      t.log(`${engine}: max |Δlogit| ${d.toExponential(2)}`);
      t.true(d <= 1e-5, `${engine} ${d}`);
      e.dispose();
    }
  });
}

for (const name of ['coop', 'dapt']) {
  test(`${name}: loss and gradients equal the PyTorch reference on both engines`, async (t) => {
    const { engines: es, options } = await engines(name);
    const m = METHODS[name]!;
    const state = { prototypes: Array.from({ length: 4 }, (_, c) => [...get(ref, 'prototypes').data.subarray(c * 24, (c + 1) * 24)]) };
    for (const [engine, e] of es) {
      const r = await e.step(x.data, y, 0, m.batchInputs?.(y, state, options as never));
      const want = get(ref, `${name}.loss`).data[0]!;
      let worst = 0;
      for (const k of PARAMS[name]!) worst = Math.max(worst, relErr(r.grads.get(k)!, get(ref, `${name}.grad.${k}`).data));
      t.log(`${engine}: loss ${r.loss.toFixed(6)} vs ${want.toFixed(6)}; worst gradient ${worst.toExponential(2)} (relative)`);
      t.true(Math.abs(r.loss - want) <= 1e-5);
      t.true(worst <= 1e-4);
      e.dispose();
    }
  });
}
