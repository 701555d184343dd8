/**
 * `Ops` as an ONNX graph recorder: the export interpreter.
 *
 * Every value knows whether it depends on a graph input. When a `folder` (a TfOps) is given,
 * an op whose operands are all constant is evaluated once, right here, and its result becomes
 * an initializer: this is how trained prompts fold into the frozen backbone (prompt K/V, pixel
 * prompts through the patch embedding, normalisation into the first layer). Without a folder
 * the same calls are emitted node by node, which is the "naive export" to compare against.
 *
 * Graph conventions: opset 17 / IR 8 (the pairing ORT's fusions and PyTorch's exporter use),
 * LayerNormalization native, GELU written as torch exports it (Div √2, Erf, Add, Mul, Mul)
 * so ORT fuses it, timm keys as initializer names.
 *
 * Training graphs (compiler/train/training-graph.ts) record with `params: 'input'` and
 * `dropout: 'mask'`: trainable tensors and per-step dropout masks are graph inputs, and
 * compiler/train/autodiff/ appends the backward nodes.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dim, Ops } from './ops.ts';
import { axisOf } from './ops.ts';
import { type HostTensor, numel } from './host-tensor.ts';
import { broadcast, concatShape, matMulShape, reduceShape, reshapeShape, sliceShape, transposeShape } from './shape-infer.ts';
import type { TfOps } from './tf-ops.ts';
import { encodeModel, type GraphSpec, type NodeSpec, type TensorSpec } from './onnx-proto.ts';
import { CompilerError } from './errors.ts';

export type ElemType = 'float32' | 'uint8' | 'int64';

/** A value in the graph being recorded. Opaque to model code. */
export class OnnxValue {
  name: string | null = null;
  /** Set when the value is a compile-time constant. */
  host: HostTensor | null = null;
  folded: tf.Tensor | null = null;
  ints: readonly number[] | null = null;
  constructor(
    readonly id: number,
    readonly shape: Dim[],
    readonly dtype: ElemType,
  ) {}
  get isConst(): boolean {
    return this.host !== null || this.folded !== null || this.ints !== null;
  }
}

export interface OnnxOpsOptions {
  /** Evaluate constant sub-expressions with this interpreter and store their results. */
  folder?: TfOps | null;
  /** 'const': trained tensors fold like weights (fused artifact); 'input': they become graph inputs (shared backbone, training graphs). */
  params?: 'const' | 'input';
  graphName?: string;
  /**
   * 'identity' (default): dropout vanishes, as in every inference graph. 'mask': training graphs
   * write inverted dropout as `x · mask`, with `mask` a float graph input of x's shape that the
   * training engine draws per step from a seeded RNG (0 or 1/(1−rate)); see `dropoutMasks()`.
   */
  dropout?: 'identity' | 'mask';
}

/** A dropout mask input of a training graph: fed per step with 0 or 1/(1−rate) per element. */
export interface DropoutMask {
  name: string;
  shape: Dim[];
  rate: number;
}

interface Node {
  op: string;
  inputs: (OnnxValue | null)[];
  outputs: OnnxValue[];
  attrs: NodeSpec['attrs'];
  domain?: string;
}

type Folder = (ops: TfOps, xs: tf.Tensor[]) => tf.Tensor;

export class OnnxOps implements Ops<OnnxValue> {
  readonly kind = 'onnx' as const;
  private nextId = 0;
  private readonly nodes: Node[] = [];
  private readonly inputs: OnnxValue[] = [];
  private readonly outputs: OnnxValue[] = [];
  private readonly intConsts = new Map<string, OnnxValue>();
  private readonly batchShapes = new Map<OnnxValue, OnnxValue>();
  private readonly params = new Map<string, OnnxValue>();
  private readonly folder: TfOps | null;
  private readonly allFolded: tf.Tensor[] = [];
  private readonly masks: DropoutMask[] = [];
  readonly paramMode: 'const' | 'input';
  readonly dropoutMode: 'identity' | 'mask';
  readonly graphName: string;

