/**
 * Static shapes of every value of a GraphSpec, for the ops the recorder (OnnxOps) and the
 * backward rules emit. Dimensions are numbers or 'N' (the dynamic batch), as in OnnxOps. Small
 * int64 tensors (Shape outputs, Concat of them, constant index lists) also carry their contents,
 * symbolically ('N' where the batch size goes), so Expand/Reshape targets have static shapes.
 */
import type { Dim } from '../../ops/ops.ts';
import { axisOf } from '../../ops/ops.ts';
import type { GraphSpec, NodeSpec, SpecType } from '../../ops/onnx-proto.ts';
import { broadcast, concatShape, matMulShape, reduceShape, reshapeShape, transposeShape } from '../../ops/shape-infer.ts';
import { CompilerError } from '../../ops/errors.ts';

export interface ValueInfo {
  shape: Dim[];
  dtype: SpecType;
  /** Contents of a small int64 tensor when known ('N' = the batch size). */
  ints?: Dim[];
}

export type ShapeTable = Map<string, ValueInfo>;

const ONNX_DTYPE: Record<number, SpecType> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 10: 'float16' };

export const nodeName = (n: NodeSpec) => `${n.name ?? n.op} (${n.op} → ${n.outputs.join(', ')})`;

function fail(n: NodeSpec, why: string): CompilerError {
  return new CompilerError('BAD_SHAPE', `autodiff shapes: node ${nodeName(n)}: ${why}`);
}

/** The static int64 list of a value (an initializer or a propagated Shape/Concat), or throw. */
export function intsOf(t: ShapeTable, name: string, n: NodeSpec): Dim[] {
  const v = t.get(name)?.ints;
  if (!v) throw fail(n, `input "${name}" must be a constant int64 list`);
  return v;
}

const numbers = (ds: Dim[], n: NodeSpec, what: string): number[] =>
  ds.map((d) => {
    if (d === 'N') throw fail(n, `${what} may not depend on the batch size`);
    return d;
  });

/** ONNX Slice bounds for one axis, clamped like the spec (step 1 only). */
export function sliceRange(start: number, end: number, dim: number): [number, number] {
  const s = Math.min(Math.max(start < 0 ? start + dim : start, 0), dim);
  const e = Math.min(Math.max(end < 0 ? end + dim : end, 0), dim);
  return [s, Math.max(s, e)];
}

