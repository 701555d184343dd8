/**
 * int8 in QDQ form: ORT sees DequantizeLinear → MatMul ← DequantizeLinear and fuses the pair
 * into an integer kernel (MatMulIntegerToFloat / QGemm on CPU) while every other op stays float.
 *
 * - Weights: the 2-D float initializer a MatMul or Gemm reads, quantized offline, per output
 *   channel, symmetric (zero point 0). MatMul weights are `<key>.T` [in, out] → axis 1; Gemm
 *   with transB=1 reads timm's [out, in] → axis 0.
 * - Activations: the MatMul/Gemm input, per tensor, asymmetric uint8 with the range from
 *   `calibrate` (QuantizeLinear → DequantizeLinear in the graph; ORT reads the scale from it).
 * - Left in float: LayerNorm, Softmax, GELU, the bias Adds, and MatMuls whose second operand is
 *   an activation (attention scores q·kᵀ and a·v) or a constant that is not a 2-D weight (fused
 *   prefix K/V, [H, dh, N]): those are small, and the score path is where int8 hurts most.
 *
 * Weight range: x86 without VNNI multiplies u8×s8 with vpmaddubsw, which adds two products into
 * a saturating int16; 255·127·2 overflows it, 255·63·2 does not. So 7-bit weights (±63) there
 * (docs/platform.md "int8 on x86 without VNNI": full-range weights gave an order of magnitude
 * more error), 8-bit on VNNI and ARM.
 */
import { readFileSync } from 'node:fs';
import type { GraphSpec, NodeSpec, TensorSpec } from '../../ops/onnx-proto.ts';
import { CompilerError } from '../../ops/errors.ts';

/** One MatMul/Gemm whose weight gets quantized. */
export interface QuantSite {
  node: NodeSpec;
  /** The activation operand (input 0). */
  activation: string;
  /** The 2-D float initializer (input 1). */
  weight: string;
  /** The weight axis that indexes output channels. */
  axis: 0 | 1;
}

/** Observed range of one tensor (JSON-serialisable: it goes into the manifest). */
export interface TensorRange {
  min: number;
  max: number;
}
export interface Calibration {
  method: 'minmax' | 'percentile';
  percentile?: number;
  /** Images the ranges were observed on. */
  images: number;
  ranges: Record<string, TensorRange>;
}

export interface Int8Options {
  /** 7 on x86 without VNNI (see the header), else 8. Default: `defaultWeightBits()` of this host. */
  weightBits?: 7 | 8;
  /**
   * Quantize Gemm weights too (default false). Our only Gemm is the head [C, D]: ORT's CPU EP
   * does not fuse DQ → Gemm with a float bias and float output (it runs DequantizeLinear and
   * a float Gemm), so quantizing it saves C·D·3 bytes and adds error, nothing else.
   */
  gemm?: boolean;
  /** Leave a site in float, e.g. the first layer: `(s) => s.weight.startsWith('blocks.0.')`. */
  exclude?: (site: QuantSite) => boolean;
  /**
   * Attention products (a MatMul of two activations): 'float' (default) leaves them alone;
   * 'dynamic' quantizes both operands at run time (DynamicQuantizeLinear: uint8, per tensor, the
   * range of this very input) into MatMulInteger, scaled back to float. No calibration: the range
   * of attention scores and probabilities varies from image to image, which a static range fits
   * badly (a static QDQ here lost top-1 on every test image). In an ORT-optimised graph the
   * scores q·kᵀ are a FusedMatMul (transB, alpha) and stay float; a·v is a plain MatMul.
   * docs/bench/precision.md measures what it buys.
   */
  attention?: 'float' | 'dynamic';
}

/** The MatMul/Gemm nodes whose second operand is a 2-D float32 initializer. */
export function quantSites(g: GraphSpec): QuantSite[] {
  const init = new Map(g.initializers.map((t) => [t.name, t]));
  const sites: QuantSite[] = [];
  for (const n of g.nodes) {
    if (n.domain || (n.op !== 'MatMul' && n.op !== 'Gemm')) continue;
    const [a, w] = n.inputs as [string, string];
    const t = init.get(w);
    if (!t || t.dtype !== 'float32' || t.shape.length !== 2 || init.has(a)) continue;
    if (n.op === 'Gemm' && n.attrs.transA) continue; // our exporters never write one: skipped rather than handled untested
    sites.push({ node: n, activation: a, weight: w, axis: n.op === 'Gemm' && n.attrs.transB ? 0 : 1 });
  }
  return sites;
}

