// Where a camera's frames wait for inference. Free-run frames are droppable: when inference is
// slower than the camera, a newer frame replaces the waiting one (newest wins) and the replaced
// one is counted as dropped. Frames picked by an armed trigger (serial PLC, MQTT command) are never
// dropped: each one has a PLC or a requester waiting for its answer, so they queue in order.

import type { Frame } from '../../devices/cameras/frame.ts';
import type { TriggerHit } from '../../devices/triggers/trigger.ts';

export interface Pending {
  frame: Frame;
  hit: TriggerHit;
}

export class FrameSlot {
  private latest: Pending | null = null;
  private readonly kept: Pending[] = [];
  dropped = 0;

  /** Returns the frame it replaced (now dropped), if any. */
  put(p: Pending): Pending | null {
    if (p.hit.kind !== 'free-run') {
      this.kept.push(p);
      return null;
    }
    const old = this.latest;
    this.latest = p;
    if (old !== null) this.dropped++;
    return old;
  }

  /** Triggered frames first (someone waits for them), then the newest free-run frame. */
  take(): Pending | null {
    const k = this.kept.shift();
    if (k !== undefined) return k;
    const l = this.latest;
    this.latest = null;
    return l;
  }

  get size(): number {
    return this.kept.length + (this.latest === null ? 0 : 1);
  }
}
