/**
 * From a compile config's `data` section to the deterministic batches the loop consumes.
 */
import { resolve } from 'node:path';
import type { DataConfig } from '../config/compile-config.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { loadImageFolder } from '../data/image-folder.ts';
import { makePartsSet } from '../data/parts.ts';
import { indicesByClass, kShot, splitFraction } from '../data/sampling.ts';
import { batches, prefetch } from '../data/loader.ts';
import { mixSeed, mulberry32, permutation } from '../../devices/rng.ts';
import type { ImageSample, SampleRequest } from '../methods/method.ts';
import { preprocessFor } from '../data/transforms.ts';
import type { Augment, LabeledSet, Preprocess, Split } from '../data/types.ts';
import type { TrainData } from './loop.ts';

/** Load (or generate) the train/validation split a config describes. Relative paths resolve against `baseDir`. */
export async function loadSplit(d: DataConfig, cfg: VitConfig, baseDir: string): Promise<Split> {
  switch (d.kind) {
    case 'fashion-mnist': {
      const common = { dir: resolve(baseDir, d.root), size: cfg.imgSize, classes: d.classes };
      return {
        train: loadFashionMnist({ ...common, split: 'train', ...(d.limitPerClass ? { limit: d.limitPerClass } : {}) }),
        val: loadFashionMnist({ ...common, split: 'test', ...(d.valLimitPerClass ? { limit: d.valLimitPerClass } : {}) }),
      };
    }
    case 'parts': {
      if (d.dir) return loadImageFolder(resolve(baseDir, d.dir), { size: cfg.imgSize, split: { val: d.valFraction, seed: d.seed } });
      return splitFraction(await makePartsSet({ perClass: d.perClass, size: d.size, seed: d.seed, part: d.part, material: d.material, ...(d.renderSize ? { renderSize: d.renderSize } : {}) }), d.valFraction, d.seed);
    }
    case 'image-folder':
      return loadImageFolder(resolve(baseDir, d.root), { size: cfg.imgSize, split: d.split === 'folder' ? { val: 'folder' } : { val: d.split, seed: 0 } });
  }
}

export interface DataPlan {
  split: Split;
  /** k-shot sampling of the training split (seeded), applied before batching. */
  kShot?: number;
  seed: number;
  augment: { randomResizedCrop: boolean; hflip: boolean };
}

export function trainData(cfg: VitConfig, plan: DataPlan): TrainData {
  const train = plan.kShot ? kShot(plan.split.train, plan.kShot, plan.seed) : plan.split.train;
  const val = plan.split.val;
  const pre = preprocessFor(cfg, 'stretch');
  // Small inputs (32 px) lose the object under ImageNet's 8 % minimum crop; keep ≥ 35 % of the area.
  const augment: Augment = {
    ...(plan.augment.randomResizedCrop ? { randomResizedCrop: { scale: [0.35, 1] as const } } : {}),
    ...(plan.augment.hflip ? { hflip: true } : {}),
  };
  const any = Object.keys(augment).length > 0;
  return {
    classes: train.classes,
    trainSize: train.samples.length,
    sample: (request) => sampleImages(train, pre, any ? augment : undefined, plan.seed, request),
    trainBatches: (epoch, batchSize) =>
      prefetch(batches(train, { batchSize: Math.min(batchSize, train.samples.length), shuffle: true, seed: plan.seed, epoch, dropLast: true, pre, ...(any ? { augment } : {}) })),
    valBatches: (batchSize) => prefetch(batches(val, { batchSize, pre })),
  };
}

/** Keeps method samples apart from the data-order and augmentation streams. */
const SAMPLE_STREAM = 0x73616d70; // 'samp'

/**
 * Training images for a method's data-dependent setup (PromptMethod's SampleRequest), with the
 * training transforms, drawn from (seed, stream) only: the same request always returns the same
 * images, so a resumed or re-run job initialises identically.
 */
export async function sampleImages(set: LabeledSet, pre: Preprocess, augment: Augment | undefined, seed: number, request: SampleRequest): Promise<ImageSample> {
  const rng = mulberry32(mixSeed(seed, request.stream ?? 0, SAMPLE_STREAM));
  let picks: number[];
  if ('count' in request) {
    if (!(Number.isInteger(request.count) && request.count > 0)) throw new RangeError(`sample count must be a positive integer, got ${request.count}`);
    picks = Array.from({ length: request.count }, () => Math.floor(rng() * set.samples.length));
  } else {
    if (!(Number.isInteger(request.perClass) && request.perClass > 0)) throw new RangeError(`sample perClass must be a positive integer, got ${request.perClass}`);
    picks = indicesByClass(set).flatMap((idx) => permutation(idx.length, rng).slice(0, request.perClass).map((j) => idx[j]!));
  }
  const subset: LabeledSet = { ...set, samples: picks.map((i) => set.samples[i]!) };
  const [b] = [...batches(subset, { batchSize: picks.length, pre, seed, epoch: request.stream ?? 0, ...(augment ? { augment } : {}) })];
  const S = pre.imgSize;
  return { x: { shape: [picks.length, 3, S, S], data: b!.x }, y: b!.y };
}
