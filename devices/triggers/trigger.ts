// Triggers decide which captured frames count, and hand out the trigger id that travels with the
// result (MQTT payload, PLC RESULT line). The pipeline calls offer() for every captured frame, in
// capture order, before any newest-frame-wins dropping: a frame a trigger picked must not be the
// one that gets dropped.

import type { Frame } from '../cameras/frame.ts';

export type TriggerKind = 'free-run' | 'serial' | 'mqtt';

export interface TriggerHit {
  triggerId: string;
  kind: TriggerKind;
  /** When the trigger fired (free-run: the frame's capture time). */
  firedAt: number;
}

export type OfferedFrame = Pick<Frame, 'camera' | 'frameId' | 'captureTs'>;

export interface Trigger {
  readonly kind: TriggerKind;
  /** Triggers fired and still waiting for a frame. */
  readonly waiting: number;
  /** Returns the hit when this frame counts, else null. */
  offer(frame: OfferedFrame): TriggerHit | null;
  /** Releases listeners and timers. */
  close(): void;
}
