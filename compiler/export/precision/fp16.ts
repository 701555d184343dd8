/**
 * fp16 variants of an exported graph. Both store every sizeable float initializer as FLOAT16
 * (half the file); they differ in where the arithmetic happens:
 *
 * - `storage`: each fp16 initializer gets a Cast to float that ORT constant-folds at session
 *   load, so the device computes exactly the fp32 graph on fp16-rounded weights. As fast as
 *   fp32 on CPU (docs/bench/precision.md): the default for CPU targets.
 * - `compute`: ops in `fp16Ops` run in fp16; everything else stays fp32 with Casts at the
 *   boundaries. The default for GPU targets, where every op has fp16 kernels.
 *
 * ORT 1.30's CPU EP (x64 without AVX512-FP16) has fp16 kernels for LayerNormalization and the
 * layout ops only: MatMul, Gemm, Add, Mul, Div, Sub, Erf, Sigmoid, Softmax and ReduceMean get
 * Casts inserted around them by ORT itself (InsertCastTransformer), which costs time and
 * blocks the GELU fusion (probed with scratch models, read back from optimizedModelFilePath).
 * So `CPU_FP16_OPS` is just LayerNormalization, and on CPU `compute` is slower than `storage`.
 *
 * The I/O contract never changes (`keepIo`): a uint8 image stays uint8 (cast straight to fp16
 * when its first arithmetic consumer runs fp16; 0..255 are exact in fp16), float inputs stay
 * float32, and every output is float32 (cast at the end when computed in fp16).
 */
import type { GraphSpec, NodeSpec, SpecType, TensorSpec } from '../../ops/onnx-proto.ts';
import { numel, toF16 } from '../../ops/host-tensor.ts';
import { CompilerError } from '../../ops/errors.ts';

export type Fp16Mode = 'compute' | 'storage';
export type Fp16Target = 'cpu' | 'gpu';

/** Ops ORT 1.30's CPU EP runs in fp16 on x64 (see the header). */
export const CPU_FP16_OPS: readonly string[] = ['LayerNormalization'];
/** Arithmetic ops of our graphs that CUDA/TensorRT run in fp16 (with fp32 accumulation inside MatMul, Softmax, LayerNorm). */
export const GPU_FP16_OPS: readonly string[] = ['MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Div', 'Erf', 'Sigmoid', 'Softmax', 'LayerNormalization', 'ReduceMean', 'ReduceSum'];

