/**
 * Each op of the `Ops` interface, run by TfOps (tfjs) and recorded by OnnxOps (run in
 * onnxruntime), on the same random inputs; once with every operand a graph input (nodes
 * emitted) and once with all but the first operand constant and folding on.
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { OnnxOps, type OnnxValue } from '../compiler/ops/onnx-ops.ts';
import type { Ops } from '../compiler/ops/ops.ts';
import { maxAbsDiff, numel } from '../compiler/ops/host-tensor.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { randn } from './helpers/random-vit.ts';

type Build = <T>(ops: Ops<T>, xs: T[]) => T;
interface Case { name: string; shapes: number[][]; build: Build; }

const B = 3;
const cases: Case[] = [
  { name: 'reshape with 0 and -1', shapes: [[B, 4, 6]], build: (o, [x]) => o.reshape(x!, [0, -1, 3]) },
  { name: 'transpose 6-D (patchify)', shapes: [[B, 3, 8, 8]], build: (o, [x]) => o.reshape(o.transpose(o.reshape(x!, [0, 3, 2, 4, 2, 4]), [0, 2, 4, 1, 3, 5]), [0, 4, 48]) },
  { name: 'concat', shapes: [[B, 2, 5], [B, 3, 5]], build: (o, [a, b]) => o.concat([a!, b!], 1) },
  { name: 'slice', shapes: [[B, 7, 4]], build: (o, [x]) => o.slice(x!, 1, 2, 5) },
  { name: 'split', shapes: [[B, 4, 9]], build: (o, [x]) => { const [a, b, c] = o.split(x!, -1, [2, 3, 4]); return o.concat([c!, a!, b!], -1); } },
  { name: 'expandBatch', shapes: [[B, 4, 5], [1, 2, 5]], build: (o, [x, p]) => o.concat([o.expandBatch(p!, x!), x!], 1) },
  { name: 'add/sub/mul/div broadcasting', shapes: [[B, 4, 5], [5]], build: (o, [x, y]) => o.div(o.mul(o.sub(o.add(x!, y!), y!), y!), o.add(o.mul(y!, y!), o.scale(o.add(y!, y!), 0) )) },
  { name: 'scale', shapes: [[B, 6]], build: (o, [x]) => o.scale(x!, -0.37) },
  { name: 'matMul batched, broadcast right operand', shapes: [[B, 2, 4, 5], [2, 5, 3]], build: (o, [a, b]) => o.matMul(a!, b!) },
  { name: 'linear 3-D', shapes: [[B, 4, 6], [5, 6], [5]], build: (o, [x, w, b]) => o.linear(x!, w!, b!) },
  { name: 'linear 2-D (Gemm)', shapes: [[B, 6], [5, 6], [5]], build: (o, [x, w, b]) => o.linear(x!, w!, b!) },
  { name: 'layerNorm', shapes: [[B, 4, 8], [8], [8]], build: (o, [x, g, b]) => o.layerNorm(x!, g!, b!, 1e-6) },
  { name: 'softmax', shapes: [[B, 3, 7]], build: (o, [x]) => o.softmax(x!) },
  { name: 'gelu (erf)', shapes: [[B, 16]], build: (o, [x]) => o.gelu(x!) },
  { name: 'quickGelu', shapes: [[B, 16]], build: (o, [x]) => o.quickGelu(x!) },
  { name: 'sigmoid', shapes: [[B, 16]], build: (o, [x]) => o.sigmoid(x!) },
  { name: 'reduceMean keepDims', shapes: [[B, 4, 5]], build: (o, [x]) => o.reduceMean(x!, [1], true) },
  { name: 'reduceSum', shapes: [[B, 4, 5]], build: (o, [x]) => o.reduceSum(x!, [-1], false) },
];

test.before(async () => {
  await initTf();
});

const dataFor = (shapes: number[][]) => shapes.map((s, i) => randn(s, 1, 100 + i, i === 0 ? 0 : 1.5));

function runTf(c: Case, data: Float32Array[]): Float32Array {
  const ops = new TfOps();
  const y = tf.tidy(() => c.build(ops, data.map((d, i) => tf.tensor(d, c.shapes[i]!))));
  const out = y.dataSync() as Float32Array;
  y.dispose();
  return out;
}

async function runOnnx(c: Case, data: Float32Array[], constOperands: boolean): Promise<{ y: Float32Array; nodes: number }> {
  const folder = constOperands ? new TfOps() : null;
  const ops = new OnnxOps({ folder });
  const isConst = (i: number) => constOperands && i > 0 && c.shapes[i]![0] !== B; // per-image operands stay inputs
  const xs: OnnxValue[] = c.shapes.map((s, i) =>
    isConst(i) ? ops.weight(`w${i}`, { shape: s, data: data[i]! }) : ops.input(`x${i}`, s[0] === B ? ['N', ...s.slice(1)] : s),
  );
  ops.output(c.build(ops, xs), 'y');
  const bytes = ops.toBytes();
  ops.dispose();
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  const feeds: Record<string, ort.Tensor> = {};
  c.shapes.forEach((s, i) => {
    if (!isConst(i)) feeds[`x${i}`] = new ort.Tensor('float32', data[i]!, s);
  });
  const r = await session.run(feeds);
  await session.release();
  return { y: r.y!.data as Float32Array, nodes: Object.values(summarizeModel(bytes).opCounts).reduce((p, n) => p + n, 0) };
}

for (const c of cases) {
  test(`op parity tfjs ↔ onnxruntime: ${c.name}`, async (t) => {
    const data = dataFor(c.shapes);
    const ref = runTf(c, data);
    t.true(ref.every(Number.isFinite));
    for (const constOperands of c.shapes.some((s, i) => i > 0 && s[0] !== B) ? [false, true] : [false]) {
      const { y } = await runOnnx(c, data, constOperands);
      t.is(y.length, ref.length);
      const d = maxAbsDiff(y, ref);
      t.true(d <= 1e-5, `${constOperands ? 'folded' : 'emitted'}: max |Δ| ${d}`);
    }
  });
}

test('folding evaluates weight-only expressions once: the prompt K/V of a block become initializers', async (t) => {
  // y = x·W + LN(P)·W: the second term never sees the input.
  const build = <T>(o: Ops<T>, x: T, w: T, p: T, g: T, b: T) => o.add(o.linear(x, w), o.linear(o.layerNorm(p, g, b, 1e-6), w));
  const data = { x: randn([B, 4, 8], 1, 1), w: randn([8, 8], 0.3, 2), p: randn([1, 4, 8], 1, 3), g: randn([8], 0.1, 4, 1), b: randn([8], 0.1, 5) };
  const nodes: number[] = [];
  const outs: Float32Array[] = [];
  for (const fold of [false, true]) {
    const ops = new OnnxOps({ folder: fold ? new TfOps() : null });
    const c = (n: keyof typeof data, s: number[]) => ops.weight(n, { shape: s, data: data[n] });
    ops.output(build(ops, ops.input('x', ['N', 4, 8]), c('w', [8, 8]), c('p', [1, 4, 8]), c('g', [8]), c('b', [8])), 'y');
    const bytes = ops.toBytes();
    ops.dispose();
    const s = summarizeModel(bytes);
    nodes.push(Object.values(s.opCounts).reduce((p, n) => p + n, 0));
    t.is(s.opCounts.LayerNormalization ?? 0, fold ? 0 : 1);
    const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
    outs.push((await session.run({ x: new ort.Tensor('float32', data.x, [B, 4, 8]) })).y!.data as Float32Array);
  }
  t.log(`nodes: emitted ${nodes[0]}, folded ${nodes[1]}`);
  t.true(nodes[1]! < nodes[0]!);
  t.true(maxAbsDiff(outs[0]!, outs[1]!) <= 1e-5);
});

test('shape errors name the op and both shapes', (t) => {
  const ops = new OnnxOps();
  const a = ops.input('a', ['N', 4, 5]);
  const b = ops.input('b', [6, 3]);
  t.throws(() => ops.matMul(a, b), { message: /matMul: inner dimensions differ: \[N, 4, 5\] × \[6, 3\]/ });
  t.throws(() => ops.reshape(a, [0, 7, -1]), { message: /reshape: cannot reshape \[N, 4, 5\]/ });
  t.throws(() => ops.slice(a, 1, 2, 9), { message: /slice: range \[2, 9\)/ });
  t.is(numel([2, 3]), 6);
});

test('params become graph inputs in shared-backbone form and initializers in fused form', (t) => {
  for (const mode of ['const', 'input'] as const) {
    const ops = new OnnxOps({ params: mode });
    const x = ops.input('x', ['N', 4]);
    ops.output(ops.add(x, ops.param('prompt', { shape: [4], data: new Float32Array(4) })), 'y');
    const g = ops.graph();
    t.is(g.inputs.some((v) => v.name === 'prompt'), mode === 'input');
    t.is(g.initializers.some((v) => v.name === 'prompt'), mode === 'const');
  }
});
