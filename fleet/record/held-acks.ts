// PUBACK only after the message is stored: what makes a recorder killed mid-stream lose nothing.
// The broker keeps every unacknowledged QoS 1 message in the session and sends it again on
// reconnect; the database key makes the second copy a no-op.
//
// mqtt.js acknowledges a QoS 1 message as soon as its `handleMessage` hook returns, and reads the
// next packet only after that, so deferring there would store one message per batch. Instead the
// PUBACK packet itself is held: the client's packet writer is wrapped so that a PUBACK for a
// message not yet stored is queued and its write callback called at once (mqtt.js goes on
// parsing), and queued PUBACKs are written when their messages are stored, in arrival order, as
// MQTT requires (MQTT 3.1.1 §4.6, MQTT 5 §4.6). How many unacknowledged messages the broker sends
// ahead is its in-flight window: on MQTT 5 the client's Receive Maximum (set by the recorder),
// on 3.1.1 the broker's own setting (mosquitto: max_inflight_messages, default 20).
//
// PUBACKs held for a connection that has closed are dropped, never written on the next one: the
// broker redelivers those messages there, possibly under packet ids it reuses for others.
//
// `_sendPacket` is private to mqtt.js (5.x); wrapAcks checks it exists and fails with a clear
// error otherwise. test/record-kill.test.ts proves the whole contract end to end.

import type { IPublishPacket, MqttClient, Packet } from 'mqtt';
import { RecorderError } from './errors.ts';

type SendPacket = (packet: Packet, cb?: (err?: Error) => void, ...rest: unknown[]) => void;

interface Held {
  messageId: number;
  stored: boolean;
  /** The PUBACK mqtt.js asked to write, once it has. */
  puback: { packet: Packet; rest: unknown[] } | null;
}

/** One stored-or-not flag per received message. */
export interface AckToken {
  /** The message is stored (or deliberately not kept): its PUBACK may go. Idempotent. */
  done(): void;
}

const NOOP_TOKEN: AckToken = { done() {} };

export class HeldAcks {
  private queue: Held[] = [];
  private byId = new Map<number, Held>();
  private readonly send: SendPacket;
  /** PUBACKs written (for tests and stats). */
  released = 0;

  constructor(client: MqttClient) {
    const c = client as unknown as { _sendPacket?: SendPacket };
    if (typeof c._sendPacket !== 'function') {
      throw new RecorderError('MQTT_CLIENT_UNSUPPORTED', 'this mqtt.js has no _sendPacket; the recorder needs mqtt 5.x (see fleet/record/held-acks.ts)');
    }
    this.send = c._sendPacket.bind(client);
    c._sendPacket = (packet, cb, ...rest) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined) {
        const h = this.byId.get(packet.messageId);
        if (h && !h.puback) {
          h.puback = { packet, rest };
          cb?.(); // let mqtt.js parse the next packet now
          this.release();
          return;
        }
      }
      this.send(packet, cb, ...rest);
    };
    // A new connection: the old one's unacknowledged messages will be redelivered.
    client.on('close', () => this.reset());
  }

  /** Call from the 'message' event. QoS 0 needs no acknowledgement. */
  track(packet: IPublishPacket): AckToken {
    if (packet.qos === 0 || packet.messageId === undefined) return NOOP_TOKEN;
    const h: Held = { messageId: packet.messageId, stored: false, puback: null };
    this.queue.push(h);
    this.byId.set(h.messageId, h);
    return {
      done: () => {
        if (h.stored) return;
        h.stored = true;
        this.release();
      },
    };
  }

  /** Messages received and not yet acknowledged. */
  get pending(): number {
    return this.queue.length;
  }

  private release(): void {
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.stored && this.queue[n]!.puback) {
      const h = this.queue[n]!;
      this.byId.delete(h.messageId);
      this.send(h.puback!.packet, undefined, ...h.puback!.rest);
      this.released++;
      n++;
    }
    if (n > 0) this.queue = this.queue.slice(n);
  }

  private reset(): void {
    this.queue = [];
    this.byId.clear();
  }
}
