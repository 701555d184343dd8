/**
 * The precision passes' pieces on small hand-made graphs: decode round trip, per-channel weight
 * quantization, activation parameters, weight-bit defaults, fp16 refusals, and the gate's
 * decisions and messages.
 */
import test from 'ava';
import * as ort from 'onnxruntime-node';
import { decodeModel, encodeModel, type GraphSpec } from '../compiler/ops/onnx-proto.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { fromF16 } from '../compiler/ops/host-tensor.ts';
import {
  activationParams, calibrate, defaultWeightBits, gatePrecisions, hostHasVnni, precisionMetrics, quantizeInt8, quantizeWeight, toFp16, type PrecisionMetrics,
} from '../compiler/export/precision/index.ts';

/** x [N, 4] → MatMul W [4, 3] → + b → GELU-ish Mul by a scalar → LayerNorm → y. */
function tiny(w = Float32Array.from({ length: 12 }, (_, i) => (i - 6) / 4)): GraphSpec {
  return {
    name: 'tiny',
    nodes: [
      { op: 'MatMul', inputs: ['x', 'W'], outputs: ['m'], attrs: {}, name: 'mm' },
      { op: 'Add', inputs: ['m', 'b'], outputs: ['a'], attrs: {} },
      { op: 'Mul', inputs: ['a', 'half'], outputs: ['h'], attrs: {} },
      { op: 'LayerNormalization', inputs: ['h', 'g', 'beta'], outputs: ['y'], attrs: { axis: -1, epsilon: 1e-6 } },
    ],
    initializers: [
      { name: 'W', dtype: 'float32', shape: [4, 3], data: w },
      { name: 'b', dtype: 'float32', shape: [3], data: Float32Array.of(0.1, -0.2, 0.3) },
      { name: 'half', dtype: 'float32', shape: [], data: Float32Array.of(0.5) },
      { name: 'g', dtype: 'float32', shape: [3], data: Float32Array.of(1, 1, 1) },
      { name: 'beta', dtype: 'float32', shape: [3], data: Float32Array.of(0, 0, 0) },
      { name: 'shape', dtype: 'int64', shape: [2], ints: [-1, 3] },
    ],
    inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 4] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 3] }],
  };
}

test('decodeModel inverts encodeModel: nodes, attributes (a whole-number FLOAT stays FLOAT), initializers, metadata', (t) => {
  const g = tiny();
  g.nodes.push({ op: 'LeakyRelu', inputs: ['y'], outputs: ['z'], attrs: { alpha: { float: 1 } } });
  g.outputs = [{ name: 'z', dtype: 'float32', shape: ['N', 3] }];
  g.initializers.push({ name: 'h16', dtype: 'float16', shape: [2], raw: new Uint8Array(Uint16Array.of(0x3c00, 0xc000).buffer) });
  const bytes = encodeModel(g, { 'edgeprompt.arch': 'tiny' });
  const d = decodeModel(bytes);
  t.deepEqual(d.metadata, { 'edgeprompt.arch': 'tiny' });
  t.is(d.opset, 17);
  t.deepEqual(d.graph.nodes.map((n) => n.op), ['MatMul', 'Add', 'Mul', 'LayerNormalization', 'LeakyRelu']);
  t.deepEqual(d.graph.nodes[3]!.attrs.axis, -1);
  t.true(Math.abs((d.graph.nodes[3]!.attrs.epsilon as number) - 1e-6) < 1e-12);
  t.deepEqual(d.graph.nodes[4]!.attrs.alpha, { float: 1 });
  t.deepEqual([...d.graph.initializers.find((i) => i.name === 'W')!.data!], [...g.initializers[0]!.data!]);
  t.deepEqual(d.graph.initializers.find((i) => i.name === 'shape')!.ints, [-1, 3]);
  t.deepEqual([...fromF16(new Uint16Array(d.graph.initializers.find((i) => i.name === 'h16')!.raw!.buffer))], [1, -2]);
  t.deepEqual(d.graph.inputs, g.inputs);
  t.deepEqual(encodeModel(d.graph, d.metadata), bytes, 'byte-identical after a round trip');
});

