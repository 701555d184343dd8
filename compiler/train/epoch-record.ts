/**
 * One epoch of a run's history, as the trainer records it in state.json (checkpoint.ts) and the
 * progress line, the report and the trainer's warnings (diagnose.ts) read it. A file of its own so
 * that the checkpoint and the diagnosis, which each need the other's types, do not import each other.
 */
import type { InspectionMetrics } from '../../runtime/pipeline/inspection.ts';

export interface EpochRecord {
  epoch: number;
  lr: number;
  trainLoss: number;
  valLoss: number;
  valTop1: number;
  perClass: number[];
  /** Validation predictions per class (absent in checkpoints written before it was recorded). */
  predicted?: number[];
  /** Escape / false-reject rates, AUROC, per class, when the task inspects parts (okLabels). */
  inspection?: InspectionMetrics;
  imagesPerSec: number;
  seconds: number;
  /** EvalMetrics.details of this epoch, when the job's evaluator reports any (pretraining). */
  details?: Record<string, number>;
}
