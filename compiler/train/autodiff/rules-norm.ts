/**
 * Backward rules of the normalisations, written from their decompositions with the
 * Mul/Sub/ReduceSum patterns ORT runs as plain fused-free kernels (the SoftmaxGrad and
 * LayerNormalizationGrad kernels exist only in onnxruntime-training builds).
 *
 * LayerNormalization over axes a..r−1 (D elements), y = x̂·γ + β with x̂ = (x − μ)·ρ,
 * ρ = 1/√(σ² + ε). The forward node is asked for its optional Mean and InvStdDev outputs
 * ([..., 1, ..., 1]) so nothing is recomputed; then with g = dy·γ:
 *   dx = ρ·(g − mean(g) − x̂·mean(g·x̂)),  dγ = Σ dy·x̂,  dβ = Σ dy  (sums over the leading dims).
 * Softmax along an axis:    dx = (dy − Σ dy·y)·y; under attention (y read only by y·V) the
 *   row sums come from the MatMul rule as Σ dO·O, a T/dh-times smaller product.
 * LogSoftmax along an axis: dx = dy − exp(y)·Σ dy.
 */
import { axisOf } from '../../ops/ops.ts';
import type { Rule } from './rule.ts';
import { dy0, intAttr } from './rule.ts';
import { addNodeShapes } from './shapes.ts';

const layerNorm: Rule = (a) => {
  const { node, needs, b } = a;
  const g = dy0(a);
  const [x, gamma, beta] = node.inputs as [string, string, string | undefined];
  const rank = b.shape(x).length;
  const axis = axisOf(intAttr(node, 'axis', -1), rank);
  const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  // Expose the statistics the forward pass computes anyway.
  if (!node.outputs[1] || !node.outputs[2]) {
    node.outputs[1] ||= b.fresh('ln_mean');
    node.outputs[2] ||= b.fresh('ln_invstd');
    addNodeShapes(b.shapes, node);
  }
  const [, mean, inv] = node.outputs as [string, string, string];
  const xhat = needs[0] || needs[1] ? b.emit('Mul', [b.emit('Sub', [x, mean]), inv], {}, 'xhat') : null;
  let dx: string | null = null;
  if (needs[0]) {
    const gg = b.emit('Mul', [g, gamma], {}, 'g_gamma');
    const m1 = b.emit('ReduceMean', [gg], { axes, keepdims: 1 });
    const m2 = b.emit('ReduceMean', [b.emit('Mul', [gg, xhat!])], { axes, keepdims: 1 });
    const centred = b.emit('Sub', [b.emit('Sub', [gg, m1]), b.emit('Mul', [xhat!, m2])]);
    dx = b.emit('Mul', [centred, inv], {}, 'dLN');
  }
  const dGamma = needs[1] ? b.reduceTo(b.emit('Mul', [g, xhat!]), b.shape(gamma), gamma) : null;
  const dBeta = beta && needs[2] ? b.reduceTo(g, b.shape(beta), beta) : null;
  return [dx, dGamma, dBeta];
};

const softmax: Rule = (a) => {
  const { node, b } = a;
  const g = dy0(a);
  const y = node.outputs[0]!;
  const axis = axisOf(intAttr(node, 'axis', -1), b.shape(y).length);
  const s = a.hints.get(`rowdot:${y}`) ?? b.emit('ReduceSum', [b.emit('Mul', [g, y]), b.ints([axis])], { keepdims: 1 });
  return [b.emit('Mul', [b.emit('Sub', [g, s]), y], {}, 'dSoftmax')];
};

const logSoftmax: Rule = (a) => {
  const { node, b } = a;
  const g = dy0(a);
  const y = node.outputs[0]!;
  const axis = axisOf(intAttr(node, 'axis', -1), b.shape(y).length);
  const s = b.emit('ReduceSum', [g, b.ints([axis])], { keepdims: 1 });
  return [b.emit('Sub', [g, b.emit('Mul', [b.emit('Exp', [y]), s])], {}, 'dLogSoftmax')];
};

export const NORM_RULES: Record<string, Rule> = { LayerNormalization: layerNorm, Softmax: softmax, LogSoftmax: logSoftmax };
