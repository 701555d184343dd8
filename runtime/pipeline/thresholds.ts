// OK/NG thresholds: the manifest's rule (okLabels + minConfidence) with run-time overrides of
// minConfidence from the MQTT `set-threshold` command (per camera, or the default). Overrides
// outlive a model reload and end with the process.

import type { Manifest } from '../artifact/manifest.ts';
import type { Thresholds } from '../schema/payloads.ts';
import { okScoreOf } from './inspection.ts';

export class ThresholdState {
  private defaultOverride: number | null = null;
  private readonly cameras = new Map<string, number>();

  /** The minimum confidence in force for a camera. */
  minConfidence(camera: string, manifest: Manifest): number {
    return this.cameras.get(camera) ?? this.defaultOverride ?? manifest.thresholds.minConfidence;
  }

  set(threshold: number, camera?: string): void {
    if (camera === undefined) this.defaultOverride = threshold;
    else this.cameras.set(camera, threshold);
  }

  /** The retained-state view: the default in force and every per-camera override. */
  toPayload(manifest: Manifest | null): Thresholds {
    return {
      default: this.defaultOverride ?? manifest?.thresholds.minConfidence ?? 0.5,
      cameras: Object.fromEntries(this.cameras),
    };
  }
}

/** What the rule reads of a prediction: the top label, its probability, and every class's probability (label order). */
export interface Scored {
  label: string;
  score: number;
  probs: ArrayLike<number>;
}

export interface Decided {
  decision: 'OK' | 'NG';
  /** Σ p over okLabels (the probability that the part is good); absent when the manifest declares no okLabels. */
  okScore?: number;
}

/**
 * The manifest's rule. With okLabels (an inspection model, runtime/pipeline/inspection.ts): OK when
 * the top label is an OK label and okScore ≥ minConfidence, so it is pass/fail on the probability
 * that the part is good. Without okLabels (a sorting model): OK when the top score ≥ minConfidence.
 */
export function decide(p: Scored, manifest: Manifest, minConfidence: number): Decided {
  const ok = manifest.thresholds.okLabels;
  if (ok === undefined) return { decision: p.score >= minConfidence ? 'OK' : 'NG' };
  const okScore = okScoreOf(p.probs, ok.map((l) => manifest.labels.indexOf(l)));
  return { decision: ok.includes(p.label) && okScore >= minConfidence ? 'OK' : 'NG', okScore };
}
