/**
 * Plain graph specs and their protobuf encoding (onnx-proto: protobufjs-6 static code of the
 * ONNX schema). Keeping the recorder on plain specs lets autodiff and inspection work on the
 * same structures without touching protobuf objects.
 */
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import type { Dim } from './ops.ts';

const { onnx } = onnxProto;
const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

export const OPSET = 17;
export const IR_VERSION = 8;

export type AttrValue = number | string | number[] | { float: number };
export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  domain?: string;
  name?: string;
}
export type SpecType = 'float32' | 'float16' | 'uint8' | 'int64' | 'int8' | 'int32';
export interface TensorSpec {
  name: string;
  dtype: SpecType;
  shape: number[];
  data?: Float32Array;
  ints?: readonly number[];
  raw?: Uint8Array;
}
export interface ValueSpec {
  name: string;
  dtype: SpecType;
  shape: Dim[];
}
export interface GraphSpec {
  name: string;
  nodes: NodeSpec[];
  initializers: TensorSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
}

const DTYPE: Record<SpecType, number> = {
  float32: DT.FLOAT,
  float16: DT.FLOAT16,
  uint8: DT.UINT8,
  int8: DT.INT8,
  int32: DT.INT32,
  int64: DT.INT64,
};
const DTYPE_NAME = new Map<number, SpecType>(Object.entries(DTYPE).map(([k, v]) => [v, k as SpecType]));

function tensorProto(t: TensorSpec): O.ITensorProto {
  let raw: Uint8Array;
  if (t.raw) raw = t.raw;
  else if (t.ints) {
    const b = new BigInt64Array(t.ints.map((i) => BigInt(i)));
    raw = new Uint8Array(b.buffer);
  } else {
    const d = t.data!;
    raw = new Uint8Array(d.buffer, d.byteOffset, d.byteLength); // little-endian hosts only (x86, arm)
  }
  return { name: t.name, dims: t.shape, dataType: DTYPE[t.dtype], rawData: raw };
}

function valueInfo(v: ValueSpec): O.IValueInfoProto {
  return {
    name: v.name,
    type: { tensorType: { elemType: DTYPE[v.dtype], shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

function attribute(name: string, v: AttrValue): O.IAttributeProto {
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: AT.INT, i: v } : { name, type: AT.FLOAT, f: v };
  if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: AT.INTS, ints: v };
  return { name, type: AT.FLOAT, f: v.float };
}

export function encodeModel(g: GraphSpec, metadata: Record<string, string> = {}, extraOpsets: { domain: string; version: number }[] = []): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'edgeprompt',
    producerVersion: '0.1.0',
    opsetImport: [{ domain: '', version: OPSET }, ...extraOpsets],
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: g.name,
      node: g.nodes.map((n, i) => ({
        opType: n.op,
        domain: n.domain ?? '',
        name: n.name ?? `${n.op}_${i}`,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
      })),
      initializer: g.initializers.map(tensorProto),
      input: g.inputs.map(valueInfo),
      output: g.outputs.map(valueInfo),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

export interface ModelSummary {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producer: string;
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  opCounts: Record<string, number>;
  initializers: number;
  initializerBytes: number;
  parameters: number;
  metadata: Record<string, string>;
}

const num = (x: unknown): number => (typeof x === 'number' ? x : Number(x as { toString(): string }));

function specOf(v: O.IValueInfoProto): ValueSpec {
  const tt = v.type?.tensorType;
  return {
    name: v.name ?? '',
    dtype: DTYPE_NAME.get(tt?.elemType ?? 0) ?? 'float32',
    shape: (tt?.shape?.dim ?? []).map((d) => (d.dimParam ? (d.dimParam as Dim) : num(d.dimValue))),
  };
}

/** Decode enough of a model to describe it (`edgeprompt info`). Throws on bytes that are not ONNX. */
export function summarizeModel(bytes: Uint8Array): ModelSummary {
  const m = onnx.ModelProto.decode(bytes);
  if (!m.graph) throw new Error('no graph in model');
  const opCounts: Record<string, number> = {};
  for (const n of m.graph.node ?? []) {
    const k = n.domain ? `${n.domain}:${n.opType}` : (n.opType ?? '?');
    opCounts[k] = (opCounts[k] ?? 0) + 1;
  }
  let initializerBytes = 0;
  let parameters = 0;
  for (const t of m.graph.initializer ?? []) {
    const n = (t.dims ?? []).reduce<number>((p, d) => p * num(d), 1);
    parameters += n;
    initializerBytes += t.rawData?.byteLength ?? 0;
  }
  return {
    irVersion: num(m.irVersion),
    opsets: (m.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: num(o.version) })),
    producer: `${m.producerName ?? ''} ${m.producerVersion ?? ''}`.trim(),
    inputs: (m.graph.input ?? []).map(specOf),
    outputs: (m.graph.output ?? []).map(specOf),
    opCounts,
    initializers: m.graph.initializer?.length ?? 0,
    initializerBytes,
    parameters,
    metadata: Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
  };
}
