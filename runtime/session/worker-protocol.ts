// Messages between the inference worker (worker.ts) and its proxy (worker-engine.ts).
// Frames travel in transferred ArrayBuffers (moved, not copied) and come back with the result; a
// prompt pack's constant tensors travel once per session (`data` with a new `ref`), after that as
// the `ref` alone.

import type * as ort from 'onnxruntime-node';

export type FeedData = Uint8Array | Float32Array | Int32Array | BigInt64Array | Uint16Array | Int8Array | Float64Array;

export interface Feed {
  name: string;
  type: ort.Tensor.Type;
  dims: readonly number[];
  /** The tensor's data: frames (a whole transferred buffer), or a constant sent the first time (with `ref`). */
  data?: FeedData;
  /** A constant the worker keeps for this session. */
  ref?: number;
}

export type Request =
  | { op: 'open'; id: number; model: Uint8Array; options: ort.InferenceSession.SessionOptions }
  | { op: 'run'; id: number; session: number; feeds: Feed[]; fetches: string[] }
  | { op: 'release'; id: number; session: number }
  | { op: 'drop'; session: number; ref: number }
  // Tests only: an uncaught exception, the way a bug in the worker would end it.
  | { op: 'crash' };

export interface OpenInfo {
  session: number;
  inputNames: string[];
  outputNames: string[];
  inputMetadata: ort.InferenceSession.ValueMetadata[];
  outputMetadata: ort.InferenceSession.ValueMetadata[];
}

export type Outputs = Record<string, { data: FeedData; dims: number[] }>;

/** A run's reply: the outputs, and the frames' buffers handed back. */
export interface RunResult {
  outputs: Outputs;
  frames: ArrayBuffer[];
}

export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };
