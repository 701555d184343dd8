// Moves results from the outbox to the broker: stored -> sent with QoS 1 -> deleted on PUBACK.
//
// Entries go out in id (= seq) order, at most maxInflight at a time, and only while connected, so
// mqtt.js's in-memory store never holds more than maxInflight results. An entry handed to mqtt.js
// is not handed again in this process: on a reconnect mqtt.js resends its unacknowledged packets
// itself, before anything new (client.ts _onConnect), which keeps seq order. After a restart the
// outbox still holds whatever was not acked, and it is all sent again from the oldest.
//
// A result the broker refuses leaves the outbox and is counted in `rejected` (sending the same
// bytes again fails the same way and holds up everything behind it): an MQTT v5 failure reason on
// its PUBACK, a result bigger than the broker's advertised maximum packet size (never sent), or
// one the reporter found refused in another way (refuse(), see reporter.ts).

import type { Log } from '../log.ts';
import type { Outbox } from './outbox.ts';

/** Publish with QoS 1; `cb` gets the PUBACK (or an error). `seq` names the result for the caller. */
export type PublishQos1 = (topic: string, payload: Buffer, cb: (err?: Error) => void, seq: number) => void;

/** Why a result left the outbox without a PUBACK: the broker's reason code, or a local code. */
export type RefusalReason = number | 'PACKET_TOO_LARGE' | 'INVALID_PUBACK';

/** Bytes of a QoS 1 PUBLISH packet (MQTT 3.1.1 / 5 with no properties): what a broker's size limit counts. */
export function publishPacketBytes(topic: string, payloadBytes: number, protocolVersion: number): number {
  const rest = 2 + Buffer.byteLength(topic) + 2 + (protocolVersion === 5 ? 1 : 0) + payloadBytes;
  return 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : rest < 2_097_152 ? 3 : 4) + rest;
}

export class ResultSender {
  published = 0;
  acked = 0;
  rejected = 0;
  private connected = false;
  private handedUpTo = -1; // highest id handed to mqtt.js in this process
  private readonly inflight = new Map<number, string>(); // id -> topic
  private readonly acks = new Set<Promise<unknown>>();
  private waiters: (() => void)[] = [];
  /** The broker's maximum packet size (MQTT v5 CONNACK); larger results are refused here. */
  maxPacketBytes = Infinity;

  constructor(
    private readonly outbox: Outbox,
    private readonly publish: PublishQos1,
    private readonly maxInflight: number,
    private readonly log: Log,
    private readonly onAcked: (id: number) => void,
    /** Told of every refusal (the sender only counts them): the reporter logs and publishes it. */
    private readonly onRefused: (id: number, reason: RefusalReason, message: string, topic: string) => void = () => {},
    private readonly protocolVersion = 5,
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
        const bytes = publishPacketBytes(e.topic, e.payload.length, this.protocolVersion);
        if (bytes > this.maxPacketBytes) {
          this.refused(e.id, 'PACKET_TOO_LARGE', `result is a ${bytes}-byte packet; the broker's maximum packet size is ${this.maxPacketBytes}`, e.topic);
          continue;
        }
        this.inflight.set(e.id, e.topic);
        this.published++;
        this.publish(e.topic, e.payload, (err) => this.settled(e.id, err), e.id);
      }
    }
    this.checkDrained();
  }

  /** The oldest result handed to the connection and not yet settled. */
  oldestInflight(): number | undefined {
    let min: number | undefined;
    for (const id of this.inflight.keys()) if (min === undefined || id < min) min = id;
    return min;
  }

  /**
   * The broker refused result `id` in a way mqtt.js does not report as its PUBACK (reporter.ts):
   * it leaves the outbox and is counted. Its PUBACK callback, if it ever comes, is ignored.
   */
  refuse(id: number, reason: RefusalReason, message: string) {
    const topic = this.inflight.get(id);
    if (topic === undefined) return;
    this.inflight.delete(id);
    this.refused(id, reason, message, topic);
    this.pump();
  }

  private refused(id: number, reason: RefusalReason, message: string, topic: string) {
    // Resending the same bytes would fail the same way, so the entry leaves the outbox; it shows up
    // at subscribers as a gap and here in `rejected`, the log and an event.
    this.rejected++;
    this.onRefused(id, reason, message, topic);
    this.track(this.outbox.ack(id));
  }

  private settled(id: number, err?: Error) {
    const topic = this.inflight.get(id);
    if (topic === undefined) return; // refused already (refuse())
    this.inflight.delete(id);
    const reason = (err as { code?: unknown } | undefined)?.code;
    if (err && typeof reason === 'number') {
      // The broker answered with an MQTT v5 failure reason (not authorized, quota, payload format...).
      this.refused(id, reason, err.message, topic);
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
