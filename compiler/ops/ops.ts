/**
 * The operations a model definition may use. Backbones and prompt methods are written once
 * against this interface; `TfOps` executes them on tfjs tensors (differentiable, for training),
 * `OnnxOps` records them as an ONNX graph (for export), folding every value that does not
 * depend on a graph input into an initializer.
 *
 * Conventions (PyTorch/ONNX, not tfjs):
 * - shapes are row-major; the batch dimension is dynamic and written `'N'` in static shapes;
 * - `reshape` follows ONNX: `0` copies the input dimension at that index, `-1` is inferred;
 * - binary elementwise ops broadcast like numpy;
 * - `linear` takes the weight in timm layout `[out, in]`: transposition happens inside the
 *   interpreter, in one place.
 */
import type { HostTensor } from './host-tensor.ts';

export type Dim = number | 'N';

export interface Ops<T> {
  readonly kind: 'tf' | 'onnx';

  // ── leaves ────────────────────────────────────────────────────────────────────────
  /** A per-image graph input (the image, labels). `shape` uses 'N' for the batch. */
  input(name: string, shape: readonly Dim[], dtype?: 'float32' | 'uint8'): T;
  /** A frozen pretrained weight, named by its timm key. Constant: folds. */
  weight(name: string, value: HostTensor): T;
  /** A trainable tensor (prompt, head). Constant at export in fused form, a graph input otherwise. */
  param(name: string, value: HostTensor): T;
  /** An anonymous constant. */
  constant(value: HostTensor): T;
  /** Static shape; 'N' where the batch size is only known at run time. */
  shape(x: T): Dim[];
  /** Attach a readable name (ONNX value/initializer name); identity in tfjs. */
  label(x: T, name: string): T;

  // ── layout ────────────────────────────────────────────────────────────────────────
  reshape(x: T, shape: readonly number[]): T;
  transpose(x: T, perm: readonly number[]): T;
  concat(xs: readonly T[], axis: number): T;
  /** Elements [start, end) along one axis. */
  slice(x: T, axis: number, start: number, end: number): T;
  split(x: T, axis: number, sizes: readonly number[]): T[];
  /** Repeat a leading dimension of 1 to the batch size of `like` (dim 0). */
  expandBatch(x: T, like: T): T;

  // ── arithmetic ────────────────────────────────────────────────────────────────────
  add(a: T, b: T): T;
  sub(a: T, b: T): T;
  mul(a: T, b: T): T;
  div(a: T, b: T): T;
  /** x · s for a compile-time scalar. */
  scale(x: T, s: number): T;
  /** Batched matrix product with broadcasting of the leading dimensions. */
  matMul(a: T, b: T): T;
  /** x·wᵀ + b with w in timm layout [out, in]; x is [..., in]. */
  linear(x: T, w: T, b?: T): T;
  layerNorm(x: T, gamma: T, beta: T, eps: number): T;
  /** Softmax over the last axis. */
  softmax(x: T): T;
  /** Exact GELU, x·Φ(x) with erf. */
  gelu(x: T): T;
  /** CLIP's QuickGELU, x·σ(1.702x). */
  quickGelu(x: T): T;
  sigmoid(x: T): T;
  /** log(softmax(x)) over the last axis, computed stably (losses). */
  logSoftmax(x: T): T;
  /** Elementwise eˣ. */
  exp(x: T): T;
  /** Elementwise natural logarithm. */
  log(x: T): T;
  /** Elementwise square root (CLIP's L2 normalisation of features). */
  sqrt(x: T): T;
  reduceMean(x: T, axes: readonly number[], keepDims: boolean): T;
  reduceSum(x: T, axes: readonly number[], keepDims: boolean): T;
  /** uint8 (or other) → float32. */
  toFloat(x: T): T;
  /** Inverted dropout while training; identity in inference graphs. */
  dropout(x: T, rate: number): T;
}

/** Normalise a possibly negative axis against a rank. */
export function axisOf(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`axis ${axis} out of range for rank ${rank}`);
  return a;
}
