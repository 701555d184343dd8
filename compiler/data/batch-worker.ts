/**
 * Worker-thread side of batch-workers.ts: builds batches from the set's pixels in shared memory.
 * Runs the same toBatch() with the same per-batch stream as loader.ts's batches().
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CompilerError } from '../ops/errors.ts';
import { batchRng } from './loader.ts';
import { toBatch } from './transforms.ts';
import type { Augment, Preprocess, Sample } from './types.ts';

export interface WorkerInit {
  /** [N, side, side, 3] uint8. */
  images: SharedArrayBuffer;
  labels: Int32Array;
  side: number;
}

export interface Job {
  id: number;
  rows: Int32Array;
  seed: number;
  epoch: number;
  b: number;
  pre: Preprocess;
  augment?: Augment;
}

export type Reply = { id: number; x: Float32Array; y: Int32Array } | { id: number; error: { message: string; code?: string } };

const init = workerData as WorkerInit;
const px = init.side * init.side * 3;
const pixels = new Uint8Array(init.images);

parentPort!.on('message', (job: Job) => {
  try {
    const samples: Sample[] = Array.from(job.rows, (i) => ({ image: pixels.subarray(i * px, (i + 1) * px), label: init.labels[i]!, source: String(i) }));
    const { x, y } = toBatch(samples, job.pre, job.augment ? { augment: job.augment, rng: batchRng(job.seed, job.epoch, job.b) } : {});
    parentPort!.postMessage({ id: job.id, x, y } satisfies Reply, [x.buffer as ArrayBuffer, y.buffer as ArrayBuffer]);
  } catch (e) {
    const code = e instanceof CompilerError ? e.code : undefined;
    parentPort!.postMessage({ id: job.id, error: { message: (e as Error).message, ...(code && { code }) } } satisfies Reply);
  }
});
