// OK/NG thresholds: the manifest's rule (okLabels + minConfidence) with run-time overrides of
// minConfidence from the MQTT `set-threshold` command (per camera, or the default). Overrides
// outlive a model reload and end with the process.

import type { Manifest } from '../artifact/manifest.ts';
import type { Thresholds } from '../schema/payloads.ts';

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

/** NG when the label is not an OK label, or the score is below the minimum confidence. */
export function decide(label: string, score: number, manifest: Manifest, minConfidence: number): 'OK' | 'NG' {
  const ok = manifest.thresholds.okLabels;
  if (ok !== undefined && !ok.includes(label)) return 'NG';
  return score >= minConfidence ? 'OK' : 'NG';
}
