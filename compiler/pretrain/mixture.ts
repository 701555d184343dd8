/**
 * The mixture of sources as the training loop's data. Every source's classes get a range of global
 * labels (sources in config order). An epoch draws `samplesPerEpoch` images: each source's share is
 * fixed by its weight (largest remainder), the rows are interleaved in an order drawn from
 * (seed, epoch), and each source hands out its images from an endless chain of permutations, so
 * successive epochs walk through a large source instead of restarting it. Everything is a pure
 * function of (seed, epoch, batch): a resumed run sees the same batches.
 *
 * Horizontal flips are drawn here (not by toBatch) so a flipped image's defect cells flip with it;
 * colour augmentation (a per-image colour transform, its own stream) is applied here too;
 * a source with a patch-level term gets `patch_targets.<source>` [B, G², C] with each batch: per
 * patch, one-hot of the image's defect class where its cells show the defect, else of `ok`.
 */
import { CompilerError } from '../ops/errors.ts';
import { batchRng } from '../data/loader.ts';
import { prefetch } from '../data/loader.ts';
import { mixSeed, mulberry32, permutation } from '../../devices/rng.ts';
import { toBatch } from '../data/transforms.ts';
import type { Augment, Batch, Preprocess, Sample } from '../data/types.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { flipCells, poolCells } from '../data/parts-cells.ts';
import { applyColour, colourMatrix, drawColour } from '../data/colour-jitter.ts';
import type { TrainData } from '../train/loop.ts';
import type { LoadedSource } from './sources.ts';

const MIX_STREAM = 0x6d6978; // 'mix'
const SOURCE_STREAM = 0x73726321; // 'src!'
const FLIP_STREAM = 0x666c6970; // 'flip'
const COLOUR_STREAM = 0x636f6c72; // 'colr'

export interface MixtureOptions {
  samplesPerEpoch: number;
  seed: number;
  pre: Preprocess;
  /** Random resized crop (toBatch); not with patch-level terms. */
  augment?: Augment;
  /** Mirror left-right with probability ½ (images and their cells). */
  hflip?: boolean;
  /** Colour augmentation strength in [0, 1] (compiler/data/colour-jitter.ts); 0 or absent: off. */
  colour?: number;
  /** Patch grid side G of the backbone (imgSize / patchSize), for patch-level targets. */
  grid?: number;
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

/** A square H×W×3 image mirrored left-right. */
function flipImage(img: Uint8Array): Uint8Array {
  const side = Math.round(Math.sqrt(img.length / 3));
  const out = new Uint8Array(img.length);
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) out.set(img.subarray((y * side + side - 1 - x) * 3, (y * side + side - x) * 3), (y * side + x) * 3);
  return out;
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
    if (n === 0) throw new CompilerError('CONFIG_INVALID', `source ${sources[i]!.name}: weight ${sources[i]!.weight} draws no image from ${o.samplesPerEpoch} per epoch; raise its weight or samplesPerEpoch`);
  });
  const dense = sources.map((s) => s.patches > 0);
  if (dense.some(Boolean) && o.augment?.randomResizedCrop) throw new CompilerError('CONFIG_INVALID', 'recipe.augment.cropScale: a random crop would move the defect cells the patch-level term is trained on; leave cropScale out (the generator already varies scale and position)');
  const G = o.grid ?? 0;
  const relabel = (s: Sample, i: number): Sample => ({ ...s, label: s.label + offsets[i]! });
  const train = sources.map((s, i) => s.train.samples.map((x) => relabel(x, i)));
  train.forEach((rows, i) => {
    if (dense[i] && rows.some((r) => !r.cells)) throw new CompilerError('CONFIG_INVALID', `source ${sources[i]!.name}: a patch-level term needs defect cells, which only generated parts have`);
  });
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

  /** One-hot patch labels [B, G², C_s] for source i's rows of a batch (zeros for other rows). */
  function patchTargets(i: number, rows: [number, number][], cells: (Uint8Array | undefined)[]): HostTensor {
    const s = sources[i]!;
    const C = s.classes.length;
    const ok = s.classes.indexOf('ok');
    const t = new Float32Array(rows.length * G * G * C);
    rows.forEach(([src], b) => {
      if (src !== i) return;
      const label = train[i]![rows[b]![1]]!.label - offsets[i]!;
      const c = cells[b]!;
      for (let p = 0; p < G * G; p++) t[(b * G * G + p) * C + (c[p] ? label : ok)] = 1;
    });
    return { shape: [rows.length, G * G, C], data: t };
  }

  function* trainEpoch(epoch: number, batchSize: number): Generator<Batch & { inputs?: Map<string, HostTensor> }> {
    const all = epochRows(epoch);
    const count = Math.floor(all.length / batchSize);
    for (let b = 0; b < count; b++) {
      const rows = all.slice(b * batchSize, (b + 1) * batchSize);
      const flipRng = mulberry32(mixSeed(o.seed, epoch, b, FLIP_STREAM));
      const colourRng = mulberry32(mixSeed(o.seed, epoch, b, COLOUR_STREAM));
      const cells: (Uint8Array | undefined)[] = [];
      const picked = rows.map(([i, j]) => {
        const x = train[i]![j]!;
        const flip = o.hflip === true && flipRng() < 0.5;
        const c = x.cells && G ? poolCells(x.cells, G) : undefined;
        cells.push(c && flip ? flipCells(c, G) : c);
        const image = o.colour ? applyColour(x.image, colourMatrix(drawColour(colourRng, o.colour))) : x.image;
        return flip ? { ...x, image: flipImage(image) } : image === x.image ? x : { ...x, image };
      });
      const batch = toBatch(picked, o.pre, o.augment ? { augment: o.augment, rng: batchRng(o.seed, epoch, b) } : {});
      const inputs = new Map<string, HostTensor>();
      dense.forEach((d, i) => d && inputs.set(`patch_targets.${sources[i]!.name}`, patchTargets(i, rows, cells)));
      yield inputs.size ? { ...batch, inputs } : batch;
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