test('decodeModel names what it cannot read', (t) => {
  const e = t.throws(() => decodeModel(Uint8Array.of(1, 2, 3, 4, 5)), { instanceOf: CompilerError });
  t.is(e.code, 'BAD_FILE');
});

test('quantizeWeight: one symmetric scale per output channel, ±63 at 7 bits, ±127 at 8', (t) => {
  const W = { name: 'W', dtype: 'float32' as const, shape: [2, 3], data: Float32Array.of(1, -4, 0, -0.5, 2, 0) };
  const c = quantizeWeight(W, 1, 8); // MatMul [in, out]: channels are columns
  t.deepEqual([...c.scale], [1 / 127, 4 / 127, 1].map(Math.fround));
  t.deepEqual([...c.q], [127, -127, 0, -64, 64, 0]);
  const r = quantizeWeight(W, 0, 7); // Gemm transB [out, in]: channels are rows
  t.deepEqual([...r.scale], [4 / 63, 2 / 63].map(Math.fround));
  t.deepEqual([...r.q], [16, -63, 0, -16, 63, 0]);
});

test('activationParams: uint8 with zero exactly representable; pixels 0..255 get scale 1, zero point 0', (t) => {
  t.deepEqual(activationParams({ min: 0, max: 255 }), { scale: 1, zeroPoint: 0 });
  const p = activationParams({ min: -1, max: 3 });
  t.is(p.zeroPoint, Math.round(255 / 4));
  t.is(p.scale, 4 / 255);
  t.deepEqual(activationParams({ min: 2, max: 5 }), { scale: 5 / 255, zeroPoint: 0 }, 'a positive range widens down to 0');
  t.throws(() => activationParams({ min: -Infinity, max: 1 }), { instanceOf: CompilerError });
});

test('weight bits: 7 on x86 without VNNI (u8×s8 saturates in int16), 8 with VNNI and on ARM', (t) => {
  t.is(defaultWeightBits({ arch: 'x64', vnni: false }), 7);
  t.is(defaultWeightBits({ arch: 'x64', vnni: true }), 8);
  t.is(defaultWeightBits({ arch: 'arm64' }), 8);
  t.is(defaultWeightBits({ arch: 'x64' }), 7, 'another x64 of unknown features: the safe choice');
  t.true(hostHasVnni('flags\t: fpu sse avx2 avx512_vnni'));
  t.true(hostHasVnni('flags\t: avx2 avx_vnni'));
  t.false(hostHasVnni('flags\t: fpu sse avx2 fma'));
});

test('quantizeInt8 on a tiny graph: QDQ around the MatMul, float weight gone, close to fp32 in ORT', async (t) => {
  const g = tiny();
  const x = new ort.Tensor('float32', Float32Array.from({ length: 16 }, (_, i) => Math.sin(i)), [4, 4]);
  const fp32 = encodeModel(g);
  const cal = await calibrate(fp32, [{ x }]);
  t.deepEqual(Object.keys(cal.ranges), ['x']);
  t.is(cal.images, 4);
  const q = quantizeInt8(g, cal, { weightBits: 8 });
  t.deepEqual(q.nodes.map((n) => n.op), ['QuantizeLinear', 'DequantizeLinear', 'DequantizeLinear', 'MatMul', 'Add', 'Mul', 'LayerNormalization']);
  t.false(q.initializers.some((i) => i.name === 'W'));
  const run = async (b: Uint8Array) => (await (await ort.InferenceSession.create(b, { logSeverityLevel: 3 })).run({ x })).y!.data as Float32Array;
  const [a, b] = [await run(fp32), await run(encodeModel(q))];
  t.true(a.every((v, i) => Math.abs(v - b[i]!) < 0.1), `${a} vs ${b}`);
  const e = t.throws(() => quantizeInt8(g, { method: 'minmax', images: 1, ranges: {} }), { instanceOf: CompilerError });
  t.is(e.code, 'MISSING_TENSOR');
  t.regex(e.message, /no calibration range for "x" \(input of mm\)/);
});

