// What a result is decided and reported with: a task. A fused artifact is one task (its
// ModelSession). On a shared backbone every prompt pack is a task (PackTask): its labels and
// thresholds decide, `ref` names the backbone (results' `model`) and `prompt` the pack (results'
// `prompt`). The pipeline, health and commands see tasks only; the ORT session underneath is shared.
// This file holds the types; ModelSession (session.ts) and PackTask (backbone.ts) implement ModelTask.

import type { Manifest } from '../artifact/manifest.ts';
import type { ArtifactRef, LabelScore } from '../schema/payloads.ts';
import type { EpAttempt } from './errors.ts';

export interface ModelTask {
  /** The task manifest: labels, thresholds (OK/NG), input, outputs. */
  readonly manifest: Manifest;
  /** The model artifact results report as `model`. */
  readonly ref: ArtifactRef;
  /** The prompt pack results report as `prompt`; null for a fused artifact. */
  readonly prompt: ArtifactRef | null;
  readonly ep: string;
  readonly attempts: readonly EpAttempt[];
  readonly warmupMs: number;
  readonly maxBatch: number;
  /** Classifies frames (each H×W×3 uint8 at the input size) in one batched run. */
  run(frames: readonly Uint8Array[], k?: number): Promise<BatchResult>;
}

export interface Prediction {
  index: number;
  label: string;
  score: number;
  topK: LabelScore[];
  /** Views into the run's output tensors ([C] each). */
  probs: Float32Array;
  logits: Float32Array;
  /** The task this frame was decided with, when a host runs several (prompt packs on one shared backbone). */
  task?: ModelTask;
}

export interface BatchResult {
  predictions: Prediction[];
  /** Wall time of session.run (all chunks). */
  inferMs: number;
  /** Epoch ms when the run started. */
  startedAt: number;
}
