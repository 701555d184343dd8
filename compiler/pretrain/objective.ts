/**
 * Pretraining objectives: what one source's rows of a mixed batch teach the backbone. Each source
 * names one objective; the pretraining loss is the sum of every source's term, and a term only
 * reads its own rows (the others carry zero weight in its per-batch input), so a batch can mix
 * sources freely and the loss equals the mean over the whole batch.
 *
 * `classify` is supervised classification with its own linear head per source (timm's
 * `head` layout under `heads.<source>.`). A contrastive image–text objective (issue 16, CLIP) fits
 * the same interface: its tensors (a projection), its per-batch inputs (caption embeddings and a
 * row mask) and its loss over the pooled features [B, D].
 */
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { normal, type Rng } from '../methods/method.ts';
import { softmaxCrossEntropy, smoothedTargets } from '../train/loss.ts';

export const OBJECTIVES = ['classify'] as const;
export type ObjectiveName = (typeof OBJECTIVES)[number];

/** What an objective knows about its source. */
export interface SourceHead {
  /** Source name: tensor and input names are keyed by it. */
  source: string;
  classes: readonly string[];
  /** First global label of this source: the mixture numbers all sources' classes in one range. */
  offset: number;
  labelSmoothing: number;
}

export interface Objective {
  readonly name: ObjectiveName;
  /** Trainable tensors of this source's term and their initial values. */
  init(h: SourceHead, width: number, rng: Rng): Map<string, HostTensor>;
  /** Per-batch inputs the term reads ('N' is the batch). */
  inputShapes(h: SourceHead): Record<string, (number | 'N')[]>;
  /** Their values for a batch with global labels y (rows of other sources get zero weight). */
  inputs(h: SourceHead, y: Int32Array): Map<string, HostTensor>;
  /** This source's share of the batch loss, from pooled features [B, D]: Σ over its rows / B. */
  loss<T>(ops: Ops<T>, h: SourceHead, pooled: T, param: (name: string) => T, input: (name: string) => T): T;
  /** Scores [B, C_s] for evaluation (a classifier's logits). */
  scores<T>(ops: Ops<T>, h: SourceHead, pooled: T, param: (name: string) => T): T;
}

export const headKeys = (source: string) => ({ w: `heads.${source}.weight`, b: `heads.${source}.bias`, targets: `targets.${source}` });

/**
 * Softmax cross-entropy with label smoothing on the source's own head. Its `targets.<s>` input is
 * the smoothed one-hot for the source's rows and all zeros for other rows, so
 * −Σ_b Σ_c t[b,c]·log_softmax(z)[b,c] / B counts only this source's rows.
 */
export const classify: Objective = {
  name: 'classify',
  init(h, width, rng) {
    const k = headKeys(h.source);
    const C = h.classes.length;
    const w = new Float32Array(C * width);
    for (let i = 0; i < w.length; i++) w[i] = 0.02 * normal(rng); // timm trunc_normal(std .02), bias 0
    return new Map([
      [k.w, { shape: [C, width], data: w }],
      [k.b, { shape: [C], data: new Float32Array(C) }],
    ]);
  },
  inputShapes: (h) => ({ [headKeys(h.source).targets]: ['N', h.classes.length] }),
  inputs(h, y) {
    const C = h.classes.length;
    const t = new Float32Array(y.length * C);
    const mine = Int32Array.from(y, (v) => (v >= h.offset && v < h.offset + C ? v - h.offset : 0));
    const smoothed = smoothedTargets(mine, C, h.labelSmoothing);
    y.forEach((v, b) => {
      if (v >= h.offset && v < h.offset + C) t.set(smoothed.subarray(b * C, (b + 1) * C), b * C);
    });
    return new Map([[headKeys(h.source).targets, { shape: [y.length, C], data: t }]]);
  },
  loss(ops, h, pooled, param, input) {
    // softmaxCrossEntropy divides by B (every row), so rows with zero targets add nothing.
    return softmaxCrossEntropy(ops, this.scores(ops, h, pooled, param), input(headKeys(h.source).targets));
  },
  scores(ops, h, pooled, param) {
    const k = headKeys(h.source);
    return ops.linear(pooled, param(k.w), param(k.b));
  },
};

export function objectiveByName(name: ObjectiveName): Objective {
  return { classify }[name];
}
