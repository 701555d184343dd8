// Every frame counts, optionally thinned to an fps limit. Ids are '<prefix><n>', n counting hits.

import { TriggerError } from '../errors.ts';
import type { OfferedFrame, Trigger, TriggerHit } from './trigger.ts';

export class FreeRunTrigger implements Trigger {
  readonly kind = 'free-run';
  readonly waiting = 0;
  private readonly intervalMs: number;
  private readonly prefix: string;
  private nextDue = -Infinity;
  private hits = 0;

  constructor(opts: { fps?: number; idPrefix?: string } = {}) {
    if (opts.fps !== undefined && !(opts.fps > 0)) throw new TriggerError('E_TRIGGER_CONFIG', `trigger.fps must be > 0, got ${opts.fps}`, { field: 'trigger.fps' });
    this.intervalMs = opts.fps === undefined ? 0 : 1000 / opts.fps;
    this.prefix = opts.idPrefix ?? 'f';
  }

  offer(frame: OfferedFrame): TriggerHit | null {
    const ts = frame.captureTs;
    if (this.intervalMs > 0) {
      // Half a millisecond of slack so a camera running exactly at the limit is not thinned by jitter.
      if (ts < this.nextDue - 0.5) return null;
      // Advance the schedule by one interval rather than from this frame, so a 30 fps camera limited
      // to 20 fps yields 20, not 15; after a gap (camera restart) restart the schedule, no burst.
      this.nextDue += this.intervalMs;
      if (this.nextDue <= ts) this.nextDue = ts + this.intervalMs;
    }
    return { triggerId: `${this.prefix}${++this.hits}`, kind: 'free-run', firedAt: ts };
  }

  close(): void {}
}
