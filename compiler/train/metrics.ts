/** Classification metrics from logits: pure functions, tested on their own. */
export interface EvalMetrics {
  top1: number;
  perClass: number[];
  /** confusion[true][predicted] counts. */
  confusion: number[][];
  count: number;
  loss: number;
  /**
   * Further named figures a job's own evaluator reports (pretraining: top-1 per source, the
   * held-out line's probe); kept in the epoch's history record.
   */
  details?: Record<string, number>;
}

export class MetricAccumulator {
  private readonly confusion: number[][];
  private lossSum = 0;
  private n = 0;
  constructor(private readonly numClasses: number) {
    this.confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  }

  /** logits [B, C] row-major; adds cross-entropy to the running loss. */
  add(logits: Float32Array, labels: ArrayLike<number>): void {
    const C = this.numClasses;
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
      for (let c = 0; c < C; c++) z += Math.exp(logits[b * C + c]! - max);
      const y = labels[b]!;
      this.lossSum += Math.log(z) + max - logits[b * C + y]!;
      this.confusion[y]![best]!++;
      this.n++;
    }
  }

  result(): EvalMetrics {
    const perClass = this.confusion.map((row, i) => {
      const total = row.reduce((p, v) => p + v, 0);
      return total ? row[i]! / total : 0;
    });
    const correct = this.confusion.reduce((p, row, i) => p + row[i]!, 0);
    return { top1: this.n ? correct / this.n : 0, perClass, confusion: this.confusion.map((r) => [...r]), count: this.n, loss: this.n ? this.lossSum / this.n : 0 };
  }
}