/** Ops that only move data: they run in whatever float type reaches them, never forcing a Cast. */
const LAYOUT_OPS = new Set(['Reshape', 'Transpose', 'Concat', 'Slice', 'Split', 'Expand', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten', 'Gather', 'Tile']);
/** ONNX TensorProto.DataType codes used by Cast's `to`. */
const ONNX_TYPE = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, float16: 10 } as const satisfies Record<SpecType, number>;
const FROM_ONNX = new Map<number, SpecType>(Object.entries(ONNX_TYPE).map(([k, v]) => [v, k as SpecType]));
const FP16_MAX = 65504;

export interface Fp16Options {
  /** Inputs and outputs keep their types (uint8 image, float32 logits/probs). Only `true` is supported. */
  keepIo: true;
  /** Default: `storage` for CPU targets, `compute` for GPU targets. */
  mode?: Fp16Mode;
  target?: Fp16Target;
  /** `compute` mode: ops to run in fp16; default by target (CPU_FP16_OPS / GPU_FP16_OPS). */
  fp16Ops?: readonly string[];
  /** Float initializers smaller than this stay float32 unless an fp16 op reads them (nothing to save; keeps GELU's √2 exact). Default 16. */
  minElements?: number;
}

export function defaultFp16Mode(target: Fp16Target): Fp16Mode {
  return target === 'gpu' ? 'compute' : 'storage';
}

const isFloat = (t: SpecType | undefined): t is 'float32' | 'float16' => t === 'float32' || t === 'float16';

/** The graph with fp16 initializers and (in `compute` mode) fp16 arithmetic where `fp16Ops` allow. */
export function toFp16(g: GraphSpec, opts: Fp16Options): GraphSpec {
  if (opts.keepIo !== true) throw new CompilerError('INTERNAL', 'toFp16: only keepIo: true is supported (the device contract is uint8 in, float32 out)');
  const target = opts.target ?? 'cpu';
  const mode = opts.mode ?? defaultFp16Mode(target);
  const half = new Set(mode === 'storage' ? [] : (opts.fp16Ops ?? (target === 'gpu' ? GPU_FP16_OPS : CPU_FP16_OPS)));
  const minElements = opts.minElements ?? 16;

  const init = new Map(g.initializers.map((t) => [t.name, t]));
  const consumers = new Map<string, NodeSpec[]>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);

  // ── pass A: the float type each node computes in, and the type of every activation ──────────
  const type = new Map<string, SpecType>();
  for (const v of g.inputs) type.set(v.name, v.dtype);
  for (const t of g.initializers) type.set(t.name, t.dtype);
  const computeType = new Map<NodeSpec, 'float32' | 'float16'>();
  const isActivation = (name: string) => name !== '' && !init.has(name);
  // Does a value reach an fp16 op before any fp32 arithmetic (looking through layout ops)?
  const feedsHalf = (name: string, seen = new Set<string>()): boolean =>
    (consumers.get(name) ?? []).some((c) => {
      if (LAYOUT_OPS.has(c.op)) return c.outputs.some((o) => !seen.has(o) && (seen.add(o), feedsHalf(o, seen)));
      return half.has(c.op);
    });

  for (const n of g.nodes) {
    const floatIns = n.inputs.filter((i) => isFloat(type.get(i)));
    let out: SpecType | undefined;
    if (n.op === 'Cast') {
      const to = FROM_ONNX.get(n.attrs.to as number);
      if (!to) throw new CompilerError('UNSUPPORTED', `toFp16: node ${n.name ?? n.outputs[0]}: Cast to ONNX type ${String(n.attrs.to)}`);
      // uint8 → float: produce fp16 directly when the pixels go to fp16 arithmetic first.
      out = to === 'float32' && !isFloat(type.get(n.inputs[0]!)) && feedsHalf(n.outputs[0]!) ? 'float16' : to;
      if (isFloat(out)) computeType.set(n, out);
    } else if (n.op === 'Shape' || n.op === 'Size') {
      out = 'int64';
    } else if (floatIns.length === 0) {
      out = type.get(n.inputs[0] ?? '');
    } else if (LAYOUT_OPS.has(n.op)) {
      const firstAct = floatIns.find(isActivation);
      out = firstAct ? type.get(firstAct) : n.outputs.some((o) => feedsHalf(o)) ? 'float16' : 'float32';
      computeType.set(n, out as 'float32' | 'float16');
    } else {
      out = half.has(n.op) ? 'float16' : 'float32';
      computeType.set(n, out);
    }
    for (const o of n.outputs) if (o && out) type.set(o, out);
  }

  // ── pass B: how each float initializer is stored ───────────────────────────────────────────
  const stored = new Map<string, TensorSpec>();
  for (const t of g.initializers) {
    if (t.dtype !== 'float32') {
      stored.set(t.name, t);
      continue;
    }
    const wanted = (consumers.get(t.name) ?? []).some((c) => computeType.get(c) === 'float16');
    // Read only in fp32: fp16 would just save bytes, so tiny tensors and ones fp16 cannot hold stay fp32.
    if (!wanted && (numel(t.shape) < minElements || outOfRange(t.data!) >= 0)) {
      stored.set(t.name, t);
      continue;
    }
    stored.set(t.name, halfTensor(t));
    type.set(t.name, 'float16');
  }

  // ── pass C: emit, casting each float operand to its node's compute type ───────────────────
  const head: NodeSpec[] = []; // casts of initializers: ORT folds them at load
  const body: NodeSpec[] = [];
  const casts = new Map<string, string>();
  const castTo = (name: string, to: 'float32' | 'float16', into: NodeSpec[]): string => {
    if (type.get(name) === to) return name;
    const key = `${name}|${to}`;
    let out = casts.get(key);
    if (!out) {
      out = `${name}/${to === 'float16' ? 'f16' : 'f32'}`;
      casts.set(key, out);
      type.set(out, to);
      into.push({ op: 'Cast', inputs: [name], outputs: [out], attrs: { to: ONNX_TYPE[to] }, name: `Cast:${out}` });
    }
    return out;
  };
  for (const n of g.nodes) {
    const ct = computeType.get(n);
    if (n.op === 'Cast') {
      const to = type.get(n.outputs[0]!)!;
      body.push({ ...n, attrs: { ...n.attrs, to: ONNX_TYPE[to] } });
      continue;
    }
    const inputs = n.inputs.map((i) => (ct && isFloat(type.get(i)) ? castTo(i, ct, init.has(i) ? head : body) : i));
    body.push({ ...n, inputs });
  }

  // ── outputs stay float32 ──────────────────────────────────────────────────────────────────
  const rename = new Map<string, string>();
  for (const v of g.outputs) if (type.get(v.name) === 'float16' && v.dtype === 'float32') rename.set(v.name, `${v.name}/f16`);
  const r = (s: string) => rename.get(s) ?? s;
  const nodes = [...head, ...body].map((n) => ({ ...n, inputs: n.inputs.map(r), outputs: n.outputs.map(r) }));
  for (const [name, internal] of rename) nodes.push({ op: 'Cast', inputs: [internal], outputs: [name], attrs: { to: ONNX_TYPE.float32 }, name: `Cast:${name}` });

  return { ...g, nodes, initializers: g.initializers.map((t) => stored.get(t.name)!), inputs: g.inputs.map((v) => ({ ...v })), outputs: g.outputs.map((v) => ({ ...v })) };
}

/** An fp32 initializer as FLOAT16 bits; refuses values fp16 cannot hold rather than turning them into ±inf. */
function halfTensor(t: TensorSpec): TensorSpec {
  const d = t.data!;
  const i = outOfRange(d);
  if (i >= 0) throw new CompilerError('UNSUPPORTED', `fp16: initializer "${t.name}" holds ${d[i]} at index ${i}, beyond fp16's ±${FP16_MAX}, and fp16 ops read it; use mode 'storage', fp32 or int8 for this model`);
  const bits = toF16(d);
  return { name: t.name, dtype: 'float16', shape: [...t.shape], raw: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength) };
}

/** Index of the first value beyond fp16's range (it would become ±inf), or -1. */
function outOfRange(d: Float32Array): number {
  for (let i = 0; i < d.length; i++) if (Math.abs(d[i]!) > FP16_MAX) return i;
  return -1;
}

/** Bytes of initializer data by element type: what the fp16 and int8 passes shrink. */
export function initializerBytes(g: GraphSpec): Record<string, number> {
  const size: Record<SpecType, number> = { float32: 4, float16: 2, uint8: 1, int8: 1, int32: 4, int64: 8 };
  const out: Record<string, number> = {};
  for (const t of g.initializers) out[t.dtype] = (out[t.dtype] ?? 0) + numel(t.shape) * size[t.dtype];
  return out;
}