  constructor(opts: OnnxOpsOptions = {}) {
    this.folder = opts.folder ?? null;
    this.paramMode = opts.params ?? 'const';
    this.graphName = opts.graphName ?? 'edgeprompt';
    this.dropoutMode = opts.dropout ?? 'identity';
  }

  private value(shape: Dim[], dtype: ElemType = 'float32'): OnnxValue {
    return new OnnxValue(this.nextId++, shape, dtype);
  }

  private node(op: string, inputs: (OnnxValue | null)[], shape: Dim[], attrs: NodeSpec['attrs'] = {}, dtype: ElemType = 'float32'): OnnxValue {
    const out = this.value(shape, dtype);
    this.nodes.push({ op, inputs, outputs: [out], attrs });
    return out;
  }

  /** Fold when every operand is constant and a folder is present; otherwise emit. */
  private apply(operands: OnnxValue[], fold: Folder, emit: () => OnnxValue): OnnxValue {
    if (this.folder && operands.every((v) => v.host !== null || v.folded !== null)) {
      const folder = this.folder;
      const t = tf.tidy(() => fold(folder, operands.map((v) => this.tensorOf(v))));
      return this.foldedValue(t);
    }
    return emit();
  }

  private foldedValue(t: tf.Tensor): OnnxValue {
    const v = this.value([...t.shape], 'float32');
    v.folded = t;
    this.allFolded.push(t);
    return v;
  }

  private tensorOf(v: OnnxValue): tf.Tensor {
    if (!v.folded) {
      v.folded = tf.keep(tf.tensor(v.host!.data, [...v.host!.shape], 'float32'));
      this.allFolded.push(v.folded);
    }
    return v.folded;
  }

  private int64(values: readonly number[]): OnnxValue {
    const key = values.join(',');
    let v = this.intConsts.get(key);
    if (!v) {
      v = this.value([values.length], 'int64');
      v.ints = values;
      this.intConsts.set(key, v);
    }
    return v;
  }

  private scalarConst(s: number): OnnxValue {
    const v = this.value([], 'float32');
    v.host = { shape: [], data: Float32Array.of(s) };
    return v;
  }

  // ── leaves ────────────────────────────────────────────────────────────────────────
  input(name: string, shape: readonly Dim[], dtype: 'float32' | 'uint8' = 'float32'): OnnxValue {
    const v = this.value([...shape], dtype);
    v.name = name;
    this.inputs.push(v);
    return v;
  }

  weight(name: string, value: HostTensor): OnnxValue {
    const v = this.value([...value.shape]);
    v.host = value;
    v.name = name;
    return v;
  }

  param(name: string, value: HostTensor): OnnxValue {
    const seen = this.params.get(name);
    if (seen) return seen;
    const v = this.paramMode === 'const' ? this.weight(name, value) : this.input(name, value.shape);
    this.params.set(name, v);
    return v;
  }

  constant(value: HostTensor): OnnxValue {
    const v = this.value([...value.shape]);
    v.host = value;
    return v;
  }

  shape(x: OnnxValue): Dim[] {
    return [...x.shape];
  }

  label(x: OnnxValue, name: string): OnnxValue {
    if (!this.inputs.includes(x)) x.name = name;
    return x;
  }

  // ── layout ────────────────────────────────────────────────────────────────────────
  reshape(x: OnnxValue, spec: readonly number[]): OnnxValue {
    const shape = reshapeShape(x.shape, spec);
    return this.apply([x], (o, [a]) => o.reshape(a!, spec), () => this.node('Reshape', [x, this.int64(spec)], shape));
  }

  transpose(x: OnnxValue, perm: readonly number[]): OnnxValue {
    const shape = transposeShape(x.shape, perm);
    return this.apply([x], (o, [a]) => o.transpose(a!, perm), () => this.node('Transpose', [x], shape, { perm: [...perm] }));
  }

  concat(xs: readonly OnnxValue[], axis: number): OnnxValue {
    const shape = concatShape(xs.map((x) => x.shape), axis);
    return this.apply([...xs], (o, ts) => o.concat(ts, axis), () => this.node('Concat', [...xs], shape, { axis: axisOf(axis, shape.length) }));
  }

