/**
 * The autodiff around the rules: the Ops added for losses (logSoftmax, exp, log) in tfjs and
 * onnxruntime alike, dropout as a mask input in training graphs, pruning (frozen weights and
 * paths that do not reach the loss get no backward nodes), and errors that name the node.
 */
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { TfOps } from '../compiler/ops/tf-ops.ts';
import { OnnxOps } from '../compiler/ops/onnx-ops.ts';
import type { Ops } from '../compiler/ops/ops.ts';
import { maxAbsDiff } from '../compiler/ops/host-tensor.ts';
import { encodeModel, type GraphSpec } from '../compiler/ops/onnx-proto.ts';
import { differentiate } from '../compiler/train/autodiff/differentiate.ts';
import { smoothedTargets } from '../compiler/train/loss.ts';
import { randn } from './helpers/random-vit.ts';
import { checkGraph } from './helpers/grad-check.ts';

test.before(async () => {
  await initTf();
});

const B = 3;
const parity: [string, <T>(o: Ops<T>, x: T) => T][] = [
  ['logSoftmax', (o, x) => o.logSoftmax(x)],
  ['exp', (o, x) => o.exp(x)],
  ['log (of a positive input)', (o, x) => o.log(o.exp(x))],
];
for (const [name, build] of parity) {
  test(`op parity tfjs ↔ onnxruntime: ${name}`, async (t) => {
    const data = randn([B, 4, 7], 2, 3);
    const y = tf.tidy(() => build(new TfOps(), tf.tensor(data, [B, 4, 7])));
    const ref = y.dataSync() as Float32Array;
    y.dispose();
    const ops = new OnnxOps();
    ops.output(build(ops, ops.input('x', ['N', 4, 7])), 'y');
    const s = await ort.InferenceSession.create(ops.toBytes(), { logSeverityLevel: 3 });
    const out = (await s.run({ x: new ort.Tensor('float32', data, [B, 4, 7]) })).y!.data as Float32Array;
    t.true(maxAbsDiff(out, ref) <= 1e-5, `max |Δ| ${maxAbsDiff(out, ref)}`);
  });
}

test('smoothed targets: (1 − ε)·onehot + ε/C, labels checked', (t) => {
  t.deepEqual([...smoothedTargets(Int32Array.of(1, 0), 4, 0.2)].map((v) => +v.toFixed(6)), [0.05, 0.85, 0.05, 0.05, 0.85, 0.05, 0.05, 0.05]);
  t.throws(() => smoothedTargets(Int32Array.of(4), 4, 0), { message: /label 4 of image 0 is outside \[0, 4\)/ });
});

test('dropout: identity in inference graphs, x · mask input in training graphs', (t) => {
  const inference = new OnnxOps({ params: 'input' });
  const p = inference.param('p', { shape: [1, 2, 3], data: new Float32Array(6) });
  t.is(inference.dropout(p, 0.1), p);
  const training = new OnnxOps({ params: 'input', dropout: 'mask' });
  const q = training.param('p', { shape: [1, 2, 3], data: new Float32Array(6) });
  t.is(training.dropout(q, 0), q, 'rate 0 draws no mask');
  training.output(training.dropout(q, 0.1), 'y');
  t.deepEqual(training.dropoutMasks(), [{ name: 'dropout_mask.0', shape: [1, 2, 3], rate: 0.1 }]);
  const g = training.graph();
  t.deepEqual(g.inputs.map((i) => i.name), ['p', 'dropout_mask.0']);
  t.deepEqual(g.nodes.map((n) => n.op), ['Mul']);
});

function graphOf(build: (o: OnnxOps) => void): GraphSpec {
  const o = new OnnxOps({ folder: new TfOps(), params: 'input' });
  build(o);
  return o.graph();
}

test('pruning: a frozen linear gets only its input gradient; a branch that misses the loss gets none', (t) => {
  const g = graphOf((o) => {
    const x = o.input('x', ['N', 4]);
    const p = o.param('p', { shape: [4], data: randn([4], 1, 1) });
    const h = o.linear(o.add(x, p), o.weight('w', { shape: [5, 4], data: randn([20], 1, 2) }));
    o.output(o.scale(o.reduceMean(o.mul(h, h), [0, 1], false), 0.5), 'loss');
    o.output(o.sigmoid(o.mul(p, p)), 'side'); // depends on p, not on the loss
  });
  const r = differentiate(g, { loss: 'loss', wrt: ['p'] });
  const backward = r.graph.nodes.slice(r.forwardNodes);
  t.is(backward.filter((n) => n.op === 'Gemm' || n.op === 'MatMul').length, 1, backward.map((n) => n.op).join(' '));
  t.false(backward.some((n) => n.op === 'Sigmoid' || n.inputs.includes('side')));
  t.false(r.active.has('w'));
  t.deepEqual(r.graph.outputs.map((o) => o.name), ['loss', 'side', 'grad:p']);
});

