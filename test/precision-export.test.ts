/**
 * fp16 and int8 variants of a trained fixture task (vpt-deep, fused: its prefix K/V are
 * constants inside attention), run in onnxruntime on real images (the generated parts set):
 * the I/O contract is unchanged, logits stay close to the fp32 training graph (tfjs), files
 * shrink as they should, the QDQ graph has the right per-channel scales, ORT really runs the
 * integer kernels, and the gate decides on measured metrics.
 *
 * The fixture backbone has random weights, so nothing fitted on its features generalises to
 * held-out parts (chance level, with near-ties that flip on any rounding). The head is
 * therefore fitted on the evaluation images themselves: top-1 is far from chance and the
 * margins are real, which is what a gate test needs. Calibration uses other images.
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { exportTask } from '../compiler/export/task.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { bindVit } from '../compiler/backbones/vit.ts';
import { mulberry32 } from '../devices/rng.ts';
import { makePartsSet } from '../compiler/data/parts.ts';
import { toBatch, preprocessFor } from '../compiler/data/transforms.ts';
import type { Sample } from '../compiler/data/types.ts';
import { decodeModel, encodeModel, summarizeModel, type GraphSpec } from '../compiler/ops/onnx-proto.ts';
import { maxAbs, numel, type HostTensor } from '../compiler/ops/host-tensor.ts';
import { buildPrecision, calibrate, gatePrecisions, imageFeeds, initializerBytes, precisionMetrics, quantSites, toFp16, type Calibration, type PrecisionMetrics } from '../compiler/export/precision/index.ts';
import { optimizeOffline } from '../compiler/export/optimize.ts';
import { fixtureVit } from './helpers/fixtures.ts';
import { randn } from './helpers/random-vit.ts';

const C = 5;
const S = 32;
const { cfg: c0, sd } = fixtureVit();
const cfg = { ...c0, numClasses: C };
const D = cfg.embedDim;
const backbone = new Map([...sd].filter(([k]) => !k.startsWith('head.')));
const method = METHODS['vpt-deep']!;
const options = method.resolveOptions({ prompts: 4 } as never) as Record<string, unknown>;

let train: Sample[];
let val: Sample[];
let params: Map<string, HostTensor>;
let fp32: Uint8Array;
let graph: GraphSpec;
let metadata: Record<string, string>;
let reference: Float32Array; // tfjs training graph on the validation images
let fp32Logits: Float32Array;
let calibration: Calibration;

const imageBatch = (ss: readonly Sample[]) => {
  const b = new Uint8Array(ss.length * S * S * 3);
  ss.forEach((s, i) => b.set(s.image, i * S * S * 3));
  return new ort.Tensor('uint8', b, [ss.length, S, S, 3]);
};

async function run(bytes: Uint8Array, ss: readonly Sample[]) {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  try {
    return await s.run({ image: imageBatch(ss) });
  } finally {
    await s.release();
  }
}

/** A nearest-centroid head on standardised CLS features, folded into one linear layer [C, D]. */
function centroidHead(F: Float32Array, labels: readonly number[]): { w: HostTensor; b: HostTensor } {
  const n = labels.length;
  const mean = new Float64Array(D);
  const sdv = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) mean[d]! += F[i * D + d]! / n;
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) sdv[d]! += (F[i * D + d]! - mean[d]!) ** 2 / n;
  const mu = Array.from({ length: C }, () => new Float64Array(D));
  const count = new Array<number>(C).fill(0);
  labels.forEach((y, i) => {
    count[y]!++;
    for (let d = 0; d < D; d++) mu[y]![d]! += (F[i * D + d]! - mean[d]!) / Math.sqrt(sdv[d]! + 1e-6);
  });
  const w = new Float32Array(C * D);
  const b = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    let sq = 0;
    let shift = 0;
    for (let d = 0; d < D; d++) {
      const m = mu[c]![d]! / count[c]!;
      const wd = (0.3 * m) / Math.sqrt(sdv[d]! + 1e-6); // z-scoring folded into the weight
      w[c * D + d] = wd;
      sq += m * m;
      shift += wd * mean[d]!;
    }
    b[c] = -0.15 * sq - shift;
  }
  return { w: { shape: [C, D], data: w }, b: { shape: [C], data: b } };
}

