// The watch after promotion (docs/deploy.md "Watch"): for watch.durationS the device counts what
// the promoted model does on the cameras it serves (results, NG decisions, inference time, failed
// frames) and rolls back by itself when inference errors pass maxErrors, or, once minFrames were
// seen, when the NG rate moved more than maxNgRateJumpPt from the candidate's NG rate in the shadow,
// or inference p99 passed maxInferP99Ms. The window ending without a trip commits the deployment.

import { QuantileRing } from '../health/quantile.ts';
import type { PipelineFailure, PipelineResult } from '../pipeline/types.ts';
import type { WatchFigures, WatchPolicy } from '../schema/deploy.ts';

export type WatchVerdict = { ok: true } | { ok: false; code: 'WATCH_INFERENCE_ERRORS' | 'WATCH_NG_RATE' | 'WATCH_LATENCY'; message: string };

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

export class WatchRun {
  private frames = 0;
  private ng = 0;
  private errors = 0;
  private lastError = '';
  private readonly infer = new QuantileRing(2048);

  constructor(
    private readonly policy: WatchPolicy,
    /** The cameras the promoted model serves. */
    private readonly covers: (camera: string) => boolean,
    /** The candidate's NG rate in the shadow (null when there was no shadow). */
    private readonly shadowNgRate: number | null,
    readonly endsAt: number,
  ) {}

  result(r: PipelineResult): void {
    if (!this.covers(r.input.camera)) return;
    this.frames++;
    if (r.input.decision === 'NG') this.ng++;
    this.infer.push(r.input.latency.inferMs);
  }

  failure(f: PipelineFailure): void {
    if (!this.covers(f.camera)) return;
    this.errors++;
    this.lastError = `${f.error.code ?? 'INFERENCE_FAILED'}: ${f.error.message}`;
  }

  figures(): WatchFigures {
    const p99 = this.infer.quantile(0.99);
    return { frames: this.frames, errors: this.errors, ngRate: this.frames ? this.ng / this.frames : null, inferMs: p99 === null ? null : { p50: this.infer.quantile(0.5)!, p99 }, endsAt: this.endsAt };
  }

  /** A trip (roll back), `ok` once the window is over, else null. */
  verdict(now = Date.now()): WatchVerdict | null {
    const p = this.policy;
    if (this.errors > p.maxErrors) {
      return { ok: false, code: 'WATCH_INFERENCE_ERRORS', message: `${this.errors} frame(s) failed inference after promotion (watch.maxErrors ${p.maxErrors}); last: ${this.lastError}` };
    }
    if (this.frames >= p.minFrames) {
      const rate = this.ng / this.frames;
      if (this.shadowNgRate !== null && 100 * Math.abs(rate - this.shadowNgRate) > p.maxNgRateJumpPt) {
        return { ok: false, code: 'WATCH_NG_RATE', message: `NG rate ${pct(rate)} over ${this.frames} frames after promotion against ${pct(this.shadowNgRate)} in the shadow: more than watch.maxNgRateJumpPt ${p.maxNgRateJumpPt} points` };
      }
      const p99 = this.infer.quantile(0.99)!;
      if (p.maxInferP99Ms !== undefined && p99 > p.maxInferP99Ms) {
        return { ok: false, code: 'WATCH_LATENCY', message: `inference p99 ${p99.toFixed(2)} ms over ${this.frames} frames after promotion, above watch.maxInferP99Ms ${p.maxInferP99Ms}` };
      }
    }
    return now >= this.endsAt ? { ok: true } : null;
  }
}
