// The memory outbox: the Outbox contract (outbox.ts) held in this process only.

import { randomUUID } from 'node:crypto';
import { OutboxError } from './errors.ts';
import type { Outbox, OutboxEntry, OutboxLimits, OutboxRecord } from './outbox.ts';
import { checkLimits, OutboxIndex } from './outbox-index.ts';

/** A process-lifetime outbox: survives broker outages, not restarts. */
class MemoryOutbox implements Outbox {
  readonly epoch: string = randomUUID();
  private id = 0;
  private droppedCount = 0;
  private closed = false;
  private readonly index: OutboxIndex;

  constructor(limits: OutboxLimits = {}) {
    this.index = new OutboxIndex(checkLimits(limits));
  }

  get nextId() {
    return this.id;
  }
  get size() {
    return this.index.size;
  }
  get bytes() {
    return this.index.bytes;
  }
  get dropped() {
    return this.droppedCount;
  }

  async put(record: OutboxRecord): Promise<OutboxEntry> {
    if (this.closed) throw new OutboxError('OUTBOX_CLOSED', 'outbox put after close()');
    this.index.assertFits(record);
    const entry: OutboxEntry = { id: this.id++, topic: record.topic, payload: record.payload };
    this.droppedCount += this.index.add(entry).length;
    return entry;
  }

  peek(limit: number, afterId?: number) {
    return this.index.peek(limit, afterId);
  }
  entries() {
    return this.index.entries();
  }
  has(id: number) {
    return this.index.has(id);
  }

  async ack(id: number): Promise<boolean> {
    if (this.closed) throw new OutboxError('OUTBOX_CLOSED', `outbox ack(${id}) after close()`);
    return this.index.delete(id);
  }

  async close() {
    this.closed = true;
  }
}

export function createMemoryOutbox(limits: OutboxLimits = {}): Outbox {
  return new MemoryOutbox(limits);
}