function infer(t: ShapeTable, n: NodeSpec): ValueInfo[] {
  const inp = (i: number): ValueInfo => {
    const v = t.get(n.inputs[i] ?? '');
    if (!v) throw fail(n, `input ${i} "${n.inputs[i]}" has no known shape (not produced before this node)`);
    return v;
  };
  const x = () => inp(0);
  const same = (): ValueInfo[] => [{ shape: [...x().shape], dtype: x().dtype }];
  const f32 = (shape: Dim[]): ValueInfo[] => [{ shape, dtype: 'float32' }];
  const a = n.attrs;
  switch (n.op) {
    case 'Identity': case 'Neg': case 'Exp': case 'Log': case 'Erf': case 'Sigmoid': case 'Softmax': case 'LogSoftmax': case 'Sqrt': case 'Reciprocal':
      return same();
    case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Sum': {
      let s = inp(0).shape;
      for (let i = 1; i < n.inputs.length; i++) s = broadcast(n.op, s, inp(i).shape);
      return f32(s);
    }
    case 'MatMul':
      return f32(matMulShape(inp(0).shape, inp(1).shape));
    case 'Gemm': {
      const A = inp(0).shape;
      const B = inp(1).shape;
      return f32([a.transA ? A[1]! : A[0]!, a.transB ? B[0]! : B[1]!]);
    }
    case 'LayerNormalization': {
      const s = x().shape;
      const ax = axisOf(typeof a.axis === 'number' ? a.axis : -1, s.length);
      const stat = s.map((d, i) => (i < ax ? d : 1));
      return [{ shape: [...s], dtype: 'float32' }, ...n.outputs.slice(1).map(() => ({ shape: stat, dtype: 'float32' as const }))];
    }
    case 'Cast':
      return [{ shape: [...x().shape], dtype: ONNX_DTYPE[a.to as number] ?? 'float32', ...(x().ints ? { ints: x().ints! } : {}) }];
    case 'Transpose': {
      const s = x().shape;
      const perm = Array.isArray(a.perm) ? a.perm : s.map((_, i) => s.length - 1 - i);
      return [{ shape: transposeShape(s, perm), dtype: x().dtype }];
    }
    case 'Reshape':
      return [{ shape: reshapeShape(x().shape, numbers(intsOf(t, n.inputs[1]!, n), n, 'the Reshape target')), dtype: x().dtype }];
    case 'Concat': {
      const shapes = n.inputs.map((_, i) => inp(i).shape);
      const ax = axisOf(a.axis as number, shapes[0]!.length);
      const all = n.inputs.map((_, i) => inp(i).ints);
      const ints = all.every((v) => v) ? all.flatMap((v) => v!) : undefined;
      if (shapes[0]!.length === 1 && ints) return [{ shape: [ints.length], dtype: x().dtype, ints }];
      return [{ shape: concatShape(shapes, ax), dtype: x().dtype }];
    }
    case 'Slice': {
      const s = [...x().shape];
      const starts = numbers(intsOf(t, n.inputs[1]!, n), n, 'Slice starts');
      const ends = numbers(intsOf(t, n.inputs[2]!, n), n, 'Slice ends');
      const axes = n.inputs[3] ? numbers(intsOf(t, n.inputs[3], n), n, 'Slice axes') : starts.map((_, i) => i);
      if (n.inputs[4] && intsOf(t, n.inputs[4], n).some((st) => st !== 1)) throw fail(n, 'only step 1 is supported');
      axes.forEach((axis, i) => {
        const ax = axisOf(axis, s.length);
        const d = s[ax]!;
        if (d === 'N') throw fail(n, 'cannot slice the batch dimension');
        const [lo, hi] = sliceRange(starts[i]!, ends[i]!, d);
        s[ax] = hi - lo;
      });
      return [{ shape: s, dtype: x().dtype }];
    }
    case 'Split': {
      const s = x().shape;
      const ax = axisOf(typeof a.axis === 'number' ? a.axis : 0, s.length);
      const sizes = n.inputs[1] ? numbers(intsOf(t, n.inputs[1], n), n, 'Split sizes') : Array.isArray(a.split) ? a.split : null;
      if (!sizes) throw fail(n, 'Split needs explicit sizes');
      return sizes.map((d) => ({ shape: s.map((q, i) => (i === ax ? d : q)), dtype: x().dtype }));
    }
    case 'Expand':
      return [{ shape: broadcast('Expand', x().shape, intsOf(t, n.inputs[1]!, n)), dtype: x().dtype }];
    case 'ReduceSum': case 'ReduceMean': case 'ReduceMax': {
      const s = x().shape;
      const axes = n.op === 'ReduceSum' ? (n.inputs[1] ? numbers(intsOf(t, n.inputs[1], n), n, 'ReduceSum axes') : []) : ((a.axes as number[] | undefined) ?? []);
      const all = axes.length === 0 ? s.map((_, i) => i) : axes;
      return f32(reduceShape(s, all, a.keepdims !== 0));
    }
    case 'Shape': {
      const s = x().shape;
      const lo = typeof a.start === 'number' ? (a.start < 0 ? a.start + s.length : a.start) : 0;
      const hi = typeof a.end === 'number' ? (a.end < 0 ? a.end + s.length : Math.min(a.end, s.length)) : s.length;
      return [{ shape: [hi - lo], dtype: 'int64', ints: s.slice(lo, hi) }];
    }
    case 'ConstantOfShape':
      return f32(intsOf(t, n.inputs[0]!, n));
    case 'Pad': {
      const s = x().shape;
      const pads = numbers(intsOf(t, n.inputs[1]!, n), n, 'Pad pads');
      return [{ shape: s.map((d, i) => (d === 'N' ? d : d + pads[i]! + pads[i + s.length]!)), dtype: x().dtype }];
    }
    default:
      throw new CompilerError('UNSUPPORTED', `autodiff shapes: node ${nodeName(n)}: op ${n.op} is not known to the shape rules`);
  }
}

/**
 * Shapes of every value; nodes must be in topological order (as OnnxOps records them). Values
 * of ops these rules do not know (and everything computed from them) stay without a shape: that
 * only matters if they lie on a gradient path, where differentiate() names the node.
 */
export function inferShapes(g: GraphSpec): ShapeTable {
  const t: ShapeTable = new Map();
  for (const v of g.inputs) t.set(v.name, { shape: [...v.shape], dtype: v.dtype });
  for (const i of g.initializers) t.set(i.name, { shape: [...i.shape], dtype: i.dtype, ...(i.ints ? { ints: [...i.ints] } : {}) });
  const opaque = new Set<string>();
  for (const n of g.nodes) {
    if (n.inputs.some((x) => opaque.has(x))) {
      for (const o of n.outputs) opaque.add(o);
      continue;
    }
    try {
      addNodeShapes(t, n);
    } catch (e) {
      if (!(e instanceof CompilerError && e.code === 'UNSUPPORTED')) throw e;
      for (const o of n.outputs) opaque.add(o);
    }
  }
  return t;
}

/** Infer one node's outputs into the table (used again for every backward node emitted). */
export function addNodeShapes(t: ShapeTable, n: NodeSpec): void {
  const outs = infer(t, n);
  n.outputs.forEach((o, i) => {
    if (!o) return;
    const v = outs[i];
    if (!v) throw fail(n, `no shape for output ${i}`);
    t.set(o, v);
  });
}