/** Per-channel symmetric int8: q = round(w / s_c), s_c = max|w_c| / qmax; `axis` indexes the channels of a 2-D [rows, cols] tensor. */
export function quantizeWeight(t: TensorSpec, axis: 0 | 1, bits: 7 | 8): { q: Int8Array; scale: Float32Array } {
  const [rows, cols] = t.shape as [number, number];
  const d = t.data!;
  const channels = axis === 0 ? rows : cols;
  const qmax = 2 ** (bits - 1) - 1;
  const amax = new Float32Array(channels);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
    const c = axis === 0 ? i : j;
    amax[c] = Math.max(amax[c]!, Math.abs(d[i * cols + j]!));
  }
  // An all-zero channel still needs a positive scale; its values quantize to 0 exactly.
  const scale = amax.map((m) => (m > 0 ? m / qmax : 1));
  const q = new Int8Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
    const k = i * cols + j;
    q[k] = Math.max(-qmax, Math.min(qmax, Math.round(d[k]! / scale[axis === 0 ? i : j]!)));
  }
  return { q, scale };
}

/** Asymmetric uint8 for a range, widened to include 0 so zero (padding, ReLU floor) stays exact. */
export function activationParams(r: TensorRange): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, r.min);
  const hi = Math.max(0, r.max);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new CompilerError('INTERNAL', `int8: calibration range [${r.min}, ${r.max}] is not finite`);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  return { scale, zeroPoint: Math.max(0, Math.min(255, Math.round(-lo / scale))) };
}

