/**
 * The training loss, written once against `Ops` so both engines run the same definition: the
 * tfjs engine differentiates it with tf.grad, the ort engine records it with OnnxOps and
 * differentiates the recorded graph (compiler/train/autodiff/).
 *
 * Softmax cross-entropy with label smoothing, mean over the batch, in the form PyTorch's
 * `cross_entropy(label_smoothing=ε)` and tfjs' `losses.softmaxCrossEntropy` compute:
 *   t = (1 − ε)·onehot(y) + ε/C,   loss = −mean_b Σ_c t[b,c] · log_softmax(z)[b,c].
 * The smoothed targets are a float [B, C] input built on the host (`smoothedTargets`), so the
 * graph needs no OneHot/Gather and the same graph serves every ε.
 */
import type { Ops } from '../ops/ops.ts';
import type { LossContext, PromptMethod } from '../methods/method.ts';
import { CompilerError } from '../ops/errors.ts';

/** Scalar loss for logits z [B, C] and smoothed targets t [B, C]. */
export function softmaxCrossEntropy<T>(ops: Ops<T>, logits: T, targets: T): T {
  const perImage = ops.reduceSum(ops.mul(targets, ops.logSoftmax(logits)), [-1], false); // [B]
  return ops.scale(ops.reduceMean(perImage, [0], false), -1); // []
}

/** (1 − ε)·onehot(y) + ε/C as [B, C] float32, row-major. */
export function smoothedTargets(y: Int32Array, numClasses: number, smoothing: number): Float32Array {
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  const t = new Float32Array(y.length * numClasses).fill(off);
  y.forEach((c, b) => {
    if (!(c >= 0 && c < numClasses)) throw new CompilerError('INTERNAL', `label ${c} of image ${b} is outside [0, ${numClasses})`);
    t[b * numClasses + c] = on;
  });
  return t;
}

/**
 * A method's training loss: its own `loss` when it has one (SA2VP's two heads, DA-VPT's metric
 * term), else cross-entropy on its forward logits. Both engines call this one function.
 */
export function methodLoss<T>(method: PromptMethod<Record<string, unknown>>, ctx: LossContext<T>, x: T, opts: Record<string, unknown>): { loss: T; logits: T } {
  if (method.loss) return method.loss(ctx, x, opts);
  const logits = method.forward(ctx, x, opts);
  return { loss: softmaxCrossEntropy(ctx.ops, logits, ctx.targets), logits };
}
