/**
 * The contract between the pretraining method and its objectives (objective.ts holds `classify`
 * and the registry, contrastive.ts the CLIP term). In its own module so that an objective can
 * implement it without importing the registry that imports the objective.
 */
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { Rng } from '../../devices/rng.ts';

export const OBJECTIVES = ['classify', 'contrastive'] as const;
export type ObjectiveName = (typeof OBJECTIVES)[number];

/** What an objective knows about its source. */
export interface SourceHead {
  /** Source name: tensor and input names are keyed by it. */
  source: string;
  classes: readonly string[];
  /** First global label of this source: the mixture numbers all sources' classes in one range. */
  offset: number;
  labelSmoothing: number;
  /** Weight of the patch-level term (0: none); the data supplies `patch_targets.<source>`. */
  patches: number;
  /** Patch tokens per image (G²), for the patch-level term. */
  patchTokens: number;
}

/** What the backbone gives an objective: the pooled CLS feature and, when asked for, every token. */
export interface Features<T> {
  /** [B, D]. */
  pooled: T;
  /** [B, 1 + G², D] after the final norm (present when some source has a patch-level term). */
  tokens?: T;
}

export interface Objective {
  readonly name: ObjectiveName;
  /** Trainable tensors of this source's term and their initial values. */
  init(h: SourceHead, width: number, rng: Rng): Map<string, HostTensor>;
  /** Per-batch inputs the term reads ('N' is the batch). */
  inputShapes(h: SourceHead): Record<string, (number | 'N')[]>;
  /** Their values for a batch with global labels y (rows of other sources get zero weight). */
  inputs(h: SourceHead, y: Int32Array): Map<string, HostTensor>;
  /** This source's share of the batch loss: Σ over its rows / B. */
  loss<T>(ops: Ops<T>, h: SourceHead, feats: Features<T>, param: (name: string) => T, input: (name: string) => T): T;
  /** Scores [B, C_s] for evaluation (a classifier's logits). */
  scores<T>(ops: Ops<T>, h: SourceHead, pooled: T, param: (name: string) => T): T;
  /** Tensors of this term that weight decay must leave alone (e.g. CLIP's temperature). */
  noDecay?(name: string): boolean;
}
