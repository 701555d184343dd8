/**
 * The safetensors format: u64-LE header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {k: v}}`, then raw
 * little-endian bytes. Small enough to own; every read is bounds-checked so a truncated or
 * foreign file fails with an error that names the file and the tensor.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { CompilerError } from '../ops/errors.ts';
import { type HostTensor, numel, fromF16, toF16, fmtShape } from '../ops/host-tensor.ts';

export type StateDict = Map<string, HostTensor>;
export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export function parseSafetensors(buf: Uint8Array, file = '<buffer>'): SafetensorsFile {
  const bad = (why: string) => new CompilerError('BAD_FILE', `${file}: not a valid safetensors file: ${why}`);
  if (buf.byteLength < 8) throw bad(`only ${buf.byteLength} bytes`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > buf.byteLength - 8 || headerLen > 100_000_000) throw bad(`header length ${headerLen} exceeds the file (${buf.byteLength} bytes)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  } catch (e) {
    throw bad(`header is not JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + headerLen;
  const tensors: StateDict = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const e = raw as HeaderEntry;
    if (!e || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) throw bad(`entry "${name}" lacks dtype/shape/data_offsets`);
    const width = BYTES[e.dtype];
    if (width === undefined) throw bad(`tensor "${name}" has unknown dtype ${e.dtype}`);
    const [b, end] = e.data_offsets;
    const n = numel(e.shape);
    if (end - b !== n * width) throw bad(`tensor "${name}" ${e.dtype}${fmtShape(e.shape)} needs ${n * width} bytes, offsets give ${end - b}`);
    if (dataStart + end > buf.byteLength) throw bad(`tensor "${name}" ends at byte ${dataStart + end} but the file has ${buf.byteLength} (truncated?)`);
    tensors.set(name, { shape: e.shape, data: decode(buf, dataStart + b, n, e.dtype) });
  }
  return { tensors, metadata };
}

function decode(buf: Uint8Array, offset: number, n: number, dtype: string): Float32Array {
  // Copy into a fresh, aligned buffer: the payload offset need not be a multiple of 4, and
  // Buffer.slice would return a view of Node's shared pool.
  const bytes = new Uint8Array(n * BYTES[dtype]!);
  bytes.set(buf.subarray(offset, offset + bytes.byteLength));
  const dv = new DataView(bytes.buffer);
  switch (dtype) {
    case 'F32': return new Float32Array(bytes.buffer);
    case 'F16': return fromF16(new Uint16Array(bytes.buffer));
    case 'BF16': {
      const out = new Float32Array(n);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'F64': return Float32Array.from(new Float64Array(bytes.buffer));
    case 'I64': return Float32Array.from({ length: n }, (_, i) => Number(dv.getBigInt64(8 * i, true)));
    case 'I32': return Float32Array.from(new Int32Array(bytes.buffer));
    case 'I16': return Float32Array.from(new Int16Array(bytes.buffer));
    case 'I8': return Float32Array.from(new Int8Array(bytes.buffer));
    default: return Float32Array.from(bytes);
  }
}

export function readSafetensors(file: string): SafetensorsFile {
  if (!existsSync(file)) throw new CompilerError('FILE_NOT_FOUND', `${file}: no such file`);
  return parseSafetensors(readFileSync(file), file);
}

export function encodeSafetensors(tensors: StateDict | Record<string, HostTensor>, opts: { dtype?: 'F32' | 'F16'; metadata?: Record<string, string> } = {}): Uint8Array {
  const dtype = opts.dtype ?? 'F32';
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  const payloads: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    const bytes = dtype === 'F16' ? new Uint8Array(toF16(t.data).buffer) : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    payloads.push(bytes);
    offset += bytes.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(json.byteLength + ((8 - (json.byteLength % 8)) % 8)).fill(0x20); // pad with spaces
  head.set(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let p = 8 + head.byteLength;
  for (const b of payloads) {
    out.set(b, p);
    p += b.byteLength;
  }
  return out;
}

export function writeSafetensors(file: string, tensors: StateDict | Record<string, HostTensor>, opts?: { dtype?: 'F32' | 'F16'; metadata?: Record<string, string> }): void {
  writeFileSync(file, encodeSafetensors(tensors, opts));
}
