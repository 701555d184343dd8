// Moves results from the outbox to the broker: stored -> sent with QoS 1 -> deleted on PUBACK.
//
// Entries go out in id (= seq) order, at most maxInflight at a time, and only while connected, so
// mqtt.js's in-memory store never holds more than maxInflight results. An entry handed to mqtt.js
// is not handed again in this process: on a reconnect mqtt.js resends its unacknowledged packets
// itself, before anything new (client.ts _onConnect), which keeps seq order. After a restart the
// outbox still holds whatever was not acked, and it is all sent again from the oldest.

import type { Log } from '../log.ts';
import type { Outbox } from './outbox.ts';

/** Publish with QoS 1; `cb` gets the PUBACK (or an error). */
export type PublishQos1 = (topic: string, payload: Buffer, cb: (err?: Error) => void) => void;

export class ResultSender {
  published = 0;
  acked = 0;
  rejected = 0;
  private connected = false;
  private handedUpTo = -1; // highest id handed to mqtt.js in this process
  private readonly inflight = new Set<number>();
  private readonly acks = new Set<Promise<unknown>>();
  private waiters: (() => void)[] = [];

  constructor(
    private readonly outbox: Outbox,
    private readonly publish: PublishQos1,
    private readonly maxInflight: number,
    private readonly log: Log,
    private readonly onAcked: (id: number) => void,
  ) {}

  get inflightCount() {
    return this.inflight.size;
  }

  setConnected(connected: boolean) {
    this.connected = connected;
    if (connected) this.pump();
  }

  /** Hands the next entries to mqtt.js while connected and under the in-flight limit. */
  pump() {
    while (this.connected && this.inflight.size < this.maxInflight) {
      const next = this.outbox.peek(this.maxInflight - this.inflight.size, this.handedUpTo);
      if (next.length === 0) break;
      for (const e of next) {
        this.handedUpTo = e.id;
        if (this.inflight.has(e.id)) continue;
        this.inflight.add(e.id);
        this.published++;
        this.publish(e.topic, e.payload, (err) => this.settled(e.id, err));
      }
    }
    this.checkDrained();
  }

  private settled(id: number, err?: Error) {
    this.inflight.delete(id);
    const reason = (err as { code?: unknown } | undefined)?.code;
    if (err && typeof reason === 'number') {
      // The broker answered with an MQTT v5 failure reason (not authorized, quota, payload format...).
      // Resending the same bytes would fail the same way, so the entry leaves the outbox; it shows
      // up at subscribers as a gap and here in `rejected` and the log.
      this.rejected++;
      this.log.error({ seq: id, reasonCode: reason, err: err.message }, 'mqtt: broker refused a result');
      this.track(this.outbox.ack(id));
    } else if (err) {
      // The connection ended before the PUBACK (a forced close): send it again later.
      this.handedUpTo = Math.min(this.handedUpTo, id - 1);
      this.log.debug({ seq: id, err: err.message }, 'mqtt: result not acknowledged; will resend');
    } else {
      this.acked++;
      this.track(
        this.outbox.ack(id).then((held) => {
          if (held) this.onAcked(id);
        }),
      );
    }
    this.pump();
  }

  private track(p: Promise<unknown>) {
    const q = p.catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'mqtt: outbox ack failed'));
    this.acks.add(q);
    void q.finally(() => {
      this.acks.delete(q);
      this.checkDrained();
    });
  }

  /** Resolves once the outbox is empty and nothing is in flight. */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.checkDrained();
    });
  }

  private checkDrained() {
    if (this.waiters.length === 0) return;
    if (this.outbox.size === 0 && this.inflight.size === 0 && this.acks.size === 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const r of w) r();
    }
  }

  /** Waits for outbox writes started by PUBACKs, so the caller may close the outbox afterwards. */
  async settle() {
    while (this.acks.size > 0) await Promise.all([...this.acks]);
  }
}
