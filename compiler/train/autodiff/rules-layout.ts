/**
 * Backward rules of the layout ops and reductions: each moves gradient elements back to where
 * their forward values came from.
 *   Concat    → Slice (one operand needs it) or one Split (several do)
 *   Slice     → Pad with zeros (step 1 only)
 *   Split     → Concat, zeros for outputs no gradient reaches
 *   Reshape   → Reshape to the input shape (the batch as −1)
 *   Transpose → Transpose by the inverse permutation
 *   Expand    → ReduceSum over the broadcast dims
 *   ReduceSum / ReduceMean → Expand back (÷ count for the mean; the batch counted at run time)
 *   Shape     → no gradient
 */
import { axisOf } from '../../ops/ops.ts';
import type { Dim } from '../../ops/ops.ts';
import type { Rule } from './rule.ts';
import { dy0, intAttr, unsupported } from './rule.ts';
import { intsOf, sliceRange } from './shapes.ts';

const concat: Rule = (a) => {
  const { node, needs, b } = a;
  const g = dy0(a);
  const rank = b.shape(g).length;
  const axis = axisOf(intAttr(node, 'axis', 0), rank);
  const sizes = node.inputs.map((x) => b.shape(x)[axis] as number);
  const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((p, s) => p + s, 0));
  if (needs.filter(Boolean).length === 1) {
    const i = needs.indexOf(true);
    return node.inputs.map((_, k) => (k === i ? b.emit('Slice', [g, b.ints([starts[i]!]), b.ints([starts[i]! + sizes[i]!]), b.ints([axis])], {}, 'dConcat') : null));
  }
  const parts = b.emitN('Split', [g, b.ints(sizes)], sizes.length, { axis }, 'dConcat');
  return parts.map((p, i) => (needs[i] ? p : null));
};

const slice: Rule = (a) => {
  const { node, b } = a;
  const g = dy0(a);
  const x = node.inputs[0]!;
  const s = b.shape(x);
  const starts = intsOf(b.shapes, node.inputs[1]!, node) as number[];
  const ends = intsOf(b.shapes, node.inputs[2]!, node) as number[];
  const axes = node.inputs[3] ? (intsOf(b.shapes, node.inputs[3], node) as number[]) : starts.map((_, i) => i);
  const pads = new Array<number>(2 * s.length).fill(0);
  axes.forEach((ax0, i) => {
    const ax = axisOf(ax0, s.length);
    const d = s[ax];
    if (d === 'N') throw unsupported(node, 'slicing the batch dimension has no gradient rule');
    const [lo, hi] = sliceRange(starts[i]!, ends[i]!, d!);
    pads[ax] = lo;
    pads[ax + s.length] = d! - hi;
  });
  return [b.emit('Pad', [g, b.ints(pads)], {}, 'dSlice')];
};

const split: Rule = (a) => {
  const { node, b } = a;
  const axis = axisOf(intAttr(node, 'axis', 0), b.shape(node.inputs[0]!).length);
  const parts = node.outputs.map((o, i) => a.dy[i] ?? b.zerosLike(o));
  return [parts.length === 1 ? parts[0]! : b.emit('Concat', parts, { axis }, 'dSplit')];
};

const reshape: Rule = (a) => [a.b.reshapeTo(dy0(a), a.b.shape(a.node.inputs[0]!), a.node.inputs[0]!)];

const transpose: Rule = (a) => {
  const rank = a.b.shape(a.node.inputs[0]!).length;
  const perm = Array.isArray(a.node.attrs.perm) ? a.node.attrs.perm : Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inv = new Array<number>(rank);
  perm.forEach((p, i) => (inv[p] = i));
  return [a.b.emit('Transpose', [dy0(a)], { perm: inv }, 'dTranspose')];
};

const expand: Rule = (a) => [a.b.reduceTo(dy0(a), a.b.shape(a.node.inputs[0]!), a.node.inputs[0]!)];

/** Spread a reduced gradient back over x's shape: the shared half of ReduceSum and ReduceMean. */
function unreduce(a: Parameters<Rule>[0], axes: number[]): { g: string; reduced: number[] } {
  const { node, b } = a;
  const x = node.inputs[0]!;
  const s = b.shape(x);
  const reduced = axes.length ? axes.map((ax) => axisOf(ax, s.length)) : s.map((_, i) => i);
  const keep: Dim[] = s.map((d, i) => (reduced.includes(i) ? 1 : d));
  const gk = intAttr(node, 'keepdims', 1) ? dy0(a) : b.reshapeTo(dy0(a), keep, node.outputs[0]!);
  // Expand broadcasts a 1 in the target, so static dims suffice unless the batch itself was reduced.
  const batchReduced = reduced.some((i) => s[i] === 'N');
  const target = batchReduced ? b.runtimeShape(x) : b.ints(s.map((d) => (d === 'N' ? 1 : d)));
  return { g: b.emit('Expand', [gk, target], {}, 'dReduce'), reduced };
}

const reduceSum: Rule = (a) => {
  const axes = a.node.inputs[1] ? (intsOf(a.b.shapes, a.node.inputs[1], a.node) as number[]) : [];
  return [unreduce(a, axes).g];
};

const reduceMean: Rule = (a) => {
  const { b, node } = a;
  const { g, reduced } = unreduce(a, Array.isArray(node.attrs.axes) ? node.attrs.axes : []);
  const s = b.shape(node.inputs[0]!);
  const count = reduced.reduce((p, i) => (s[i] === 'N' ? p : p * (s[i] as number)), 1);
  let out = b.emit('Mul', [g, b.scalar(1 / count)], {}, 'dMean');
  const n = reduced.find((i) => s[i] === 'N');
  if (n !== undefined) {
    const batch = b.emit('Cast', [b.emit('Shape', [node.inputs[0]!], { start: n, end: n + 1 }, 'batch')], { to: 1 }, 'batch'); // [1] float
    out = b.emit('Div', [out, batch], {}, 'dMean');
  }
  return [out];
};

const noGradient: Rule = (a) => a.node.inputs.map(() => null);

export const LAYOUT_RULES: Record<string, Rule> = {
  Concat: concat,
  Slice: slice,
  Split: split,
  Reshape: reshape,
  Transpose: transpose,
  Expand: expand,
  ReduceSum: reduceSum,
  ReduceMean: reduceMean,
  Shape: noGradient,
};
