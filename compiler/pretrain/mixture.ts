/**
 * The mixture of sources as the training loop's data. Every source's classes get a range of global
 * labels (sources in config order). An epoch draws `samplesPerEpoch` images: each source's share is
 * fixed by its weight (largest remainder), the rows are interleaved in an order drawn from
 * (seed, epoch), and each source hands out its images from an endless chain of permutations, so
 * successive epochs walk through a large source instead of restarting it. Everything is a pure
 * function of (seed, epoch, batch): a resumed run sees the same batches.
 */
import { CompilerError } from '../ops/errors.ts';
import { batchRng } from '../data/loader.ts';
import { prefetch } from '../data/loader.ts';
import { mixSeed, mulberry32, permutation } from '../data/rng.ts';
import { toBatch } from '../data/transforms.ts';
import type { Augment, Batch, Preprocess, Sample } from '../data/types.ts';
import type { TrainData } from '../train/loop.ts';
import type { LoadedSource } from './sources.ts';

const MIX_STREAM = 0x6d6978; // 'mix'
const SOURCE_STREAM = 0x73726321; // 'src!'

export interface MixtureOptions {
  samplesPerEpoch: number;
  seed: number;
  pre: Preprocess;
  augment?: Augment;
}

export interface Mixture extends TrainData {
  /** First global label of each source, in config order. */
  offsets: number[];
  /** Images per epoch from each source. */
  perEpoch: number[];
}

/** n split by weights: floor shares, then the largest remainders get one more (ties: config order). */
export function shares(n: number, weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (n * w) / total);
  const out = exact.map(Math.floor);
  const order = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (let k = 0; k < n - out.reduce((a, b) => a + b, 0); k++) out[order[k]!.i]!++;
  return out;
}

/** Index of the k-th draw from a source of n images: permutation ⌊k/n⌋ of (seed, source), entry k mod n. */
function drawIndex(cache: Map<number, number[]>, seed: number, source: number, n: number, k: number): number {
  const round = Math.floor(k / n);
  let perm = cache.get(round);
  if (!perm) {
    perm = permutation(n, mulberry32(mixSeed(seed, source, round, SOURCE_STREAM)));
    cache.set(round, perm);
  }
  return perm[k % n]!;
}

export function mixture(sources: readonly LoadedSource[], o: MixtureOptions): Mixture {
  const offsets: number[] = [];
  let next = 0;
  for (const s of sources) {
    offsets.push(next);
    next += s.classes.length;
  }
  const classes = sources.flatMap((s) => s.classes.map((c) => `${s.name}/${c}`));
  const perEpoch = shares(o.samplesPerEpoch, sources.map((s) => s.weight));
  perEpoch.forEach((n, i) => {
    if (n === 0) throw new CompilerError('BAD_ARGUMENT', `source ${sources[i]!.name}: weight ${sources[i]!.weight} draws no image from ${o.samplesPerEpoch} per epoch; raise its weight or samplesPerEpoch`);
  });
  const relabel = (s: Sample, i: number): Sample => ({ ...s, label: s.label + offsets[i]! });
  const train = sources.map((s, i) => s.train.samples.map((x) => relabel(x, i)));
  const val = sources.flatMap((s, i) => s.val.samples.map((x) => relabel(x, i)));

  /** The rows of one epoch as [source, index] pairs, in training order. */
  function epochRows(epoch: number): [number, number][] {
    const tags = perEpoch.flatMap((n, i) => new Array<number>(n).fill(i));
    const order = permutation(tags.length, mulberry32(mixSeed(o.seed, epoch, MIX_STREAM)));
    const taken = perEpoch.map(() => 0);
    const caches = sources.map(() => new Map<number, number[]>());
    return order.map((t) => {
      const i = tags[t]!;
      const k = epoch * perEpoch[i]! + taken[i]!++;
      return [i, drawIndex(caches[i]!, o.seed, i, train[i]!.length, k)];
    });
  }

  function* trainEpoch(epoch: number, batchSize: number): Generator<Batch> {
    const rows = epochRows(epoch);
    const count = Math.floor(rows.length / batchSize);
    for (let b = 0; b < count; b++) {
      const picked = rows.slice(b * batchSize, (b + 1) * batchSize).map(([i, j]) => train[i]![j]!);
      yield toBatch(picked, o.pre, o.augment ? { augment: o.augment, rng: batchRng(o.seed, epoch, b) } : {});
    }
  }

  function* valEpoch(batchSize: number): Generator<Batch> {
    for (let b = 0; b < val.length; b += batchSize) yield toBatch(val.slice(b, b + batchSize), o.pre);
  }

  return {
    classes,
    offsets,
    perEpoch,
    trainSize: o.samplesPerEpoch,
    trainBatches: (epoch, batchSize) => prefetch(trainEpoch(epoch, batchSize)),
    valBatches: (batchSize) => prefetch(valEpoch(batchSize)),
  };
}