function tfjsLogits(ss: readonly Sample[]): Float32Array {
  const ops = new TfOps();
  const w = bindVit(ops, cfg, backbone);
  w.head = { w: ops.param('head.weight', params.get('head.weight')!), b: ops.param('head.bias', params.get('head.bias')!) };
  const x = toBatch(ss, preprocessFor(cfg)).x;
  const y = tf.tidy(() => method.forward({ ops, cfg, w, param: (n) => ops.param(n, params.get(n)!), mode: 'eval' }, tf.tensor(x, [ss.length, 3, S, S]), options as never));
  const out = y.dataSync() as Float32Array;
  y.dispose();
  ops.dispose();
  return out;
}

test.before(async () => {
  await initTf();
  const set = await makePartsSet({ perClass: 24, size: S, seed: 11 });
  train = set.samples.filter((_, i) => i % 2 === 0);
  val = set.samples.filter((_, i) => i % 2 === 1);
  params = new Map();
  for (const [k, t] of await method.init({ cfg, numClasses: C, backbone, rng: mulberry32(3) }, options as never)) params.set(k, t);
  for (const k of ['prompt_embeddings', 'deep_prompt_embeddings']) {
    const p = params.get(k)!;
    params.set(k, { shape: p.shape, data: randn([...p.shape], 1, 17) });
  }
  // "Train" the head: CLS features (an identity head exports them), then class centroids.
  const eye = new Float32Array(D * D).map((_, i) => (i % (D + 1) === 0 ? 1 : 0));
  const featureTask = new Map([...params, ['head.weight', { shape: [D, D], data: eye }], ['head.bias', { shape: [D], data: new Float32Array(D) }]]);
  const feats = (await run(exportTask({ cfg: { ...cfg, numClasses: D }, backbone, method: method as never, options, params: featureTask }), val)).logits!.data as Float32Array;
  const head = centroidHead(feats, val.map((s) => s.label));
  params.set('head.weight', head.w);
  params.set('head.bias', head.b);

  fp32 = exportTask({ cfg, backbone, method: method as never, options, params });
  ({ graph, metadata } = decodeModel(fp32));
  reference = tfjsLogits(val);
  fp32Logits = (await run(fp32, val)).logits!.data as Float32Array;
  // Calibrate on training images only, in batches of 12 (as the compiler would feed them).
  calibration = await calibrate(fp32, imageFeeds(train.map((s) => s.image), S, 12));
});

const labels = () => val.map((s) => s.label);
const metricsOf = (logits: Float32Array): PrecisionMetrics => precisionMetrics(logits, reference, labels(), C);
const floatWeightBytes = (g: GraphSpec) => g.initializers.filter((t) => t.dtype === 'float32').reduce((s, t) => s + 4 * numel(t.shape), 0);

async function checkContract(t: import('ava').ExecutionContext, bytes: Uint8Array) {
  const m = summarizeModel(bytes);
  t.deepEqual(m.inputs.map((v) => [v.name, v.dtype, v.shape.join(',')]), [['image', 'uint8', `N,${S},${S},3`]]);
  t.deepEqual(m.outputs.map((v) => [v.name, v.dtype]), [['logits', 'float32'], ['probs', 'float32']]);
  const r = await run(bytes, val);
  t.is(r.logits!.type, 'float32');
  t.is(r.probs!.type, 'float32');
  t.deepEqual(r.logits!.dims, [val.length, C]);
  return r.logits!.data as Float32Array;
}

test('the fp32 export matches the training graph (the reference every precision is measured against)', (t) => {
  const m = metricsOf(fp32Logits);
  t.log(`fp32 ORT vs tfjs: max |Δlogit| ${m.maxLogitDiff.toExponential(2)}, top-1 ${m.top1}, max |logit| ${maxAbs(reference).toFixed(2)}`);
  t.true(m.maxLogitDiff <= 1e-4);
});

