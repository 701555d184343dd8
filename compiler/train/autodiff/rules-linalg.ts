/**
 * Backward rules of the matrix products.
 *
 * MatMul  Y[..., M, N] = A[..., M, K] · B[..., K, N] (batch dims broadcast):
 *   dA = dY · Bᵀ, dB = Aᵀ · dY, each summed over the batch dims its operand was broadcast along.
 *   The transposes are explicit Transpose nodes next to the MatMul, which ORT's
 *   MatMulTransposeFusion turns into one FusedMatMul (and folds outright for initializers).
 *   A 2-D B under a batched A (a trainable linear weight) gets its gradient as one 2-D product
 *   over the flattened rows, Gemm(transA): no [batch, K, N] intermediate to reduce.
 * Gemm    Y = α·op(A)·op(B) + β·C with op = transpose when transA/transB:
 *   d op(A) = dY·op(B)ᵀ, d op(B) = op(A)ᵀ·dY, expressed with Gemm's own trans flags.
 */
import type { AttrValue } from '../../ops/onnx-proto.ts';
import type { Rule } from './rule.ts';
import { dy0, floatAttr, intAttr, unsupported } from './rule.ts';

const matMul: Rule = (a) => {
  const { node, needs, b } = a;
  const g = dy0(a);
  const [A, B] = node.inputs as [string, string];
  const sa = b.shape(A);
  const sb = b.shape(B);
  if (sa.length < 2 || sb.length < 2) throw unsupported(node, `1-D operands ([${sa.join(', ')}] × [${sb.join(', ')}]) are not supported`);
  const dA = needs[0] ? b.reduceTo(b.emit('MatMul', [g, b.transposeLast2(B)], {}, 'dA'), sa, A) : null;
  if (needs[0]) attentionRowDot(a, A, g);
  let dB: string | null = null;
  if (needs[1]) {
    if (sb.length === 2 && sa.length > 2) {
      const K = sa[sa.length - 1] as number;
      const Nn = sb[1] as number;
      // [..., M, K] → [rows, K] and [..., M, N] → [rows, N]; dB = A₂ᵀ·dY₂ [K, N]. 'N' stands for the rows.
      const a2 = b.emitAs('Reshape', [A, b.ints([-1, K])], {}, { shape: ['N', K], dtype: 'float32' }, 'rows');
      const g2 = b.emitAs('Reshape', [g, b.ints([-1, Nn])], {}, { shape: ['N', Nn], dtype: 'float32' }, 'rows');
      dB = b.emit('Gemm', [a2, g2], { transA: 1 }, 'dB');
    } else {
      dB = b.reduceTo(b.emit('MatMul', [b.transposeLast2(A), g], {}, 'dB'), sb, B);
    }
  }
  return [dA, dB];
};

/**
 * Attention O = softmax(S)·V with the probabilities read by this product only: Softmax's
 * backward needs Σⱼ dA·A per row, which equals Σₖ dO·O per row (dA = dO·Vᵀ, O = A·V). That
 * is a [.., T, dh] product instead of a [.., T, T] one; left for the Softmax rule as a hint.
 */
function attentionRowDot(a: Parameters<Rule>[0], A: string, g: string): void {
  const { b, ix, node } = a;
  const sm = ix.producer.get(A);
  if (sm?.op !== 'Softmax' || ix.uses.get(A) !== 1) return;
  const rank = b.shape(A).length;
  const axis = typeof sm.attrs.axis === 'number' ? sm.attrs.axis : -1;
  if (axis !== -1 && axis !== rank - 1) return;
  const O = node.outputs[0]!;
  const so = b.shape(O);
  if (so.length !== rank || so.slice(0, -1).some((d, i) => d !== b.shape(A)[i])) return; // A broadcast: the sums differ
  a.hints.set(`rowdot:${A}`, b.emit('ReduceSum', [b.emit('Mul', [g, O]), b.ints([rank - 1])], { keepdims: 1 }, 'rowdot'));
}

const gemm: Rule = (a) => {
  const { node, needs, b } = a;
  const g = dy0(a);
  const [A, B, C] = node.inputs as [string, string, string | undefined];
  const tA = intAttr(node, 'transA', 0) !== 0;
  const tB = intAttr(node, 'transB', 0) !== 0;
  const alpha = floatAttr(node, 'alpha', 1);
  const beta = floatAttr(node, 'beta', 1);
  const scale: Record<string, AttrValue> = alpha === 1 ? {} : { alpha: { float: alpha } };
  let dA: string | null = null;
  let dB: string | null = null;
  if (needs[0]) {
    dA = tA
      ? b.emit('Gemm', [B, g], { ...scale, transA: tB ? 1 : 0, transB: 1 }, 'dA') // (dY·op(B)ᵀ)ᵀ = op(B)·dYᵀ
      : b.emit('Gemm', [g, B], { ...scale, transB: tB ? 0 : 1 }, 'dA'); // dY·op(B)ᵀ
  }
  if (needs[1]) {
    dB = tB
      ? b.emit('Gemm', [g, A], { ...scale, transA: 1, transB: tA ? 1 : 0 }, 'dB') // (op(A)ᵀ·dY)ᵀ = dYᵀ·op(A)
      : b.emit('Gemm', [A, g], { ...scale, transA: tA ? 0 : 1 }, 'dB'); // op(A)ᵀ·dY
  }
  let dC: string | null = null;
  if (C && needs[2]) {
    dC = b.reduceTo(g, b.shape(C), C);
    if (beta !== 1) dC = b.emit('Mul', [dC, b.scalar(beta)], {}, 'dC');
  }
  return [dA, dB, dC];
};

export const LINALG_RULES: Record<string, Rule> = { MatMul: matMul, Gemm: gemm };
