/**
 * Parity of the one CLIP definition against the independent PyTorch reference
 * (tools/reference/clip_ref.py, float64): image features, text features and logits within 1e-5,
 * through TfOps and through the ONNX that OnnxOps records, for weights under both name schemes
 * and both activations; 0- and EOT-padding and the cut after the last EOT change nothing.
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { OnnxOps } from '../compiler/ops/onnx-ops.ts';
import type { Ops } from '../compiler/ops/ops.ts';
import { forwardFeatures } from '../compiler/backbones/vit.ts';
import { bindClipImage, bindClipText, clipLogits, embedTokens, encodeImage, encodeText, l2normalize, logitScaleOf } from '../compiler/backbones/clip.ts';
import type { LoadedClip } from '../compiler/backbones/clip-weights.ts';
import { maxAbsDiff, type HostTensor } from '../compiler/ops/host-tensor.ts';
import { get } from './helpers/fixtures.ts';
import { clipIO, fixtureClip, idRows, type Act } from './helpers/clip.ts';

const TOL = 1e-5;
const io = clipIO();
const eotOf = (rows: Int32Array[]) => rows.map((r) => r.indexOf(517));

test.before(async () => {
  await initTf();
});

/** Image features [B, E], text features [C, E] and logits [B, C] through one interpreter. */
function clipForward<T>(ops: Ops<T>, m: LoadedClip, x: T, textEmbeds: T, eot: number[]): { img: T; txt: T; logits: T } {
  const iw = bindClipImage(ops, m.cfg, m.stateDict);
  const tw = bindClipText(ops, m.cfg, m.stateDict);
  const img = encodeImage(ops, m.cfg, iw.proj, forwardFeatures(ops, m.cfg.vision, iw.vision, x, { clsOnlyLastBlock: true }));
  const txt = encodeText(ops, m.cfg, tw, textEmbeds, eot);
  return { img, txt, logits: clipLogits(ops, img, l2normalize(ops, txt), logitScaleOf(m.stateDict)) };
}

function tfRun(m: LoadedClip, x: HostTensor, ids: Int32Array[], L: number) {
  const ops = new TfOps();
  const embeds = embedTokens(m.stateDict.get('text.token_embedding.weight')!, ids, L);
  const r = tf.tidy(() => {
    const o = clipForward(ops, m, tf.tensor(x.data, [...x.shape]), tf.tensor(embeds.data, [...embeds.shape]), eotOf(ids));
    return [o.img, o.txt, o.logits].map((t) => t.dataSync() as Float32Array);
  });
  ops.dispose();
  return { img: r[0]!, txt: r[1]!, logits: r[2]! };
}

async function onnxRun(m: LoadedClip, x: HostTensor, ids: Int32Array[], L: number) {
  const ops = new OnnxOps({ graphName: 'clip-parity' }); // no folder: every node is emitted and run by ORT
  const embeds = embedTokens(m.stateDict.get('text.token_embedding.weight')!, ids, L);
  const o = clipForward(ops, m, ops.input('input', ['N', 3, 32, 32]), ops.input('text_embeds', [...embeds.shape]), eotOf(ids));
  ops.output(o.img, 'image_features');
  ops.output(o.txt, 'text_features');
  ops.output(o.logits, 'logits');
  const s = await ort.InferenceSession.create(ops.toBytes(), { logSeverityLevel: 3 });
  ops.dispose();
  const r = await s.run({ input: new ort.Tensor('float32', x.data, [...x.shape]), text_embeds: new ort.Tensor('float32', embeds.data, [...embeds.shape]) });
  await s.release();
  return { img: r.image_features!.data as Float32Array, txt: r.text_features!.data as Float32Array, logits: r.logits!.data as Float32Array };
}

for (const scheme of ['openai', 'hf'] as const) {
  for (const act of ['quick_gelu', 'gelu'] as Act[]) {
    test(`${scheme} names, ${act}: TfOps and the exported ONNX match the PyTorch reference within 1e-5`, async (t) => {
      const m = fixtureClip(scheme, act);
      const x = get(io, 'input');
      const ids = idRows(get(io, 'text_ids'));
      const L = Math.max(...eotOf(ids)) + 1; // the training-time cut
      for (const [name, r] of [['TfOps', tfRun(m, x, ids, L)], ['ONNX', await onnxRun(m, x, ids, L)]] as const) {
        const d = { img: maxAbsDiff(r.img, get(io, `image_features.${act}`).data), txt: maxAbsDiff(r.txt, get(io, `text_features.${act}`).data), logits: maxAbsDiff(r.logits, get(io, `logits.${act}`).data) };
        t.log(`${name}: max |Δ| image ${d.img.toExponential(2)}, text ${d.txt.toExponential(2)}, logits ${d.logits.toExponential(2)}`);
        t.true(d.img <= TOL && d.txt <= TOL && d.logits <= TOL, `${name} ${JSON.stringify(d)}`);
      }
    });
  }
}

test('0- and EOT-padding to the full context give the same text features, and so does the cut after the last EOT', (t) => {
  const m = fixtureClip('openai');
  const x = get(io, 'input');
  const L = m.cfg.text.contextLength;
  const zero = tfRun(m, x, idRows(get(io, 'text_ids')), L);
  const eot = tfRun(m, x, idRows(get(io, 'text_ids_eot')), L);
  const cut = tfRun(m, x, idRows(get(io, 'text_ids')), Math.max(...eotOf(idRows(get(io, 'text_ids')))) + 1);
  t.true(maxAbsDiff(zero.txt, eot.txt) <= 1e-6, `0 vs EOT ${maxAbsDiff(zero.txt, eot.txt)}`);
  t.true(maxAbsDiff(zero.txt, cut.txt) <= 1e-6, `full vs cut ${maxAbsDiff(zero.txt, cut.txt)}`);
  t.true(maxAbsDiff(zero.txt, get(io, 'text_features.quick_gelu').data) <= TOL);
});

test('GELU and QuickGELU give different models (the activation matters, so it is recorded per weight source)', (t) => {
  const x = get(io, 'input');
  const ids = idRows(get(io, 'text_ids'));
  const q = tfRun(fixtureClip('openai', 'quick_gelu'), x, ids, 16);
  const g = tfRun(fixtureClip('openai', 'gelu'), x, ids, 16);
  const d = maxAbsDiff(q.logits, g.logits);
  t.log(`max |Δlogit| GELU vs QuickGELU ${d.toExponential(2)}`);
  t.true(d > 100 * TOL);
  t.true(maxAbsDiff(g.logits, get(io, 'logits.quick_gelu').data) > 100 * TOL, 'the wrong activation fails the parity bar');
});