test('a trainable input the loss does not use gets a zero gradient and is reported', async (t) => {
  const g = graphOf((o) => {
    const x = o.input('x', ['N', 3]);
    o.param('unused', { shape: [2, 2], data: new Float32Array(4) });
    o.output(o.reduceSum(o.mul(x, o.param('p', { shape: [3], data: Float32Array.of(1, 2, 3) })), [0, 1], false), 'loss');
  });
  const r = differentiate(g, { loss: 'loss', wrt: ['p', 'unused'] });
  t.deepEqual(r.unreached, ['unused']);
  const s = await ort.InferenceSession.create(encodeModel(r.graph), { logSeverityLevel: 3 });
  const out = await s.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4, 5, 6), [2, 3]), p: new ort.Tensor('float32', Float32Array.of(1, 2, 3), [3]), unused: new ort.Tensor('float32', new Float32Array(4), [2, 2]) });
  t.deepEqual([...(out['grad:p']!.data as Float32Array)], [5, 7, 9]);
  t.deepEqual([...(out['grad:unused']!.data as Float32Array)], [0, 0, 0, 0]);
});

test('autodiff errors name the loss, the input or the node and op', (t) => {
  const g = graphOf((o) => {
    const x = o.input('x', ['N', 3]);
    const y = o.mul(x, o.param('p', { shape: [3], data: Float32Array.of(1, 2, 3) }));
    o.output(y, 'y');
    o.output(o.reduceSum(y, [0, 1], false), 'loss');
  });
  t.throws(() => differentiate(g, { loss: 'y', wrt: ['p'] }), { message: /the loss "y" must be a scalar, got \[N, 3\]/ });
  t.throws(() => differentiate(g, { loss: 'nope', wrt: ['p'] }), { message: /the loss "nope" is not a value of graph/ });
  t.throws(() => differentiate(g, { loss: 'loss', wrt: ['w'] }), { message: /"w" is not an input of graph .* \(inputs: x, p\)/ });
  // A node without a backward rule between the parameter and the loss.
  const relu: GraphSpec = {
    ...g,
    nodes: [{ op: 'Relu', inputs: ['p'], outputs: ['r'], attrs: {}, name: 'my_relu' }, { op: 'ReduceSum', inputs: ['r'], outputs: ['loss'], attrs: { keepdims: 0 }, name: 'sum' }],
    outputs: [{ name: 'loss', dtype: 'float32', shape: [] }],
  };
  t.throws(() => differentiate(relu, { loss: 'loss', wrt: ['p'] }), { message: /node my_relu \(Relu → r\) lies between a trainable input and the loss, and op Relu has no backward rule/ });
  // Off the gradient path, an unknown op does no harm.
  const side: GraphSpec = { ...g, nodes: [...g.nodes, { op: 'Relu', inputs: ['x'], outputs: ['side'], attrs: {}, name: 'side_relu' }] };
  const withSide = differentiate(side, { loss: 'loss', wrt: ['p'], keep: ['y'] });
  const plain = differentiate(g, { loss: 'loss', wrt: ['p'], keep: ['y'] });
  const backwardOps = (r: typeof plain) => r.graph.nodes.slice(r.forwardNodes).map((n) => n.op);
  t.deepEqual(backwardOps(withSide), backwardOps(plain), 'the side Relu adds no backward node');
  t.true(withSide.graph.outputs.some((o) => o.name === 'grad:p'));
  t.false(withSide.active.has('side'));
});

/** The recorded GELU with `one` (1 + erf) also read elsewhere: the fused GELU rule must not fire. */
function sharedGelu(): GraphSpec {
  const c = (name: string, v: number) => ({ name, dtype: 'float32' as const, shape: [], data: Float32Array.of(v) });
  return {
    name: 'shared-gelu',
    inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 6] }, { name: 'r', dtype: 'float32', shape: ['N', 6] }],
    initializers: [c('sqrt2', Math.SQRT2), c('one', 1), c('half', 0.5)],
    nodes: [
      { op: 'Div', inputs: ['x', 'sqrt2'], outputs: ['u'], attrs: {} },
      { op: 'Erf', inputs: ['u'], outputs: ['e'], attrs: {} },
      { op: 'Add', inputs: ['e', 'one'], outputs: ['1pe'], attrs: {} },
      { op: 'Mul', inputs: ['x', '1pe'], outputs: ['m'], attrs: {} },
      { op: 'Mul', inputs: ['m', 'half'], outputs: ['y'], attrs: {} },
      { op: 'Mul', inputs: ['y', '1pe'], outputs: ['z'], attrs: {} }, // a second reader of 1 + erf
      { op: 'Mul', inputs: ['z', 'r'], outputs: ['zr'], attrs: {} },
      { op: 'ReduceSum', inputs: ['zr'], outputs: ['loss'], attrs: { keepdims: 0 } },
    ],
    outputs: [{ name: 'loss', dtype: 'float32', shape: [] }],
  };
}

test('Erf node by node (2/√π·exp(−u²)) when the GELU pattern is not intact, vs finite differences', async (t) => {
  const feeds = new Map([
    ['x', { shape: [3, 6], data: Float64Array.from(randn([18], 1.5, 4)) }],
    ['r', { shape: [3, 6], data: Float64Array.from(randn([18], 1, 5)) }],
  ]);
  const r = await checkGraph(sharedGelu(), ['x'], feeds);
  t.log(`finite differences ${r.fd.toExponential(1)}, onnxruntime ${r.ort.toExponential(1)}`);
  t.true(r.train.graph.nodes.slice(r.train.forwardNodes).some((n) => n.op === 'Neg'), 'the node-by-node Erf rule ran');
  t.true(r.fd <= 1e-6);
  t.true(r.ort <= 1e-4);
});
