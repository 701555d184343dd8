// Epoch iteration: deterministic shuffling and augmentation, prefetching, worker-built batches.

import test from 'ava';
import { CompilerError } from '../compiler/ops/errors.ts';
import { BatchWorkers } from '../compiler/data/batch-workers.ts';
import { batches, numBatches, prefetch, type BatchesOptions } from '../compiler/data/loader.ts';
import type { Batch, Preprocess } from '../compiler/data/types.ts';
import { syntheticSet } from './helpers/images.ts';

const set = syntheticSet({ a: 12, b: 9, c: 6 }, 8);
const pre: Preprocess = { imgSize: 8, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], resize: 'center-crop' };
const aug = { randomResizedCrop: { scale: [0.4, 1] as const }, hflip: true };
const order = (bs: Batch[]): string[] => bs.flatMap((b) => b.sources);

test('without shuffle: set order, last partial batch kept unless dropLast', (t) => {
  const bs = [...batches(set, { batchSize: 10, pre })];
  t.deepEqual(bs.map((b) => b.y.length), [10, 10, 7]);
  t.deepEqual(order(bs), set.samples.map((s) => s.source));
  t.deepEqual([...batches(set, { batchSize: 10, pre, dropLast: true })].map((b) => b.y.length), [10, 10]);
  t.is(numBatches(27, 10), 3);
  t.is(numBatches(27, 10, true), 2);
});

test('shuffle is a permutation fixed by (seed, epoch): same again, new each epoch and seed', (t) => {
  const o = (seed: number, epoch: number): string[] => order([...batches(set, { batchSize: 8, shuffle: true, seed, epoch, pre })]);
  const e0 = o(1, 0);
  t.deepEqual([...e0].sort(), set.samples.map((s) => s.source).sort());
  t.deepEqual(o(1, 0), e0);
  t.notDeepEqual(o(1, 1), e0);
  t.notDeepEqual(o(2, 0), e0);
});

test('augmentation draws are per batch: a resumed run rebuilds batch k identically', (t) => {
  const opts: BatchesOptions = { batchSize: 5, shuffle: true, seed: 4, epoch: 2, pre, augment: aug };
  const a = [...batches(set, opts)];
  const b = [...batches(set, opts)];
  t.deepEqual(a, b);
  t.notDeepEqual([...batches(set, { ...opts, epoch: 3 })][0]!.x, a[0]!.x);
  // Consuming only from batch 3 on (a resume mid-epoch) yields the same tensors as a full pass.
  const it = batches(set, opts);
  for (let i = 0; i < 3; i++) it.next();
  t.deepEqual(it.next().value, a[3]);
});

test('bad options are errors naming the field', (t) => {
  t.throws(() => [...batches(set, { batchSize: 0, pre })], { instanceOf: CompilerError, message: /batchSize: expected an integer ≥ 1, got 0/ });
  t.throws(() => [...batches(set, { batchSize: 100, dropLast: true, pre })], { instanceOf: CompilerError, message: /27 samples make no batch of 100 with dropLast/ });
  t.throws(() => [...batches(set, { batchSize: 4, seed: -1, pre })], { instanceOf: CompilerError, message: /seed/ });
});

test('prefetch yields the same items in order and overlaps the source with a consumer that awaits', async (t) => {
  const opts: BatchesOptions = { batchSize: 4, shuffle: true, seed: 1, pre, augment: aug };
  const direct = [...batches(set, opts)];
  const got: Batch[] = [];
  for await (const b of prefetch(batches(set, opts), 3)) got.push(b);
  t.deepEqual(got, direct);

  // A consumer that awaits per item (a training step in worker threads, a native call) overlaps
  // with making the next item, for a sync source doing JS on this thread (deferred to the
  // consumer's waits) as for an async one waiting elsewhere. Checked by event order, not timing.
  const log: string[] = [];
  const busy = function* (): Generator<number> {
    for (let i = 0; i < 4; i++) {
      log.push(`make ${i}`);
      const until = performance.now() + 5;
      while (performance.now() < until);
      yield i;
    }
  };
  const idle = async function* (): AsyncGenerator<number> {
    for (let i = 0; i < 4; i++) {
      log.push(`make ${i}`);
      await new Promise((r) => setTimeout(r, 5));
      yield i;
    }
  };
  for (const [name, source] of [['sync', busy], ['async', idle]] as const) {
    log.length = 0;
    for await (const i of prefetch(source(), 2)) {
      log.push(`use ${i}`);
      await new Promise((r) => setTimeout(r, 10));
      log.push(`used ${i}`);
    }
    for (let i = 0; i < 3; i++) t.true(log.indexOf(`make ${i + 1}`) < log.indexOf(`used ${i}`), `${name}: ${log.join(', ')}`);
  }
});

test('prefetch passes on a source error and stops the source when the consumer breaks', async (t) => {
  const failing = function* (): Generator<number> {
    yield 1;
    throw new Error('decode failed: x.png');
  };
  const seen: number[] = [];
  await t.throwsAsync(async () => {
    for await (const v of prefetch(failing(), 2)) seen.push(v);
  }, { message: 'decode failed: x.png' });
  t.deepEqual(seen, [1]);

  let closed = false;
  const endless = function* (): Generator<number> {
    try {
      for (let i = 0; ; i++) yield i;
    } finally {
      closed = true;
    }
  };
  for await (const v of prefetch(endless(), 2)) if (v === 3) break;
  t.true(closed);
});

test('BatchWorkers builds, in worker threads, exactly the batches of batches()', async (t) => {
  const pool = new BatchWorkers(set, { workers: 2, depth: 2 });
  t.teardown(() => pool.close());
  for (const epoch of [0, 1]) {
    const opts: BatchesOptions = { batchSize: 5, shuffle: true, seed: 7, epoch, pre, augment: aug };
    const got: Batch[] = [];
    for await (const b of pool.batches(opts)) got.push(b);
    t.deepEqual(got, [...batches(set, opts)], `epoch ${epoch}`);
  }
  // An error inside a worker comes back as a CompilerError with its code.
  await t.throwsAsync(async () => {
    for await (const _ of pool.batches({ batchSize: 5, pre: { ...pre, std: [0, 1, 1] } })) void _;
  }, { instanceOf: CompilerError, message: /preprocess\.std\[0\]/ });
});