  slice(x: OnnxValue, axis: number, start: number, end: number): OnnxValue {
    const shape = sliceShape(x.shape, axis, start, end);
    const a = axisOf(axis, x.shape.length);
    return this.apply([x], (o, [t]) => o.slice(t!, a, start, end), () =>
      this.node('Slice', [x, this.int64([start]), this.int64([end]), this.int64([a])], shape),
    );
  }

  split(x: OnnxValue, axis: number, sizes: readonly number[]): OnnxValue[] {
    const a = axisOf(axis, x.shape.length);
    const total = sizes.reduce((p, s) => p + s, 0);
    if (x.shape[a] !== total) throw new CompilerError('BAD_SHAPE', `split: sizes [${sizes.join(', ')}] do not add up to dim ${a} of [${x.shape.join(', ')}]`);
    if (x.isConst && this.folder) {
      let at = 0;
      return sizes.map((s) => this.slice(x, a, at, (at += s)));
    }
    const outs = sizes.map((s) => this.value(x.shape.map((d, i) => (i === a ? s : d))));
    this.nodes.push({ op: 'Split', inputs: [x, this.int64(sizes)], outputs: outs, attrs: { axis: a } });
    return outs;
  }

  expandBatch(x: OnnxValue, like: OnnxValue): OnnxValue {
    if (x.shape[0] !== 1) throw new CompilerError('BAD_SHAPE', `expandBatch: leading dim of [${x.shape.join(', ')}] must be 1`);
    if (like.shape[0] !== 'N') return x;
    let batch = this.batchShapes.get(like);
    if (!batch) {
      // Shape-15 with start/end reads just the batch size: [N]
      batch = this.node('Shape', [like], [1], { start: 0, end: 1 }, 'int64');
      this.batchShapes.set(like, batch);
    }
    const target = this.node('Concat', [batch, this.int64(x.shape.slice(1) as number[])], [x.shape.length], { axis: 0 }, 'int64');
    return this.node('Expand', [x, target], ['N', ...x.shape.slice(1)]);
  }

  // ── arithmetic ────────────────────────────────────────────────────────────────────
  private binary(op: 'Add' | 'Sub' | 'Mul' | 'Div', a: OnnxValue, b: OnnxValue, f: Folder): OnnxValue {
    const shape = broadcast(op, a.shape, b.shape);
    return this.apply([a, b], f, () => this.node(op, [a, b], shape));
  }
  add(a: OnnxValue, b: OnnxValue): OnnxValue { return this.binary('Add', a, b, (o, [x, y]) => o.add(x!, y!)); }
  sub(a: OnnxValue, b: OnnxValue): OnnxValue { return this.binary('Sub', a, b, (o, [x, y]) => o.sub(x!, y!)); }
  mul(a: OnnxValue, b: OnnxValue): OnnxValue { return this.binary('Mul', a, b, (o, [x, y]) => o.mul(x!, y!)); }
  div(a: OnnxValue, b: OnnxValue): OnnxValue { return this.binary('Div', a, b, (o, [x, y]) => o.div(x!, y!)); }

  scale(x: OnnxValue, s: number): OnnxValue {
    return this.apply([x], (o, [t]) => o.scale(t!, s), () => this.node('Mul', [x, this.scalarConst(s)], [...x.shape]));
  }

  matMul(a: OnnxValue, b: OnnxValue): OnnxValue {
    const shape = matMulShape(a.shape, b.shape);
    return this.apply([a, b], (o, [x, y]) => o.matMul(x!, y!), () => this.node('MatMul', [a, b], shape));
  }