for (const mode of ['storage', 'compute'] as const) {
  test(`fp16 ${mode}: uint8 in, float32 out, logits within 1e-2 relative, half the weight bytes`, async (t) => {
    const g = toFp16(graph, { keepIo: true, mode, target: 'cpu' });
    const bytes = encodeModel(g, { ...metadata, 'edgeprompt.precision': 'fp16' });
    const logits = await checkContract(t, bytes);
    const m = metricsOf(logits);
    const rel = m.maxLogitDiff / maxAbs(reference);
    t.log(`fp16 ${mode}: max |Δlogit| ${m.maxLogitDiff.toExponential(2)} (${rel.toExponential(2)} of max |logit|), top-1 ${m.top1} vs fp32 ${metricsOf(fp32Logits).top1}, agreement ${m.top1Agreement}; file ${bytes.length} / ${fp32.length} B`);
    t.true(rel <= 1e-2, `${rel}`);
    t.true(m.top1Agreement! >= 0.95);
    // Every float initializer bigger than a few scalars is stored as fp16: its bytes halve exactly.
    const before = initializerBytes(graph);
    const after = initializerBytes(g);
    t.true(g.initializers.every((i) => i.dtype !== 'float32' || numel(i.shape) < 16), 'only scalars stay float32');
    t.is(after.float16, (before.float32! - (after.float32 ?? 0)) / 2);
    t.true(bytes.length / fp32.length < 0.52 && bytes.length / fp32.length > 0.48, `${bytes.length / fp32.length}`);
    const init = new Map(g.initializers.map((i) => [i.name, i]));
    const ln = g.nodes.filter((n) => n.op === 'LayerNormalization');
    if (mode === 'compute') {
      // ORT rejects mixed input types at load, so fp16 gamma/beta and a session that ran mean fp16 LayerNorm
      // (the one arithmetic op ORT's CPU EP has an fp16 kernel for); its outputs go back to float for MatMul.
      t.true(ln.every((n) => init.get(n.inputs[1]!)!.dtype === 'float16'));
      const castsToFloat = new Set(g.nodes.filter((n) => n.op === 'Cast' && n.attrs.to === 1).flatMap((n) => n.inputs));
      t.true(ln.slice(0, -1).every((n) => castsToFloat.has(n.outputs[0]!)));
    } else {
      t.true(g.nodes.filter((n) => n.op === 'Cast').every((n) => n.attrs.to === 1), 'storage: every Cast goes to float');
      t.true(ln.every((n) => n.inputs.slice(1).every((i) => i.endsWith('/f32'))), 'storage: LayerNorm reads fp16 initializers through Casts ORT folds at load');
    }
  });
}

test('fp16 compute for GPU targets: every op in fp16, the uint8 image cast straight to fp16, casts to float only for the outputs', async (t) => {
  const { graph: g, metadata: md } = buildPrecision(graph, 'fp16', { fp16: { target: 'gpu' } });
  t.is(md['edgeprompt.fp16.mode'], 'compute');
  const casts = g.nodes.filter((n) => n.op === 'Cast');
  t.deepEqual(casts.filter((n) => n.attrs.to === 1).map((n) => n.outputs[0]).sort(), ['logits', 'probs']);
  t.true(casts.some((n) => n.inputs[0] === 'image' && n.attrs.to === 10));
  t.false(g.initializers.some((i) => i.dtype === 'float32'));
  const m = metricsOf(await checkContract(t, encodeModel(g, metadata)));
  t.log(`fp16 compute (all ops): max |Δlogit| ${m.maxLogitDiff.toExponential(2)}`);
  t.true(m.maxLogitDiff / maxAbs(reference) <= 1e-2);
});

