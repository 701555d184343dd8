/** The shapes every dataset source produces and the trainer consumes. Types only. */

/** One labelled image. */
export interface Sample {
  /** H×W×3 RGB uint8, row-major, at the set's stored size (H = W = LabeledSet.size). */
  image: Uint8Array;
  /** Index into LabeledSet.classes. */
  label: number;
  /** Where it came from: a file path, or e.g. 'fashion-mnist:train:123' (index in the idx file). */
  source: string;
  /**
   * Generated parts only, on request: which cells of a 16×16 grid over the image show the defect
   * (1) or not (0), row-major (compiler/data/parts-cells.ts). Patch-level pretraining reads it.
   */
  cells?: Uint8Array;
}

export interface LabeledSet {
  name: string;
  /** Class names; a label is an index into this list. */
  classes: string[];
  /** Stored image side in pixels (every sample is size×size×3). */
  size: number;
  samples: Sample[];
}

export interface Split {
  train: LabeledSet;
  val: LabeledSet;
}

/**
 * How the model wants its input (from the backbone's arch table): side, per-channel mean/std on
 * 0..1 values, and how an image of another aspect ratio becomes square (the manifest's resize
 * contract, the same words the runtime cameras use).
 */
export interface Preprocess {
  imgSize: number;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  resize: ResizeMode;
}

/** 'center-crop': scale the shorter side to the target, then cut the centre. 'stretch': scale each axis. */
export type ResizeMode = 'stretch' | 'center-crop';

/** Training-time augmentation, as the methods' recipes ask for it. */
export interface Augment {
  /** torchvision RandomResizedCrop: area fraction in [lo, hi], aspect ratio in [lo, hi] (log-uniform). */
  randomResizedCrop?: { scale: readonly [number, number]; ratio?: readonly [number, number] };
  /** Mirror left-right with probability 1/2. */
  hflip?: boolean;
}

export interface Batch {
  /** [B, 3, S, S] float32, normalised ((pixel/255 − mean)/std), NCHW. */
  x: Float32Array;
  /** [B] class indices. */
  y: Int32Array;
  /** [B] Sample.source of each row, for error reports and confusion-matrix drill-down. */
  sources: string[];
}
