/** Classification metrics from logits: pure functions, tested on their own. */
import { inspectionMetrics, okScoreOf, type InspectedPart, type InspectionMetrics, type InspectionRule } from '../../runtime/pipeline/inspection.ts';

export interface EvalMetrics {
  top1: number;
  perClass: number[];
  /** confusion[true][predicted] counts. */
  confusion: number[][];
  /** Predictions per class (the confusion matrix's column sums): a collapsed run puts them all in one. Absent: derived from `confusion`. */
  predicted?: number[];
  count: number;
  loss: number;
  /**
   * Further named figures a job's own evaluator reports (pretraining: top-1 per source, the
   * held-out line's probe); kept in the epoch's history record.
   */
  details?: Record<string, number>;
  /** Escape / false-reject rates, AUROC and the rest, when the task inspects parts (okLabels). */
  inspection?: InspectionMetrics;
}

export class MetricAccumulator {
  private readonly confusion: number[][];
  private lossSum = 0;
  private n = 0;
  private readonly parts: InspectedPart[] = [];
  constructor(
    private readonly numClasses: number,
    private readonly rule?: InspectionRule,
  ) {
    this.confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  }

  /** logits [B, C] row-major; adds cross-entropy to the running loss. */
  add(logits: Float32Array, labels: ArrayLike<number>): void {
    const C = this.numClasses;
    const probs = new Float64Array(C);
    for (let b = 0; b < labels.length; b++) {
      let best = 0;
      let max = -Infinity;
      for (let c = 0; c < C; c++) {
        const v = logits[b * C + c]!;
        if (v > max) {
          max = v;
          best = c;
        }
      }
      let z = 0;
      for (let c = 0; c < C; c++) z += (probs[c] = Math.exp(logits[b * C + c]! - max));
      const y = labels[b]!;
      this.lossSum += Math.log(z) + max - logits[b * C + y]!;
      this.confusion[y]![best]!++;
      this.n++;
      if (this.rule) {
        for (let c = 0; c < C; c++) probs[c]! /= z;
        this.parts.push({ truth: y, predicted: best, okScore: okScoreOf(probs, this.rule.okClasses) });
      }
    }
  }

  result(): EvalMetrics {
    const perClass = this.confusion.map((row, i) => {
      const total = row.reduce((p, v) => p + v, 0);
      return total ? row[i]! / total : 0;
    });
    const correct = this.confusion.reduce((p, row, i) => p + row[i]!, 0);
    const predicted = columnSums(this.confusion);
    return {
      top1: this.n ? correct / this.n : 0,
      perClass,
      confusion: this.confusion.map((r) => [...r]),
      predicted,
      count: this.n,
      loss: this.n ? this.lossSum / this.n : 0,
      ...(this.rule && { inspection: inspectionMetrics(this.parts, this.rule, this.numClasses) }),
    };
  }
}

/** Predictions per class from confusion[true][predicted]. */
export const columnSums = (m: readonly (readonly number[])[]): number[] => m[0]?.map((_, j) => m.reduce((p, row) => p + row[j]!, 0)) ?? [];
