/** compiler/data: datasets for the compile stage. One import for the trainer, the CLI and the benches. */
export type { Augment, Batch, LabeledSet, Preprocess, ResizeMode, Sample, Split } from './types.ts';
export { DataError, type DataErrorReason } from './errors.ts';
export { loadImageFolder, type FolderSplit, type ImageFolderOptions } from './image-folder.ts';
export { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadFashionMnist, type FashionMnistOptions } from './fashion-mnist.ts';
export { PART_CLASSES, PARTS_VERSION, makePartsSet, readPartsManifest, writePartsSet, type PartClass, type PartsManifest, type PartsOptions } from './parts.ts';
export { assertClasses, classCounts, kShot, splitFraction, subsetClasses } from './sampling.ts';
export { preprocessFor, toBatch, type ToBatchOptions } from './transforms.ts';
export { batches, epochOrder, numBatches, prefetch, type BatchesOptions } from './loader.ts';
export { BatchWorkers, type BatchWorkersOptions } from './batch-workers.ts';
export { mulberry32, type Rng } from './rng.ts';
