/**
 * Appends backward nodes to a copy of the forward graph: unique names, cached constants,
 * shapes kept up to date for every emitted value (rules ask for them), and the helpers most
 * rules share (reduce a broadcast gradient back to its operand's shape, reshape to a shape
 * with the dynamic batch, zeros of a value's shape).
 */
import type { Dim } from '../../ops/ops.ts';
import type { AttrValue, GraphSpec, NodeSpec, TensorSpec } from '../../ops/onnx-proto.ts';
import { addNodeShapes, type ShapeTable, type ValueInfo } from './shapes.ts';

export class GraphBuilder {
  private readonly used = new Set<string>();
  private readonly floatConsts = new Map<number, string>();
  private readonly intConsts = new Map<string, string>();
  private readonly shapeOf = new Map<string, string>();
  /** Nodes appended after the forward graph. */
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  /** Forward producers, when the caller indexed them (peepholes look one node back). */
  producers: Map<string, NodeSpec> | null = null;

  constructor(
    g: GraphSpec,
    readonly shapes: ShapeTable,
    private readonly prefix = 'grad',
  ) {
    for (const v of [...g.inputs, ...g.outputs, ...g.initializers]) this.used.add(v.name);
    for (const n of g.nodes) for (const o of n.outputs) this.used.add(o);
  }

  fresh(hint: string): string {
    const base = `${this.prefix}/${hint}`;
    let name = base;
    for (let k = 1; this.used.has(name); k++) name = `${base}_${k}`;
    this.used.add(name);
    return name;
  }

  info(name: string): ValueInfo {
    const v = this.shapes.get(name);
    if (!v) throw new Error(`internal: autodiff has no shape for "${name}"`);
    return v;
  }

  shape(name: string): Dim[] {
    return this.info(name).shape;
  }

  /** Emit one node; returns its outputs' names (shapes inferred and recorded). */
  emitN(op: string, inputs: string[], outputs: number, attrs: Record<string, AttrValue> = {}, hint = op): string[] {
    const outs = Array.from({ length: outputs }, () => this.fresh(hint));
    const node: NodeSpec = { op, inputs, outputs: outs, attrs, name: outs[0]! };
    addNodeShapes(this.shapes, node);
    this.nodes.push(node);
    return outs;
  }

  emit(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint = op): string {
    return this.emitN(op, inputs, 1, attrs, hint)[0]!;
  }

  /**
   * Emit a node whose output shape the static rules cannot express (a reshape that merges the
   * batch into rows): the caller states it. Only for values consumed locally by the same rule.
   */
  emitAs(op: string, inputs: string[], attrs: Record<string, AttrValue>, info: ValueInfo, hint = op): string {
    const out = this.fresh(hint);
    this.shapes.set(out, info);
    this.nodes.push({ op, inputs, outputs: [out], attrs, name: out });
    return out;
  }

  /** A float32 scalar initializer (shared by value). */
  scalar(v: number): string {
    let name = this.floatConsts.get(v);
    if (!name) {
      name = this.fresh(`c${v}`);
      this.initializers.push({ name, dtype: 'float32', shape: [], data: Float32Array.of(v) });
      this.shapes.set(name, { shape: [], dtype: 'float32' });
      this.floatConsts.set(v, name);
    }
    return name;
  }

  /** An int64 list initializer (shared by value). */
  ints(values: readonly number[]): string {
    const key = values.join(',');
    let name = this.intConsts.get(key);
    if (!name) {
      name = this.fresh(`i[${key}]`);
      this.initializers.push({ name, dtype: 'int64', shape: [values.length], ints: [...values] });
      this.shapes.set(name, { shape: [values.length], dtype: 'int64', ints: [...values] });
      this.intConsts.set(key, name);
    }
    return name;
  }

  /** The runtime shape of a value (one Shape node per value). */
  runtimeShape(x: string): string {
    let s = this.shapeOf.get(x);
    if (!s) this.shapeOf.set(x, (s = this.emit('Shape', [x], {}, 'shape')));
    return s;
  }

  /** An int64 target for `shape`: a constant when static, with -1 for a single 'N'; else from `like` at run time. */
  target(shape: readonly Dim[], like: string): string {
    const dyn = shape.filter((d) => d === 'N').length;
    if (dyn === 0) return this.ints(shape as number[]);
    if (dyn === 1) return this.ints(shape.map((d) => (d === 'N' ? -1 : d)));
    return this.runtimeShape(like);
  }

  /** Reshape x to `shape` (the shape of `like`, which must exist at run time when 'N' repeats). */
  reshapeTo(x: string, shape: readonly Dim[], like: string): string {
    const s = this.shape(x);
    if (s.length === shape.length && s.every((d, i) => d === shape[i])) return x;
    return this.emit('Reshape', [x, this.target(shape, like)], {}, 'reshape');
  }

  /**
   * Sum a gradient of broadcast shape `g` down to an operand's shape (numpy rules): sum the
   * leading dimensions the operand lacks and the ones where it is 1, then drop the leading ones.
   */
  reduceTo(g: string, to: readonly Dim[], like: string): string {
    const gs = this.shape(g);
    const lead = gs.length - to.length;
    const axes: number[] = [];
    gs.forEach((d, i) => {
      if (i < lead) axes.push(i);
      else if (to[i - lead] === 1 && d !== 1) axes.push(i);
    });
    let r = g;
    if (axes.length) r = this.emit('ReduceSum', [g, this.ints(axes)], { keepdims: 1 }, 'sum');
    return this.reshapeTo(r, to, like);
  }

  /** Zeros shaped like a forward value. */
  zerosLike(x: string): string {
    const s = this.shape(x);
    const shape = s.every((d) => d !== 'N') ? this.ints(s as number[]) : this.runtimeShape(x);
    return this.emit('ConstantOfShape', [shape], {}, 'zeros');
  }

  /** Swap the last two axes; undo a forward swap instead of stacking a second one (kᵀ in q·kᵀ). */
  transposeLast2(x: string): string {
    const r = this.shape(x).length;
    const perm = Array.from({ length: r }, (_, i) => i);
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    const p = this.producers?.get(x);
    const pp = p?.op === 'Transpose' && Array.isArray(p.attrs.perm) ? p.attrs.perm : null;
    if (pp && pp.length === r && pp.every((v, i) => v === perm[i])) return p!.inputs[0]!;
    return this.emit('Transpose', [x], { perm }, 'T');
  }
}
