/**
 * `Ops` on tfjs tensors: the differentiable interpreter used for training and evaluation.
 *
 * Speed fixes for tfjs-wasm (docs/platform.md "TensorFlow.js in Node"), applied here and nowhere else:
 * - a frozen linear layer runs as a plain 2-D matMul against a cached Wᵀ inside `tf.customGrad`,
 *   because the built-in matMul gradient uses transposeB, which is ~14× slower on wasm;
 * - transposes are explicit (`tf.transpose` then matMul), never matMul's transpose flags;
 * - no `gather`/`stridedSlice` on the differentiable path (wasm lacks their gradients).
 * Callers own memory: wrap a forward in `tf.tidy` and never return typed arrays from it.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dim, Ops } from './ops.ts';
import { axisOf } from './ops.ts';
import type { HostTensor } from './host-tensor.ts';

type Linear = (x: tf.Tensor) => tf.Tensor;

let nextVariableId = 0;

export interface TfOpsOptions {
  /** Training mode turns dropout on. */
  training?: boolean;
  /** Seed for dropout masks (advanced after every use, so runs are reproducible). */
  seed?: number;
}

export class TfOps implements Ops<tf.Tensor> {
  readonly kind = 'tf' as const;
  training: boolean;
  private seed: number;
  /** Frozen weights → their linear closure (cached Wᵀ + custom gradient). */
  private readonly frozen = new WeakMap<tf.Tensor, Linear | null>();
  /** Everything this interpreter allocated outside of a tidy scope (weights, Wᵀ caches). */
  private readonly owned: tf.Tensor[] = [];
  readonly params = new Map<string, tf.Variable>();

  constructor(opts: TfOpsOptions = {}) {
    this.training = opts.training ?? false;
    this.seed = opts.seed ?? 0;
  }

  input(_name: string, _shape: readonly Dim[]): tf.Tensor {
    throw new Error('TfOps.input: feed tensors directly; inputs are only declared for graph interpreters');
  }

  weight(_name: string, value: HostTensor): tf.Tensor {
    const t = tf.keep(tf.tensor(value.data, [...value.shape], 'float32'));
    this.owned.push(t);
    this.frozen.set(t, null);
    return t;
  }

  param(name: string, value: HostTensor): tf.Tensor {
    let v = this.params.get(name);
    if (!v) {
      v = tf.variable(tf.tensor(value.data, [...value.shape], 'float32'), true, `${name}#${nextVariableId++}`); // tfjs names are process-global
      this.params.set(name, v);
    }
    return v;
  }

  constant(value: HostTensor): tf.Tensor {
    return tf.tensor(value.data, [...value.shape], 'float32');
  }

  shape(x: tf.Tensor): Dim[] {
    return [...x.shape];
  }

  label(x: tf.Tensor): tf.Tensor {
    return x;
  }

  reshape(x: tf.Tensor, shape: readonly number[]): tf.Tensor {
    return tf.reshape(x, shape.map((d, i) => (d === 0 ? x.shape[i]! : d)));
  }

  transpose(x: tf.Tensor, perm: readonly number[]): tf.Tensor {
    return tf.transpose(x, [...perm]);
  }

  concat(xs: readonly tf.Tensor[], axis: number): tf.Tensor {
    return tf.concat([...xs], axisOf(axis, xs[0]!.rank));
  }

  slice(x: tf.Tensor, axis: number, start: number, end: number): tf.Tensor {
    const a = axisOf(axis, x.rank);
    const begin = x.shape.map((_, i) => (i === a ? start : 0));
    const size = x.shape.map((d, i) => (i === a ? Math.min(end, d) - start : -1));
    return tf.slice(x, begin, size);
  }

  split(x: tf.Tensor, axis: number, sizes: readonly number[]): tf.Tensor[] {
    return tf.split(x, [...sizes], axisOf(axis, x.rank));
  }

  expandBatch(x: tf.Tensor, like: tf.Tensor): tf.Tensor {
    const b = like.shape[0]!;
    return b === x.shape[0] ? x : tf.tile(x, [b, ...x.shape.slice(1).map(() => 1)]);
  }

  add(a: tf.Tensor, b: tf.Tensor): tf.Tensor { return tf.add(a, b); }
  sub(a: tf.Tensor, b: tf.Tensor): tf.Tensor { return tf.sub(a, b); }
  mul(a: tf.Tensor, b: tf.Tensor): tf.Tensor { return tf.mul(a, b); }
  div(a: tf.Tensor, b: tf.Tensor): tf.Tensor { return tf.div(a, b); }
  scale(x: tf.Tensor, s: number): tf.Tensor { return tf.mul(x, tf.scalar(s)); }

