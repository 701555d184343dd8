/**
 * Plain graph specs and their protobuf encoding (onnx-proto: protobufjs-6 static code of the
 * ONNX schema). Keeping the recorder on plain specs lets autodiff and inspection work on the
 * same structures without touching protobuf objects.
 */
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import type { Dim } from './ops.ts';
import { CompilerError } from './errors.ts';
import { VERSION } from '../../runtime/version.ts';

const { onnx } = onnxProto;
const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

const OPSET = 17;
const IR_VERSION = 8;

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
    producerVersion: VERSION,
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

/** A model read back into plain specs, with what `encodeModel` takes besides the graph. */
export interface DecodedModel {
  graph: GraphSpec;
  metadata: Record<string, string>;
  /** Opsets other than the default domain's (e.g. com.microsoft), to pass back to `encodeModel`. */
  extraOpsets: { domain: string; version: number }[];
  opset: number;
}

function bytesOf(raw: Uint8Array): Uint8Array {
  // protobufjs hands out views into the whole model buffer: copy so typed views are aligned and owned.
  return new Uint8Array(raw);
}

function tensorSpec(t: O.ITensorProto): TensorSpec {
  const name = t.name ?? '';
  const dtype = DTYPE_NAME.get(t.dataType ?? 0);
  if (!dtype) throw new CompilerError('UNSUPPORTED', `initializer "${name}": ONNX data type ${t.dataType} is not one of ${Object.keys(DTYPE).join(', ')}`);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) throw new CompilerError('UNSUPPORTED', `initializer "${name}": external data is not supported; save the model as one file`);
  const shape = (t.dims ?? []).map(num);
  const n = shape.reduce((p, d) => p * d, 1);
  const raw = t.rawData && t.rawData.byteLength > 0 ? bytesOf(t.rawData) : null;
  if (dtype === 'float32') {
    const data = raw ? new Float32Array(raw.buffer, 0, raw.byteLength / 4) : Float32Array.from(t.floatData ?? []);
    if (data.length !== n) throw new CompilerError('BAD_FILE', `initializer "${name}": ${data.length} values for shape [${shape.join(', ')}]`);
    return { name, dtype, shape, data };
  }
  if (dtype === 'int64') {
    const ints = raw ? Array.from(new BigInt64Array(raw.buffer, 0, raw.byteLength / 8), Number) : (t.int64Data ?? []).map(num);
    return { name, dtype, shape, ints };
  }
  if (raw) return { name, dtype, shape, raw };
  // Typed fields: int8/uint8/int32/float16 all live in int32Data (float16 as its bit pattern).
  const ints = t.int32Data ?? [];
  const out =
    dtype === 'int32' ? new Uint8Array(Int32Array.from(ints).buffer)
    : dtype === 'float16' ? new Uint8Array(Uint16Array.from(ints).buffer)
    : dtype === 'int8' ? new Uint8Array(Int8Array.from(ints).buffer)
    : Uint8Array.from(ints);
  return { name, dtype, shape, raw: out };
}

function attrValue(a: O.IAttributeProto, where: string): AttrValue {
  switch (a.type) {
    case AT.INT: return num(a.i);
    // A whole-number FLOAT must stay FLOAT when encoded again: encodeModel writes plain integers as INT.
    case AT.FLOAT: return Number.isInteger(a.f ?? 0) ? { float: a.f ?? 0 } : (a.f ?? 0);
    case AT.STRING: return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AT.INTS: return (a.ints ?? []).map(num);
    default: throw new CompilerError('UNSUPPORTED', `${where}: attribute "${a.name}" has ONNX attribute type ${a.type}, which GraphSpec cannot hold`);
  }
}

/** Read a model back into plain specs (the inverse of `encodeModel` for the graphs this compiler writes). */
export function decodeModel(bytes: Uint8Array): DecodedModel {
  let m: O.ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new CompilerError('BAD_FILE', `not an ONNX model (${(e as Error).message})`);
  }
  if (!m.graph) throw new CompilerError('BAD_FILE', 'ONNX model has no graph');
  const g = m.graph;
  const opsets = (m.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: num(o.version) }));
  const graph: GraphSpec = {
    name: g.name ?? '',
    nodes: (g.node ?? []).map((n, i) => {
      const name = n.name || `${n.opType}_${i}`;
      const spec: NodeSpec = {
        op: n.opType ?? '',
        inputs: [...(n.input ?? [])],
        outputs: [...(n.output ?? [])],
        attrs: Object.fromEntries((n.attribute ?? []).map((a) => [a.name ?? '', attrValue(a, `node ${name}`)])),
        name,
      };
      if (n.domain) spec.domain = n.domain;
      return spec;
    }),
    initializers: (g.initializer ?? []).map(tensorSpec),
    inputs: (g.input ?? []).map(specOf),
    outputs: (g.output ?? []).map(specOf),
  };
  return {
    graph,
    metadata: Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
    extraOpsets: opsets.filter((o) => o.domain !== '' && o.domain !== 'ai.onnx'),
    opset: opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? OPSET,
  };
}

/** The graph of a model, as plain specs. */
export function decodeGraph(bytes: Uint8Array): GraphSpec {
  return decodeModel(bytes).graph;
}
