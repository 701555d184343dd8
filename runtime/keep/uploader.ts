// Moves the spool to the recorder over the device's own MQTT session, with the outbox's guarantee:
// the spool's ResultSender (the same one results use: stored → QoS 1 → deleted on PUBACK, in id
// order, at most maxInflight at a time, only while connected). A spooled message therefore
// survives a broker outage and a restart; it may be delivered more than once (a PUBACK lost to a
// crash), which the recorder absorbs by the message's idempotency key (docs/data-loop.md).

import type { Log } from '../log.ts';
import type { Outbox } from '../mqtt/outbox.ts';
import type { Reporter } from '../mqtt/reporter.ts';
import { ResultSender } from '../mqtt/result-sender.ts';

export class SpoolUploader {
  private readonly sender: ResultSender;

  constructor(
    spool: Outbox,
    reporter: Pick<Reporter, 'publishQos1' | 'on' | 'connected'>,
    maxInflight: number,
    log: Log,
  ) {
    this.sender = new ResultSender(spool, (topic, payload, cb) => reporter.publishQos1(topic, payload, cb), maxInflight, log, () => {});
    reporter.on('connect', () => this.sender.setConnected(true));
    reporter.on('disconnect', () => this.sender.setConnected(false));
    if (reporter.connected) this.sender.setConnected(true);
  }

  /** Sends what waits (called after each put). */
  pump(): void {
    this.sender.pump();
  }

  /** PUBACKs received since start. */
  get uploaded(): number {
    return this.sender.acked;
  }

  /** Resolves once the spool is empty and nothing is in flight. */
  drained(): Promise<void> {
    return this.sender.drained();
  }

  /** Stops sending (the connection is going) and waits for deletions started by PUBACKs. */
  async close(): Promise<void> {
    this.sender.setConnected(false);
    await this.sender.settle();
  }
}