for (const bits of [7, 8] as const) {
  test(`int8 (${bits}-bit weights): per-channel QDQ MatMul weights, uint8 in / float32 out, logits close, ¼ of the weight bytes`, async (t) => {
    const { graph: g, metadata: md } = buildPrecision(graph, 'int8', { calibration, int8: { weightBits: bits } });
    t.is(md['edgeprompt.int8.weight_bits'], String(bits));
    t.is(calibration.images, train.length);
    const bytes = encodeModel(g, { ...metadata, ...md });
    const logits = await checkContract(t, bytes);
    const m = metricsOf(logits);
    const rel = m.maxLogitDiff / maxAbs(reference);
    t.log(`int8 w${bits}: max |Δlogit| ${m.maxLogitDiff.toExponential(2)} (${rel.toExponential(2)} of max |logit|), top-1 ${m.top1} vs fp32 ${metricsOf(fp32Logits).top1}, agreement ${m.top1Agreement}; file ${bytes.length} / ${fp32.length} B`);
    t.true(rel <= 0.15, `${rel}`);

    const init = new Map(g.initializers.map((i) => [i.name, i]));
    const sites = quantSites(graph).filter((s) => s.node.op === 'MatMul');
    t.is(sites.length, 1 + 4 * cfg.depth, 'patch embedding + qkv, proj, fc1, fc2 per block');
    const qmax = 2 ** (bits - 1) - 1;
    for (const s of sites) {
      const w = graph.initializers.find((i) => i.name === s.weight)!;
      const q = init.get(`${s.weight}.int8`)!;
      const scale = init.get(`${s.weight}.scale`)!;
      t.is(q.dtype, 'int8');
      t.deepEqual(scale.shape, [w.shape[1]!], `${s.weight}: one scale per output channel`);
      t.deepEqual(init.get(`${s.weight}.zero_point`)!.raw, new Uint8Array(w.shape[1]!));
      t.true(new Int8Array(q.raw!.buffer).every((v) => Math.abs(v) <= qmax));
      t.false(init.has(s.weight), `${s.weight}: the float weight is gone`);
      t.is(q.raw!.byteLength, numel(q.shape), 'int8: one byte per weight');
      const dq = g.nodes.find((n) => n.op === 'DequantizeLinear' && n.inputs[0] === `${s.weight}.int8`)!;
      t.is(dq.attrs.axis, 1);
      const act = init.get(`${s.activation}.zero_point`)!;
      t.is(act.dtype, 'uint8');
      t.deepEqual(init.get(`${s.activation}.scale`)!.shape, []);
    }
    // Pixels quantize losslessly: the patch projection reads 0..255 with scale 1, zero point 0.
    const pixels = g.nodes.find((n) => n.op === 'QuantizeLinear' && init.get(n.inputs[1]!)!.data![0] === 1)!;
    t.truthy(pixels);
    t.is(init.get(pixels.inputs[2]!)!.raw![0], 0);
    // Left in float: attention (both operands activations, or the fused prefix K/V constants), LayerNorm, Softmax, GELU, the head.
    const dqOut = new Set(g.nodes.filter((n) => n.op === 'DequantizeLinear').map((n) => n.outputs[0]!));
    const floatMatMuls = g.nodes.filter((n) => n.op === 'MatMul' && !n.inputs.some((i) => dqOut.has(i)));
    t.is(floatMatMuls.length, 2 * cfg.depth, 'q·[prefix-k; k]ᵀ and a·[prefix-v; v] per block stay float');
    t.false(g.nodes.some((n) => ['LayerNormalization', 'Softmax', 'Erf', 'Gemm'].includes(n.op) && n.inputs.some((i) => dqOut.has(i))));
    // Sizes: the MatMul weights shrink to exactly ¼; the file to about 0.3 (biases, LayerNorm, prefix K/V, head stay fp32).
    const quantizedFloatBytes = sites.reduce((s, x) => s + 4 * numel(graph.initializers.find((i) => i.name === x.weight)!.shape), 0);
    t.is(initializerBytes(g).int8! - sites.reduce((s, x) => s + init.get(`${x.weight}.zero_point`)!.raw!.byteLength, 0), quantizedFloatBytes / 4);
    t.log(`weights ${quantizedFloatBytes} B fp32 → ${quantizedFloatBytes / 4} B int8; other float initializers ${floatWeightBytes(g)} B`);
    t.true(bytes.length < 0.35 * fp32.length);
  });
}

