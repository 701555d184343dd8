// Where onnxruntime sessions are created and run: an Engine. onnxruntime-node computes
// `session.run` synchronously on the calling thread (its promise only defers the call), so on the
// main thread every inference blocks the event loop: camera pipes, MQTT, the outbox and health wait
// for it. The worker engine (worker-engine.ts) runs the sessions in a worker thread behind the same
// interface, so the rest of the runtime overlaps with inference; the main engine runs them in-thread
// (profile `threads.inference: main`), for debugging and as the reference the worker must equal.
//
// This file holds the interfaces; main-engine.ts and worker-engine.ts implement them and
// providers.ts picks one for a profile (engineFor).

import type * as ort from 'onnxruntime-node';

/** What OrtSession needs from one opened model: its graph's inputs/outputs, run and release. */
export interface EngineSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  /** Runs the graph; rejects with ORT's message when it fails. Outputs' `data` are plain typed arrays. */
  run(feeds: Record<string, ort.Tensor>, fetches: readonly string[]): Promise<Record<string, { readonly data: unknown; readonly dims: readonly number[] }>>;
  release(): Promise<void>;
}

export interface Engine {
  readonly kind: 'main' | 'worker';
  /** Creates a session for an ONNX model (rejects with ORT's error, like InferenceSession.create). */
  open(model: Uint8Array, options: ort.InferenceSession.SessionOptions, file: string): Promise<EngineSession>;
  /**
   * A buffer of exactly `bytes` for one run's frames, which are copied into it (a memcpy each). The
   * worker engine moves it to the worker and back without copying, and reuses it.
   */
  frameBuffer(bytes: number): Uint8Array;
  /** True when a frame the caller owns can be fed as is (no copy at all). */
  readonly zeroCopyFrames: boolean;
}