test("quantizeInt8 attention: 'dynamic' turns an activation × activation MatMul into DynamicQuantizeLinear + MatMulInteger, close to fp32 in ORT", async (t) => {
  // a [2, 3, 4] × b [2, 4, 5], both graph inputs (the a·v product of attention); no calibration needed for it.
  const g: GraphSpec = {
    name: 'attn',
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'], attrs: {}, name: 'av' }],
    initializers: [],
    inputs: [{ name: 'a', dtype: 'float32', shape: [2, 3, 4] }, { name: 'b', dtype: 'float32', shape: [2, 4, 5] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [2, 3, 5] }],
  };
  const cal = { method: 'minmax' as const, images: 1, ranges: {} };
  t.deepEqual(quantizeInt8(g, cal).nodes.map((n) => n.op), ['MatMul'], "'float' by default");
  const q = quantizeInt8(g, cal, { attention: 'dynamic' });
  t.deepEqual(q.nodes.map((n) => n.op), ['DynamicQuantizeLinear', 'DynamicQuantizeLinear', 'MatMulInteger', 'Cast', 'Mul', 'Mul']);
  const a = new ort.Tensor('float32', Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 2), [2, 3, 4]);
  const b = new ort.Tensor('float32', Float32Array.from({ length: 40 }, (_, i) => Math.cos(i * 0.7)), [2, 4, 5]);
  const run = async (m: Uint8Array) => (await (await ort.InferenceSession.create(m, { logSeverityLevel: 3 })).run({ a, b })).y!.data as Float32Array;
  const [want, got] = [await run(encodeModel(g)), await run(encodeModel(q))];
  const worst = Math.max(...want.map((v, i) => Math.abs(v - got[i]!)));
  t.true(worst < 0.05, `max |Δ| ${worst}: ${want} vs ${got}`);
});