test('int8: ORT fuses every QDQ MatMul into an integer kernel (MatMulIntegerToFloat), and the head can be quantized per row', async (t) => {
  const g = buildPrecision(graph, 'int8', { calibration, int8: { gemm: true } }).graph;
  const head = g.nodes.find((n) => n.op === 'DequantizeLinear' && n.inputs[0] === 'head.weight.int8')!;
  t.is(head.attrs.axis, 0, 'Gemm transB=1 reads [out, in]');
  t.deepEqual(g.initializers.find((i) => i.name === 'head.weight.scale')!.shape, [C]);
  const m = metricsOf((await run(encodeModel(g), val)).logits!.data as Float32Array);
  t.log(`int8 with the head quantized too: max |Δlogit| ${m.maxLogitDiff.toExponential(2)}`);
  const dir = mkdtempSync(join(tmpdir(), 'ep-int8-'));
  try {
    const file = join(dir, 'opt.onnx');
    const s = await ort.InferenceSession.create(encodeModel(g), { logSeverityLevel: 3, graphOptimizationLevel: 'all', optimizedModelFilePath: file });
    await s.release();
    const ops = summarizeModel(new Uint8Array(readFileSync(file))).opCounts;
    t.log(JSON.stringify(ops));
    t.is(ops['com.microsoft:MatMulIntegerToFloat'], 1 + 4 * cfg.depth);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the gate ships what it measured within 0.5 pt and refuses the rest with a message that says what to do', async (t) => {
  const ref = metricsOf(reference);
  const measured: Record<'fp32' | 'fp16' | 'int8', PrecisionMetrics> = {
    fp32: metricsOf(fp32Logits),
    fp16: metricsOf((await run(encodeModel(buildPrecision(graph, 'fp16').graph), val)).logits!.data as Float32Array),
    int8: metricsOf((await run(encodeModel(buildPrecision(graph, 'int8', { calibration }).graph), val)).logits!.data as Float32Array),
  };
  for (const [p, m] of Object.entries(measured)) t.log(`${p}: top-1 ${(100 * m.top1).toFixed(1)} % (tfjs ${(100 * ref.top1).toFixed(1)} %), agreement ${m.top1Agreement}, max |Δlogit| ${m.maxLogitDiff.toExponential(2)}`);
  const r = gatePrecisions(ref, measured, ['fp32', 'fp16', 'int8']);
  for (const x of r.refused) t.log(x.message);
  t.true(r.ship.includes('fp32') && r.ship.includes('fp16'), 'fp16 moves logits by ~1e-2: no image flips');
  t.is(r.ship.includes('int8'), r.dropPt.int8! <= 0.5, 'int8 ships exactly when its measured drop is within the gate');
  if (!r.ship.includes('int8')) t.regex(r.refused[0]!.message, /^int8 refused: validation top-1 [\d.]+ % vs fp32 [\d.]+ % \(−[\d.]+ pt > gate 0\.5 pt\); use --precision fp32,fp16 or raise --max-drop$/);
  // With the accuracy gate wide open, a logit bound int8 cannot meet still refuses it, naming the knob.
  const strict = gatePrecisions(ref, measured, ['fp32', 'fp16', 'int8'], { maxDropPt: 100, maxLogitDiff: { int8: 1e-3 } });
  t.deepEqual(strict.ship, ['fp32', 'fp16']);
  t.is(strict.refused[0]!.reason, 'LOGIT_DIFF');
  t.regex(strict.refused[0]!.message, /^int8 refused: max \|Δlogit\| .* exceeds the bound 0\.001; use --precision fp32,fp16 or raise precision\.maxLogitDiff\.int8$/);
});

test('both passes also apply to ORT\'s offline-optimised graph (com.microsoft FusedMatMul, BiasGelu stay as they are)', async (t) => {
  const opt = decodeModel(await optimizeOffline(fp32));
  t.true(opt.graph.nodes.some((n) => n.domain === 'com.microsoft'));
  for (const precision of ['fp16', 'int8'] as const) {
    const p = buildPrecision(opt.graph, precision, { calibration });
    const bytes = encodeModel(p.graph, { ...opt.metadata, ...p.metadata }, opt.extraOpsets);
    const m = metricsOf((await run(bytes, val)).logits!.data as Float32Array);
    t.log(`${precision} of the optimised graph: max |Δlogit| ${m.maxLogitDiff.toExponential(2)}, file ${bytes.length} B`);
    t.true(m.maxLogitDiff / maxAbs(reference) <= (precision === 'fp16' ? 1e-2 : 0.15));
  }
});