export function quantizeInt8(g: GraphSpec, calibration: Calibration, opts: Int8Options = {}): GraphSpec {
  const bits = opts.weightBits ?? defaultWeightBits();
  if (bits !== 7 && bits !== 8) throw new CompilerError('INTERNAL', `int8: weightBits must be 7 or 8, got ${String(bits)}`);
  const sites = quantSites(g).filter((s) => (opts.gemm || s.node.op !== 'Gemm') && !opts.exclude?.(s));
  const init = new Map(g.initializers.map((t) => [t.name, t]));
  const added: TensorSpec[] = [];
  const bySite = new Map(sites.map((s) => [s.node, s]));
  const done = new Map<string, string>(); // float tensor → its dequantized replacement
  const nodes: NodeSpec[] = [];

  const f32 = (name: string, shape: number[], data: Float32Array): TensorSpec => ({ name, dtype: 'float32', shape, data });
  const qdqWeight = (s: QuantSite): string => {
    const key = `${s.weight}|${s.axis}`;
    const seen = done.get(key);
    if (seen) return seen;
    const t = init.get(s.weight)!;
    const { q, scale } = quantizeWeight(t, s.axis, bits);
    const ch = scale.length;
    added.push(
      { name: `${s.weight}.int8`, dtype: 'int8', shape: [...t.shape], raw: new Uint8Array(q.buffer) },
      f32(`${s.weight}.scale`, [ch], scale),
      { name: `${s.weight}.zero_point`, dtype: 'int8', shape: [ch], raw: new Uint8Array(ch) },
    );
    const out = `${s.weight}.dq`;
    nodes.push({ op: 'DequantizeLinear', inputs: [`${s.weight}.int8`, `${s.weight}.scale`, `${s.weight}.zero_point`], outputs: [out], attrs: { axis: s.axis }, name: `DequantizeLinear:${s.weight}` });
    done.set(key, out);
    return out;
  };
  const qdqActivation = (s: QuantSite): string => {
    const seen = done.get(s.activation);
    if (seen) return seen;
    const r = calibration.ranges[s.activation];
    if (!r) throw new CompilerError('MISSING_TENSOR', `int8: no calibration range for "${s.activation}" (input of ${s.node.name ?? s.node.op}); calibrate this graph before quantizing it`);
    const { scale, zeroPoint } = activationParams(r);
    const a = s.activation;
    added.push(f32(`${a}.scale`, [], Float32Array.of(scale)), { name: `${a}.zero_point`, dtype: 'uint8', shape: [], raw: Uint8Array.of(zeroPoint) });
    nodes.push(
      { op: 'QuantizeLinear', inputs: [a, `${a}.scale`, `${a}.zero_point`], outputs: [`${a}.q`], attrs: {}, name: `QuantizeLinear:${a}` },
      { op: 'DequantizeLinear', inputs: [`${a}.q`, `${a}.scale`, `${a}.zero_point`], outputs: [`${a}.dq`], attrs: {}, name: `DequantizeLinear:${a}` },
    );
    done.set(a, `${a}.dq`);
    return `${a}.dq`;
  };

  const actAct = (n: NodeSpec) => !n.domain && n.op === 'MatMul' && n.inputs.length === 2 && !init.has(n.inputs[0]!) && !init.has(n.inputs[1]!);
  let dyn = 0;
  for (const n of g.nodes) {
    const s = bySite.get(n);
    if (!s && opts.attention === 'dynamic' && actAct(n)) {
      // [.., M, K] × [.., K, N]: both operands uint8 with their own scale and zero point;
      // MatMulInteger gives int32 Σ (a - za)(b - zb), times sa·sb is the float product.
      const id = `${n.name ?? n.outputs[0]}.dyn${dyn++}`;
      const [a, b] = n.inputs as [string, string];
      nodes.push(
        { op: 'DynamicQuantizeLinear', inputs: [a], outputs: [`${id}.a`, `${id}.a.scale`, `${id}.a.zero_point`], attrs: {}, name: `DynamicQuantizeLinear:${id}.a` },
        { op: 'DynamicQuantizeLinear', inputs: [b], outputs: [`${id}.b`, `${id}.b.scale`, `${id}.b.zero_point`], attrs: {}, name: `DynamicQuantizeLinear:${id}.b` },
        { op: 'MatMulInteger', inputs: [`${id}.a`, `${id}.b`, `${id}.a.zero_point`, `${id}.b.zero_point`], outputs: [`${id}.int32`], attrs: {}, name: `MatMulInteger:${id}` },
        { op: 'Cast', inputs: [`${id}.int32`], outputs: [`${id}.float`], attrs: { to: 1 }, name: `Cast:${id}` },
        { op: 'Mul', inputs: [`${id}.a.scale`, `${id}.b.scale`], outputs: [`${id}.scale`], attrs: {}, name: `Mul:${id}.scale` },
        { op: 'Mul', inputs: [`${id}.float`, `${id}.scale`], outputs: n.outputs, attrs: {}, name: `Mul:${id}` },
      );
      continue;
    }
    if (!s) {
      nodes.push(n);
      continue;
    }
    const a = qdqActivation(s); // Q/DQ right before their first consumer keeps the order topological
    const w = qdqWeight(s);
    nodes.push({ ...n, inputs: [a, w, ...n.inputs.slice(2)] });
  }
  // Drop float weights nothing reads any more: the point is the smaller file.
  const read = new Set(nodes.flatMap((n) => n.inputs));
  const outputs = new Set(g.outputs.map((v) => v.name));
  const initializers = [...g.initializers.filter((t) => read.has(t.name) || outputs.has(t.name)), ...added];
  return { ...g, nodes, initializers, inputs: g.inputs.map((v) => ({ ...v })), outputs: g.outputs.map((v) => ({ ...v })) };
}

/** What the host CPU offers for u8×s8 dot products. */
export function hostHasVnni(cpuinfo?: string): boolean {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return false; // not Linux: assume the conservative case
    }
  }
  return /\b(avx512_vnni|avx_vnni)\b/.test(text);
}

/**
 * 7 on x86 without VNNI (vpmaddubsw saturation), 8 elsewhere. For the device, not the build
 * machine: pass the target's facts when compiling for another CPU.
 */
export function defaultWeightBits(target: { arch?: string; vnni?: boolean } = {}): 7 | 8 {
  const arch = target.arch ?? process.arch;
  if (arch !== 'x64' && arch !== 'ia32') return 8;
  return (target.vnni ?? (target.arch === undefined && hostHasVnni())) ? 8 : 7;
}
