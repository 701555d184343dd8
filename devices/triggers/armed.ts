// Triggers fired from outside (a PLC's TRIG, an MQTT command): fire(id) arms the trigger and the
// next frame captured at or after the fire time (plus an optional settle time for a part to come
// to rest) carries that id. Several fires before a frame are served first-in first-out, one frame
// each. A fire that gets no frame within `expireMs` is dropped and reported as `expired`.

import { EventEmitter } from 'node:events';
import { TriggerError } from '../errors.ts';
import type { OfferedFrame, Trigger, TriggerHit, TriggerKind } from './trigger.ts';

const ID = /^[A-Za-z0-9_.-]{1,64}$/;

export interface ArmedOptions {
  /** Frames captured less than this long after the fire do not count. Default 0. */
  settleMs?: number;
  /** Drop a fire that got no frame within this long. Default: never. */
  expireMs?: number;
  /** Most fires waiting at once. Default 64. */
  maxWaiting?: number;
}

interface Armed {
  id: string;
  firedAt: number;
  timer?: NodeJS.Timeout;
}

export interface ArmedEvents {
  hit: [hit: TriggerHit, frame: OfferedFrame];
  expired: [e: { id: string; firedAt: number }];
}

export class ArmedTrigger extends EventEmitter<ArmedEvents> implements Trigger {
  private readonly queue: Armed[] = [];
  private readonly settleMs: number;
  private readonly expireMs: number | undefined;
  private readonly maxWaiting: number;

  constructor(
    readonly kind: TriggerKind,
    opts: ArmedOptions = {},
  ) {
    super();
    this.settleMs = opts.settleMs ?? 0;
    this.expireMs = opts.expireMs;
    this.maxWaiting = opts.maxWaiting ?? 64;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Arms the trigger with `id`; throws TriggerError for a bad or duplicate id or a full queue. */
  fire(id: string, at: number = Date.now()): void {
    if (!ID.test(id)) throw new TriggerError('E_TRIGGER_BAD_ID', `trigger id ${JSON.stringify(id)} must be 1-64 letters, digits, _ . -`);
    if (this.queue.some((a) => a.id === id)) throw new TriggerError('E_TRIGGER_DUPLICATE_ID', `trigger id ${id} is already waiting for a frame`);
    if (this.queue.length >= this.maxWaiting) throw new TriggerError('E_TRIGGER_QUEUE_FULL', `${this.queue.length} triggers already wait for a frame (maxWaiting); is the camera running?`);
    const armed: Armed = { id, firedAt: at };
    if (this.expireMs !== undefined) {
      armed.timer = setTimeout(() => {
        if (this.remove(id)) this.emit('expired', { id, firedAt: at });
      }, this.expireMs);
    }
    this.queue.push(armed);
  }

  /** Disarms `id` (its answer was given some other way). Returns whether it was waiting. */
  cancel(id: string): boolean {
    return this.remove(id);
  }

  offer(frame: OfferedFrame): TriggerHit | null {
    const head = this.queue[0];
    if (head === undefined || frame.captureTs < head.firedAt + this.settleMs) return null;
    this.queue.shift();
    clearTimeout(head.timer);
    const hit: TriggerHit = { triggerId: head.id, kind: this.kind, firedAt: head.firedAt };
    this.emit('hit', hit, frame);
    return hit;
  }

  close(): void {
    for (const a of this.queue) clearTimeout(a.timer);
    this.queue.length = 0;
    this.removeAllListeners();
  }

  private remove(id: string): boolean {
    const i = this.queue.findIndex((a) => a.id === id);
    if (i < 0) return false;
    clearTimeout(this.queue[i]!.timer);
    this.queue.splice(i, 1);
    return true;
  }
}

/** The MQTT command trigger: the MQTT layer calls fire(id) for each `trigger` command. */
export class CommandTrigger extends ArmedTrigger {
  constructor(opts: ArmedOptions = {}) {
    super('mqtt', opts);
  }
}
