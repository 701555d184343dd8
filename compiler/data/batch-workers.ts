/**
 * Batches built in worker threads, so JS augmentation (crops, resampling, normalisation) runs in
 * parallel with the training step on the main thread. The set's pixels go once into shared memory;
 * each epoch yields exactly what loader.ts's batches() would for the same options, in order.
 */
import { Worker } from 'node:worker_threads';
import { CompilerError, type CompilerErrorCode } from '../ops/errors.ts';
import { checkInt } from './errors.ts';
import { epochOrder, resolveBatches, type BatchesOptions } from './loader.ts';
import type { Job, Reply, WorkerInit } from './batch-worker.ts';
import type { Batch, LabeledSet } from './types.ts';

export interface BatchWorkersOptions {
  /** Worker threads; default 1. */
  workers?: number;
  /** Batches in flight per worker; default 2. */
  depth?: number;
}

interface Pending {
  resolve: (r: { x: Float32Array; y: Int32Array }) => void;
  reject: (e: Error) => void;
}

export class BatchWorkers {
  private readonly workers: Worker[];
  private readonly pending = new Map<number, Pending>();
  private readonly depth: number;
  private nextId = 0;
  private failure: Error | null = null;

  constructor(private readonly set: LabeledSet, options: BatchWorkersOptions = {}) {
    const n = checkInt(options.workers ?? 1, 'workers', 1);
    this.depth = checkInt(options.depth ?? 2, 'depth', 1);
    const px = set.size * set.size * 3;
    const images = new SharedArrayBuffer(set.samples.length * px);
    const view = new Uint8Array(images);
    const labels = new Int32Array(set.samples.length);
    set.samples.forEach((s, i) => {
      if (s.image.length !== px) throw new CompilerError('DATA_INVALID', `${s.source}: ${s.image.length} bytes, but ${set.name} stores ${set.size}×${set.size}×3`);
      view.set(s.image, i * px);
      labels[i] = s.label;
    });
    const init: WorkerInit = { images, labels, side: set.size };
    this.workers = Array.from({ length: n }, () => spawn(init));
    for (const w of this.workers) {
      w.on('message', (r: Reply) => this.settle(r));
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => code !== 0 && this.fail(new Error(`batch worker exited with code ${code}`)));
    }
  }

  /** One epoch; same batches as batches(set, options). */
  async *batches(options: BatchesOptions): AsyncGenerator<Batch> {
    const o = resolveBatches(this.set, options);
    const order = epochOrder(this.set.samples.length, o);
    const rows = (b: number): Int32Array => Int32Array.from(order.slice(b * o.batchSize, (b + 1) * o.batchSize));
    const inFlight: Promise<{ x: Float32Array; y: Int32Array }>[] = [];
    let sent = 0;
    const send = (): void => {
      if (this.failure) throw this.failure;
      const b = sent++;
      const job: Job = { id: this.nextId++, rows: rows(b), seed: o.seed, epoch: o.epoch, b, pre: o.pre, ...(o.augment && { augment: o.augment }) };
      const p = new Promise<{ x: Float32Array; y: Int32Array }>((resolve, reject) => this.pending.set(job.id, { resolve, reject }));
      p.catch(() => {}); // awaited in order below
      inFlight.push(p);
      this.workers[b % this.workers.length]!.postMessage(job);
    };
    for (let b = 0; b < o.count; b++) {
      while (sent < o.count && sent < b + this.depth * this.workers.length) send();
      const { x, y } = await inFlight.shift()!;
      const idx = rows(b);
      yield { x, y, sources: Array.from(idx, (i) => this.set.samples[i]!.source) };
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private settle(r: Reply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if ('error' in r) p.reject(new CompilerError((r.error.code as CompilerErrorCode | undefined) ?? 'DATA_INVALID', r.error.message));
    else p.resolve(r);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/**
 * The worker is TypeScript. Under `node --import tsx` (tests) it inherits the loader through
 * execArgv; under tools/edgeprompt.mjs tsx is registered by API, so the worker registers it too
 * before importing its module.
 */
function spawn(init: WorkerInit): Worker {
  const entry = new URL('./batch-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData: init });
}

