/**
 * Epochs of batches. The order of an epoch and the augmentation draws of each batch are pure
 * functions of (seed, epoch, batch index), so a run is reproducible, a resumed run sees the same
 * batches from the step it resumes at, and batches can be built in any thread (batch-workers.ts)
 * with identical results.
 */
import { CompilerError } from '../ops/errors.ts';
import { checkInt } from './errors.ts';
import { mixSeed, mulberry32, permutation, type Rng } from '../../devices/rng.ts';
import { toBatch } from './transforms.ts';
import type { Augment, Batch, LabeledSet, Preprocess } from './types.ts';

export interface BatchesOptions {
  batchSize: number;
  /** Default false (evaluation order). */
  shuffle?: boolean;
  /** Default 0. */
  seed?: number;
  /** Default 0; each epoch gets its own order and augmentation draws. */
  epoch?: number;
  /** Drop a last partial batch (default false). */
  dropLast?: boolean;
  pre: Preprocess;
  augment?: Augment;
}

const ORDER_STREAM = 1;
const AUGMENT_STREAM = 2;

export function numBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** Sample indices of one epoch: set order, or a permutation keyed by (seed, epoch). */
export function epochOrder(n: number, options: Pick<BatchesOptions, 'shuffle' | 'seed' | 'epoch'>): number[] {
  if (!options.shuffle) return Array.from({ length: n }, (_, i) => i);
  return permutation(n, mulberry32(mixSeed(options.seed ?? 0, options.epoch ?? 0, ORDER_STREAM)));
}

/** The augmentation stream of batch b: independent of every other batch. */
export const batchRng = (seed: number, epoch: number, b: number): Rng => mulberry32(mixSeed(seed, epoch, b, AUGMENT_STREAM));

/** Validated options with defaults filled in. */
export function resolveBatches(set: LabeledSet, options: BatchesOptions): Required<Omit<BatchesOptions, 'augment'>> & { augment?: Augment; count: number } {
  const batchSize = checkInt(options.batchSize, 'batchSize', 1);
  const seed = checkInt(options.seed ?? 0, 'seed');
  const epoch = checkInt(options.epoch ?? 0, 'epoch');
  const dropLast = options.dropLast ?? false;
  const count = numBatches(set.samples.length, batchSize, dropLast);
  if (count === 0) throw new CompilerError('DATA_INVALID', `${set.name}: ${set.samples.length} samples make no batch of ${batchSize}${dropLast ? ' with dropLast' : ''}; lower batchSize`);
  return { ...options, batchSize, seed, epoch, dropLast, shuffle: options.shuffle ?? false, count };
}

/** One epoch of batches, built lazily as the caller iterates. */
export function* batches(set: LabeledSet, options: BatchesOptions): Generator<Batch> {
  const o = resolveBatches(set, options);
  const order = epochOrder(set.samples.length, o);
  for (let b = 0; b < o.count; b++) {
    const rows = order.slice(b * o.batchSize, (b + 1) * o.batchSize).map((i) => set.samples[i]!);
    yield toBatch(rows, o.pre, o.augment ? { augment: o.augment, rng: batchRng(o.seed, o.epoch, b) } : {});
  }
}

/**
 * Keeps up to `depth` items of `source` in preparation while the caller works on the current one.
 *
 * What overlaps in Node: an async source (sharp decoding, batch-workers.ts) works on other threads,
 * so its next items really are made during the caller's computation. A sync source (batches()) is
 * plain JS on this thread: each next() is deferred to setImmediate, so it runs whenever the caller
 * awaits (a training step in worker threads, tfjs-node's async data()), and costs the same time as
 * calling it inline when the caller never yields. Use workerBatches() to move augmentation off the
 * main thread.
 */
export async function* prefetch<T>(source: Iterable<T> | AsyncIterable<T>, depth = 2): AsyncGenerator<T> {
  checkInt(depth, 'prefetch depth', 1);
  const it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : deferred(source[Symbol.iterator]());
  const queue: Promise<IteratorResult<T>>[] = [];
  const ask = (): void => {
    const p = it.next();
    p.catch(() => {}); // rejections surface when awaited below, not as unhandled ones meanwhile
    queue.push(p);
  };
  try {
    for (let i = 0; i < depth; i++) ask();
    for (;;) {
      const r = await queue.shift()!;
      if (r.done) return;
      ask();
      yield r.value;
    }
  } finally {
    await it.return?.();
  }
}

/** A sync iterator whose steps run on later turns of the event loop, one at a time, in order. */
function deferred<T>(it: Iterator<T>): AsyncIterator<T> {
  let chain: Promise<unknown> = Promise.resolve();
  let finished = false;
  const step = (): Promise<IteratorResult<T>> => {
    const p = chain.then(
      () =>
        new Promise<IteratorResult<T>>((resolve, reject) =>
          setImmediate(() => {
            if (finished) return resolve({ done: true, value: undefined });
            try {
              const r = it.next();
              if (r.done) finished = true;
              resolve(r);
            } catch (e) {
              finished = true;
              reject(e);
            }
          }),
        ),
    );
    chain = p.catch(() => {});
    return p;
  };
  return {
    next: step,
    return: async () => {
      finished = true;
      it.return?.();
      return { done: true, value: undefined };
    },
  };
}