  linear(x: OnnxValue, w: OnnxValue, b?: OnnxValue): OnnxValue {
    const [out, inDim] = w.shape as [number, number];
    if (x.shape[x.shape.length - 1] !== inDim) throw new CompilerError('BAD_SHAPE', `linear ${w.name ?? ''}: input [${x.shape.join(', ')}] does not end in ${inDim}`);
    const operands = b ? [x, w, b] : [x, w];
    return this.apply(operands, (o, [t, wt, bt]) => o.linear(t!, wt!, bt), () => {
      const shape = [...x.shape.slice(0, -1), out];
      // 2-D: one Gemm with transB reads W in timm layout. N-D: MatMul against Wᵀ (folded once
      // when a folder is present, else a Transpose that ORT folds at load), then the bias.
      if (x.shape.length === 2) return this.node('Gemm', b ? [x, w, b] : [x, w], shape, { transB: 1 });
      const wt = w.host && this.folder ? this.constant(transpose2d(w.host)) : this.transpose(w, [1, 0]);
      if (w.name) this.label(wt, `${w.name}.T`);
      const y = this.node('MatMul', [x, wt], shape);
      return b ? this.node('Add', [y, b], shape) : y;
    });
  }

  layerNorm(x: OnnxValue, gamma: OnnxValue, beta: OnnxValue, eps: number): OnnxValue {
    return this.apply([x, gamma, beta], (o, [t, g, bb]) => o.layerNorm(t!, g!, bb!, eps), () =>
      this.node('LayerNormalization', [x, gamma, beta], [...x.shape], { axis: -1, epsilon: eps }),
    );
  }

  softmax(x: OnnxValue): OnnxValue {
    return this.apply([x], (o, [t]) => o.softmax(t!), () => this.node('Softmax', [x], [...x.shape], { axis: -1 }));
  }

  gelu(x: OnnxValue): OnnxValue {
    return this.apply([x], (o, [t]) => o.gelu(t!), () => {
      const s = [...x.shape];
      const e = this.node('Erf', [this.node('Div', [x, this.scalarConst(Math.SQRT2)], s)], s);
      const one = this.node('Add', [e, this.scalarConst(1)], s);
      return this.node('Mul', [this.node('Mul', [x, one], s), this.scalarConst(0.5)], s);
    });
  }

  quickGelu(x: OnnxValue): OnnxValue {
    return this.apply([x], (o, [t]) => o.quickGelu(t!), () => {
      const s = [...x.shape];
      return this.node('Mul', [x, this.node('Sigmoid', [this.node('Mul', [x, this.scalarConst(1.702)], s)], s)], s);
    });
  }

  sigmoid(x: OnnxValue): OnnxValue {
    return this.apply([x], (o, [t]) => o.sigmoid(t!), () => this.node('Sigmoid', [x], [...x.shape]));
  }

  logSoftmax(x: OnnxValue): OnnxValue {
    return this.apply([x], (o, [t]) => o.logSoftmax(t!), () => this.node('LogSoftmax', [x], [...x.shape], { axis: -1 }));
  }

  exp(x: OnnxValue): OnnxValue {
    return this.apply([x], (o, [t]) => o.exp(t!), () => this.node('Exp', [x], [...x.shape]));
  }

  log(x: OnnxValue): OnnxValue {
    return this.apply([x], (o, [t]) => o.log(t!), () => this.node('Log', [x], [...x.shape]));
  }

  sqrt(x: OnnxValue): OnnxValue {
    return this.apply([x], (o, [t]) => o.sqrt(t!), () => this.node('Sqrt', [x], [...x.shape]));
  }

  reduceMean(x: OnnxValue, axes: readonly number[], keepDims: boolean): OnnxValue {
    const shape = reduceShape(x.shape, axes, keepDims);
    const ax = axes.map((a) => axisOf(a, x.shape.length));
    // opset 17: ReduceMean takes axes as an attribute, ReduceSum as an input.
    return this.apply([x], (o, [t]) => o.reduceMean(t!, ax, keepDims), () => this.node('ReduceMean', [x], shape, { axes: ax, keepdims: keepDims ? 1 : 0 }));
  }

  reduceSum(x: OnnxValue, axes: readonly number[], keepDims: boolean): OnnxValue {
    const shape = reduceShape(x.shape, axes, keepDims);
    const ax = axes.map((a) => axisOf(a, x.shape.length));
    return this.apply([x], (o, [t]) => o.reduceSum(t!, ax, keepDims), () => this.node('ReduceSum', [x, this.int64(ax)], shape, { keepdims: keepDims ? 1 : 0 }));
  }