  matMul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
    const ba = a.shape.slice(0, -2);
    const bb = b.shape.slice(0, -2);
    if (ba.length === bb.length && ba.every((d, i) => d === bb[i])) return tf.matMul(a, b);
    // tfjs 4.22's BatchMatMul gradient does not sum over broadcast batch dims (a [2,4,3]
    // operand under a [B,2,3,4] one gets a [B,2,4,3] gradient and tf.grad throws): broadcast
    // the operands explicitly, whose BroadcastTo gradient does the sum. Found by
    // test/autodiff-rules.test.ts; the forward values are unchanged.
    const r = Math.max(ba.length, bb.length);
    const batch = Array.from({ length: r }, (_, i) => Math.max(ba[ba.length - r + i] ?? 1, bb[bb.length - r + i] ?? 1));
    const full = (t: tf.Tensor, own: number[]) => (own.length === r && own.every((d, i) => d === batch[i]) ? t : tf.broadcastTo(t, [...batch, ...t.shape.slice(-2)]));
    return tf.matMul(full(a, ba), full(b, bb));
  }

  linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
    const [out, inDim] = w.shape as [number, number];
    // 2-D matMuls take XNNPACK's fast path on wasm; batched ones do not.
    const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inDim]);
    let y = this.frozen.has(w) ? this.frozenLinear(w)(x2) : tf.matMul(x2, tf.transpose(w));
    if (b) y = tf.add(y, b);
    return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), out]);
  }

  private frozenLinear(w: tf.Tensor): Linear {
    let f = this.frozen.get(w);
    if (!f) {
      const wt = tf.keep(tf.transpose(w)); // [in, out]
      this.owned.push(wt);
      // dL/dx = dy·W with W [out, in]: a plain matMul, no transpose flag.
      f = tf.customGrad(((x: tf.Tensor) => ({ value: tf.matMul(x, wt), gradFunc: (dy: tf.Tensor) => tf.matMul(dy, w) })) as never) as unknown as Linear;
      this.frozen.set(w, f);
    }
    return f;
  }

  layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, tf.scalar(eps))));
    return tf.add(tf.mul(xhat, gamma), beta);
  }

  softmax(x: tf.Tensor): tf.Tensor {
    return tf.softmax(x, -1);
  }

  gelu(x: tf.Tensor): tf.Tensor {
    return tf.mul(tf.mul(x, tf.scalar(0.5)), tf.add(tf.scalar(1), tf.erf(tf.mul(x, tf.scalar(Math.SQRT1_2)))));
  }

  quickGelu(x: tf.Tensor): tf.Tensor {
    return tf.mul(x, tf.sigmoid(tf.mul(x, tf.scalar(1.702))));
  }

  sigmoid(x: tf.Tensor): tf.Tensor {
    return tf.sigmoid(x);
  }

  logSoftmax(x: tf.Tensor): tf.Tensor {
    return tf.logSoftmax(x, -1);
  }

  exp(x: tf.Tensor): tf.Tensor {
    return tf.exp(x);
  }

  log(x: tf.Tensor): tf.Tensor {
    return tf.log(x);
  }

  sqrt(x: tf.Tensor): tf.Tensor {
    return tf.sqrt(x);
  }

  reduceMean(x: tf.Tensor, axes: readonly number[], keepDims: boolean): tf.Tensor {
    return tf.mean(x, axes.map((a) => axisOf(a, x.rank)), keepDims);
  }

  reduceSum(x: tf.Tensor, axes: readonly number[], keepDims: boolean): tf.Tensor {
    return tf.sum(x, axes.map((a) => axisOf(a, x.rank)), keepDims);
  }

  toFloat(x: tf.Tensor): tf.Tensor {
    return x.dtype === 'float32' ? x : tf.cast(x, 'float32');
  }

  /** Restart the dropout seed sequence (engines call this per step for reproducible resumes). */
  reseed(seed: number): void {
    this.seed = seed;
  }

  /** Inverted dropout in training mode; identity otherwise. */
  dropout(x: tf.Tensor, rate: number): tf.Tensor {
    if (!this.training || rate <= 0) return x;
    return tf.dropout(x, rate, undefined, this.seed++);
  }

  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