test('toFp16: a weight beyond fp16 range stays fp32 in storage mode, is refused (named) when fp16 ops read it; I/O never changes', (t) => {
  const w = new Float32Array(12).fill(0.5);
  w[7] = 1e5;
  const s = toFp16(tiny(w), { keepIo: true, mode: 'storage', minElements: 1 });
  t.is(s.initializers.find((i) => i.name === 'W')!.dtype, 'float32');
  t.is(s.initializers.find((i) => i.name === 'b')!.dtype, 'float16');
  const e = t.throws(() => toFp16(tiny(w), { keepIo: true, mode: 'compute', target: 'gpu' }), { instanceOf: CompilerError });
  t.is(e.code, 'UNSUPPORTED');
  t.regex(e.message, /initializer "W" holds 100000 at index 7, beyond fp16's ±65504/);
  t.throws(() => toFp16(tiny(), { keepIo: false as unknown as true }), { code: 'INTERNAL' } as never);
});

test('toFp16 on a float input: the input stays float32, casts in only where fp16 ops read it', async (t) => {
  const g = toFp16(tiny(), { keepIo: true, mode: 'compute', target: 'gpu' });
  t.deepEqual(g.inputs, tiny().inputs);
  t.deepEqual(g.nodes.filter((n) => n.op === 'Cast').map((n) => `${n.inputs[0]}→${n.attrs.to}`), ['x→10', 'y/f16→1']);
  const x = new ort.Tensor('float32', Float32Array.from({ length: 8 }, (_, i) => i / 3), [2, 4]);
  const r = await (await ort.InferenceSession.create(encodeModel(g), { logSeverityLevel: 3 })).run({ x });
  t.is(r.y!.type, 'float32');
});

const m = (top1: number, maxLogitDiff = 0.01, images = 1000): PrecisionMetrics => ({ top1, maxLogitDiff, images });

test('gate: refuses a drop beyond 0.5 pt with the numbers and what to do, ships the rest in request order', (t) => {
  const r = gatePrecisions(m(0.861), { fp32: m(0.861, 1e-5), fp16: m(0.860), int8: m(0.842, 0.3) }, ['fp32', 'fp16', 'int8']);
  t.deepEqual(r.ship, ['fp32', 'fp16']);
  t.deepEqual(r.refused, [{ precision: 'int8', reason: 'ACCURACY_DROP', message: 'int8 refused: validation top-1 84.2 % vs fp32 86.1 % (−1.9 pt > gate 0.5 pt); use --precision fp32,fp16 or raise --max-drop' }]);
  t.true(Math.abs(r.dropPt.int8! - 1.9) < 1e-9);
  t.deepEqual(r.warnings, []);
});

test('gate: exactly at the gate ships; a configured gate and better-than-fp32 are fine', (t) => {
  t.deepEqual(gatePrecisions(m(0.86), { int8: m(0.855) }, ['int8']).ship, ['int8']);
  t.deepEqual(gatePrecisions(m(0.86), { int8: m(0.85) }, ['int8'], { maxDropPt: 1 }).ship, ['int8']);
  t.deepEqual(gatePrecisions(m(0.86), { int8: m(0.87) }, ['int8'], { maxDropPt: 0 }).ship, ['int8']);
  const only = gatePrecisions(m(0.86), { int8: m(0.8) }, ['int8']);
  t.deepEqual(only.ship, []);
  t.regex(only.refused[0]!.message, /; raise --max-drop$/);
});

test('gate: non-finite logits are refused whatever top-1 says; bad inputs are errors, not refusals', (t) => {
  const r = gatePrecisions(m(0.5), { fp32: m(0.5), fp16: m(0.5, NaN) }, ['fp32', 'fp16']);
  t.deepEqual(r.ship, ['fp32']);
  t.is(r.refused[0]!.reason, 'NOT_FINITE');
  t.regex(r.refused[0]!.message, /^fp16 refused: non-finite logits .*; use --precision fp32$/);
  t.throws(() => gatePrecisions(m(0.5), {}, ['int8']), { message: /no metrics for requested precision int8/ });
  t.throws(() => gatePrecisions(m(0.5), { int8: m(0.5, 0, 10) }, ['int8']), { message: /measured on 10 images, the reference on 1000/ });
  t.throws(() => gatePrecisions(m(0.5), { int8: m(0.5) }, ['int8'], { maxDropPt: -1 }), { message: /maxDropPt must be ≥ 0/ });
});

test('gate: warns when the validation set is too small for the gate to resolve', (t) => {
  const r = gatePrecisions(m(0.5, 0, 60), { fp16: m(0.5, 0, 60) }, ['fp16']);
  t.deepEqual(r.ship, ['fp16']);
  t.regex(r.warnings[0]!, /60 images, so one image is 1\.67 pt, coarser than the 0\.5 pt gate.*≥ 200 images/);
});

test('precisionMetrics: top-1 against labels, agreement with the reference argmax, largest logit difference', (t) => {
  const ref = Float32Array.of(1, 0, 0, 1, 0.5, 0.6);
  const got = Float32Array.of(0.9, 0, 0, 1.2, 0.7, 0.6);
  // Row 3 flips against the reference (0.7 > 0.6 vs 0.5 < 0.6) but matches its label.
  t.deepEqual(precisionMetrics(got, ref, [0, 1, 0], 2), { top1: 1, maxLogitDiff: Math.fround(1.2) - 1, images: 3, top1Agreement: 2 / 3 });
  t.throws(() => precisionMetrics(got, ref, [0, 1], 2), { message: /6 logits and 6 reference logits for 2 images × 2 classes/ });
});
