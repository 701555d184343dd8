/**
 * Gradient checks for the autodiff: one small graph built through `Ops` is differentiated three
 * ways and compared:
 *   1. the training graph evaluated in float64 (graph-f64) vs central finite differences of the
 *      forward graph in float64: the backward rules are right;
 *   2. the same training graph run by onnxruntime in float32 vs (1): ORT reads it as we mean it;
 *   3. tf.grads through TfOps vs (2): both engines agree.
 * The objective is Σ y·r with a random r (so every output element matters) unless the case
 * returns a scalar itself.
 */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import type { Dim, Ops } from '../../compiler/ops/ops.ts';
import { TfOps } from '../../compiler/ops/tf-ops.ts';
import { OnnxOps, type OnnxValue } from '../../compiler/ops/onnx-ops.ts';
import { encodeModel, type GraphSpec } from '../../compiler/ops/onnx-proto.ts';
import { differentiate, type GradientGraph } from '../../compiler/train/autodiff/differentiate.ts';
import { evalGraph64, type T64 } from './graph-f64.ts';
import { randn } from './random-vit.ts';
import { relErr } from './fixtures.ts';

export interface CaseInput {
  /** x: per-image input (batch dim 'N'), differentiated; p: trainable graph input; w: frozen initializer; c: per-image input, not differentiated. */
  kind: 'x' | 'p' | 'w' | 'c';
  shape: number[];
  std?: number;
  mean?: number;
  /** Whether dim 0 is the batch ('N' in the graph). Default: yes for x and c. */
  batch?: boolean;
  /** Fixed data (e.g. a one-hot target). */
  data?: Float32Array;
}

export interface GradCase {
  name: string;
  inputs: CaseInput[];
  build: <T>(ops: Ops<T>, xs: T[]) => T;
  /** build returns the scalar objective itself. */
  scalar?: boolean;
}

export interface GradReport {
  fd: number;
  ort: number;
  tf: number;
  graph: GradientGraph;
}

const isDiff = (i: CaseInput) => i.kind === 'x' || i.kind === 'p';
const batched = (i: CaseInput) => i.batch ?? (i.kind === 'x' || i.kind === 'c');
const nameOf = (i: number) => `in${i}`;

function objective<T>(ops: Ops<T>, y: T, r: T | null): T {
  if (!r) return y;
  const rank = ops.shape(y).length;
  return ops.reduceSum(ops.mul(y, r), Array.from({ length: rank }, (_, i) => i), false);
}

function caseData(c: GradCase, seed = 1): Float32Array[] {
  return c.inputs.map((i, k) => i.data ?? randn(i.shape, i.std ?? 1, seed * 100 + k, i.mean ?? 0));
}

/** tf.grads of the objective w.r.t. the differentiated inputs; also the output shape. */
function tfSide(c: GradCase, data: Float32Array[]): { grads: Float32Array[]; outShape: number[] } {
  const ops = new TfOps();
  const ts = data.map((d, k) => tf.tensor(d, c.inputs[k]!.shape));
  const outShape = tf.tidy(() => c.build(ops, ts).shape);
  const r = c.scalar ? null : tf.tensor(randn(outShape, 1, 999), outShape);
  const diff = c.inputs.map((_, k) => k).filter((k) => isDiff(c.inputs[k]!));
  const f = (...xs: tf.Tensor[]) => {
    const all = ts.map((t, k) => (diff.includes(k) ? xs[diff.indexOf(k)]! : t));
    return objective(ops, c.build(ops, all), r);
  };
  const gs = tf.grads(f)(diff.map((k) => ts[k]!));
  const grads = gs.map((g) => g.dataSync() as Float32Array);
  tf.dispose([...ts, ...gs, ...(r ? [r] : [])]);
  return { grads, outShape };
}