  /** Identity, or `x · mask` with a per-step mask input in 'mask' mode (training graphs). */
  dropout(x: OnnxValue, rate = 0): OnnxValue {
    if (this.dropoutMode === 'identity' || rate <= 0) return x;
    const mask = this.input(`dropout_mask.${this.masks.length}`, x.shape);
    this.masks.push({ name: mask.name!, shape: [...x.shape], rate });
    return this.node('Mul', [x, mask], [...x.shape]);
  }

  /** The dropout masks recorded so far, in the order the forward drew them. */
  dropoutMasks(): DropoutMask[] {
    return this.masks.map((m) => ({ ...m, shape: [...m.shape] }));
  }

  toFloat(x: OnnxValue): OnnxValue {
    return x.dtype === 'float32' ? x : this.node('Cast', [x], [...x.shape], { to: 1 /* FLOAT */ });
  }

  // ── graph ─────────────────────────────────────────────────────────────────────────
  /** Declare a graph output. A constant output is materialised through Identity. */
  output(x: OnnxValue, name: string): void {
    const v = x.isConst || this.inputs.includes(x) || this.outputs.includes(x) ? this.node('Identity', [x], [...x.shape], {}, x.dtype) : x;
    v.name = name;
    this.outputs.push(v);
  }

  /** The recorded graph as plain specs (for encoding, inspection and autodiff). */
  graph(): GraphSpec {
    const names = new Map<OnnxValue, string>();
    const used = new Set<string>();
    const nameOf = (v: OnnxValue): string => {
      let n = names.get(v);
      if (n) return n;
      const base = v.name ?? (v.isConst ? `const_${v.id}` : `v${v.id}`);
      n = base;
      for (let k = 1; used.has(n); k++) n = `${base}_${k}`;
      used.add(n);
      names.set(v, n);
      return n;
    };
    for (const v of [...this.inputs, ...this.outputs]) nameOf(v); // reserve the public names first
    const initializers: TensorSpec[] = [];
    const seenInit = new Set<OnnxValue>();
    const nodes: NodeSpec[] = this.nodes.map((n) => ({
      op: n.op,
      inputs: n.inputs.map((v) => {
        if (!v) return '';
        if (v.isConst && !seenInit.has(v)) {
          seenInit.add(v);
          initializers.push(this.initializer(v, nameOf(v)));
        }
        return nameOf(v);
      }),
      outputs: n.outputs.map(nameOf),
      attrs: n.attrs,
    }));
    return {
      name: this.graphName,
      nodes,
      initializers,
      inputs: this.inputs.map((v) => ({ name: nameOf(v), dtype: v.dtype, shape: v.shape })),
      outputs: this.outputs.map((v) => ({ name: nameOf(v), dtype: v.dtype, shape: v.shape })),
    };
  }

  private initializer(v: OnnxValue, name: string): TensorSpec {
    if (v.ints) return { name, dtype: 'int64', shape: v.shape as number[], ints: v.ints };
    const data = v.host ? v.host.data : (v.folded!.dataSync() as Float32Array);
    const shape = v.host ? [...v.host.shape] : [...v.folded!.shape];
    if (data.length !== numel(shape)) throw new Error(`internal: initializer ${name} size mismatch`);
    return { name, dtype: 'float32', shape, data };
  }

  /** Serialise to ONNX protobuf bytes. */
  toBytes(metadata: Record<string, string> = {}): Uint8Array {
    return encodeModel(this.graph(), metadata);
  }

  dispose(): void {
    for (const t of this.allFolded) t.dispose();
    this.allFolded.length = 0;
  }
}

/** Host-side 2-D transpose: folding Wᵀ for every linear layer needs no trip through tfjs. */
function transpose2d(w: HostTensor): HostTensor {
  const [r, c] = w.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = w.data[i * c + j]!;
  return { shape: [c, r], data: out };
}
