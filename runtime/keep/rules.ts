// Which frames to keep, as pure functions: the rules of one camera applied to one result, and the
// rolling-window limits that bound how many of those picks are kept. Tested in
// test/keep-rules.test.ts without a device.

import type { KeepReason } from '../schema/keep.ts';
import type { KeepLimits, KeepRules } from './config.ts';

/** What a rule reads of a result. */
export interface Decided {
  decision: 'OK' | 'NG';
  /** Top-1 probability. */
  score: number;
  /** Inspection models: Σ p over okLabels; the score the decision compared with the threshold. */
  okScore?: number;
}

/**
 * The automatic reasons to keep a frame (shadow and label come later, from their own events).
 * `threshold` is the camera's minConfidence in force; `draw` a uniform draw in [0, 1).
 */
export function keepReasons(r: Decided, threshold: number, rules: KeepRules, draw: () => number): KeepReason[] {
  const out: KeepReason[] = [];
  if (rules.ng && r.decision === 'NG') out.push('ng');
  if (rules.uncertain && Math.abs((r.okScore ?? r.score) - threshold) <= rules.uncertain.margin) out.push('uncertain');
  if (rules.random && rules.random.rate > 0 && draw() < rules.random.rate) out.push('random');
  return out;
}

export type LimitName = 'minIntervalMs' | 'perMinute' | 'perHour' | 'perDay';

const WINDOWS: readonly [LimitName, number][] = [
  ['perMinute', 60_000],
  ['perHour', 3_600_000],
  ['perDay', 86_400_000],
];

/**
 * Rolling windows over one camera's kept frames: a keep is allowed when the minimum interval has
 * passed and each window (the last minute, hour, day) holds fewer keeps than its limit. Times are
 * a monotonic clock in ms. Holds at most perDay timestamps.
 */
export class KeepLimiter {
  private times: number[] = [];
  private head = 0;

  constructor(private readonly limits: KeepLimits) {}

  /** The limit that refuses a keep at `now`, or null (and the keep is counted). */
  take(now: number): LimitName | null {
    const why = this.refusal(now);
    if (why === null) this.times.push(now);
    return why;
  }

  refusal(now: number): LimitName | null {
    while (this.head < this.times.length && this.times[this.head]! <= now - 86_400_000) this.head++;
    if (this.head > 1024 && this.head > this.times.length / 2) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
    const last = this.times.at(-1);
    if (last !== undefined && this.times.length > this.head && now - last < this.limits.minIntervalMs) return 'minIntervalMs';
    for (const [name, span] of WINDOWS) {
      const max = this.limits[name];
      if (max === null) continue;
      if (this.countSince(now - span) >= max) return name;
    }
    return null;
  }

  /** Keeps with time > since. */
  private countSince(since: number): number {
    let lo = this.head;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.times[mid]! <= since) lo = mid + 1;
      else hi = mid;
    }
    return this.times.length - lo;
  }
}