/** Record the case with OnnxOps (objective output 'loss'). */
function recordCase(c: GradCase, data: Float32Array[]): { forward: GraphSpec; wrt: string[] } {
  const folder = new TfOps();
  const ops = new OnnxOps({ folder, params: 'input' });
  const xs: OnnxValue[] = c.inputs.map((i, k) => {
    const host = { shape: i.shape, data: data[k]! };
    const dims: Dim[] = batched(i) ? ['N', ...i.shape.slice(1)] : i.shape;
    if (i.kind === 'w') return ops.weight(nameOf(k), host);
    if (i.kind === 'p') return ops.param(nameOf(k), host);
    return ops.input(nameOf(k), dims);
  });
  const y = c.build(ops, xs);
  const r = c.scalar ? null : ops.input('r', ops.shape(y));
  ops.output(objective(ops, y, r), 'loss');
  const forward = ops.graph();
  ops.dispose();
  folder.dispose();
  const wrt = c.inputs.map((_, k) => k).filter((k) => isDiff(c.inputs[k]!)).map(nameOf);
  return { forward, wrt };
}

/**
 * A recorded (or hand-written) forward graph with output 'loss': its training graph in float64
 * vs central finite differences, and in onnxruntime float32 vs float64. Returns the ORT
 * gradients too (by input name) for further comparison.
 */
export async function checkGraph(forward: GraphSpec, wrt: string[], feeds: Map<string, T64>, opts: { maxCoords?: number; h?: number } = {}): Promise<{ fd: number; ort: number; grads: Map<string, Float32Array>; train: GradientGraph }> {
  const train = differentiate(forward, { loss: 'loss', wrt });
  const gradNames = wrt.map((p) => train.grads.get(p)!);
  const analytic = evalGraph64(train.graph, feeds, gradNames);
  // Central differences in float64 on (a sample of) every coordinate.
  const h = opts.h ?? 1e-5;
  let fd = 0;
  for (const [j, p] of wrt.entries()) {
    const base = feeds.get(p)!;
    const a = analytic.get(gradNames[j]!)!.data;
    const n = base.data.length;
    const step = Math.max(1, Math.floor(n / (opts.maxCoords ?? 48)));
    const num: number[] = [];
    const ref: number[] = [];
    for (let e = 0; e < n; e += step) {
      const v = base.data[e]!;
      const at = (x: number) => {
        base.data[e] = x;
        return evalGraph64(forward, feeds, ['loss']).get('loss')!.data[0]!;
      };
      const d = (at(v + h) - at(v - h)) / (2 * h);
      base.data[e] = v;
      num.push(a[e]!);
      ref.push(d);
    }
    fd = Math.max(fd, relErr(num, ref));
  }
  const feeds32: Record<string, ort.Tensor> = {};
  for (const [k, v] of feeds) feeds32[k] = new ort.Tensor('float32', Float32Array.from(v.data), v.shape);
  const session = await ort.InferenceSession.create(encodeModel(train.graph), { logSeverityLevel: 3, graphOptimizationLevel: 'all' });
  const out = await session.run(feeds32);
  await session.release();
  let ortErr = 0;
  const grads = new Map<string, Float32Array>();
  wrt.forEach((p, j) => {
    const o = out[gradNames[j]!]!.data as Float32Array;
    grads.set(p, o);
    ortErr = Math.max(ortErr, relErr(o, analytic.get(gradNames[j]!)!.data));
  });
  return { fd, ort: ortErr, grads, train };
}

export async function checkCase(c: GradCase, opts: { maxCoords?: number; h?: number } = {}): Promise<GradReport> {
  const data = caseData(c);
  const { grads: tfGrads, outShape } = tfSide(c, data);
  const { forward, wrt } = recordCase(c, data);
  const feeds = new Map<string, T64>();
  c.inputs.forEach((i, k) => {
    if (i.kind !== 'w') feeds.set(nameOf(k), { shape: [...i.shape], data: Float64Array.from(data[k]!) });
  });
  if (!c.scalar) feeds.set('r', { shape: outShape, data: Float64Array.from(randn(outShape, 1, 999)) });
  const r = await checkGraph(forward, wrt, feeds, opts);
  const tf = Math.max(0, ...wrt.map((p, j) => relErr(tfGrads[j]!, r.grads.get(p)!)));
  return { fd: r.fd, ort: r.ort, tf, graph: r.train };
}
