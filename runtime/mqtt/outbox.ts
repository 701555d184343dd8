// The outbox: where every result waits between "produced" and "PUBACK received".
// Like MQTT.js's IStore (docs/style.md "Durable messaging") it is a small interface with two
// implementations, memory and file (outbox-file.ts), that pass one contract suite
// (test/mqtt-outbox.test.ts).
//
// Ids are the result sequence numbers: monotonic, never reused within an epoch, and (for the file
// outbox) persisted across restarts even when every entry has been acked. An entry dropped by the
// bound therefore shows up at the subscriber as a gap, which is the truth.

import { randomUUID } from 'node:crypto';
import { OutboxError } from './errors.ts';
import { checkLimits, OutboxIndex } from './outbox-index.ts';
import { z } from 'zod';
import { parseOptions } from './connection.ts';
import type { Log } from '../log.ts';
import { openFileOutbox, type FileOutbox, type FileOutboxOptions } from './outbox-file.ts';

export interface OutboxRecord {
  topic: string;
  payload: Buffer;
}
export interface OutboxEntry extends OutboxRecord {
  readonly id: number;
}

/** Bounds; when a put would exceed one, the oldest entries are dropped and counted. */
export interface OutboxLimits {
  maxEntries?: number;
  maxBytes?: number; // topic + payload bytes of the entries held
}

export interface Outbox {
  /** Names this id sequence; a new epoch means ids started again from 0. */
  readonly epoch: string;
  /** The id the next put() gets; put() takes it synchronously, before any await. */
  readonly nextId: number;
  /** Entries held (durable for the file outbox). */
  readonly size: number;
  readonly bytes: number;
  /** Entries dropped by the bound since the epoch began. */
  readonly dropped: number;
  /**
   * Stores a record; resolves once it is durable ("accepted"; for the file outbox: its group's
   * durable write returned). The bound drops older entries, never this one.
   */
  put(record: OutboxRecord): Promise<OutboxEntry>;
  /** Up to `limit` entries with id > afterId, oldest first. Only durable entries are returned. */
  peek(limit: number, afterId?: number): OutboxEntry[];
  /** Every entry held, oldest first. */
  entries(): IterableIterator<OutboxEntry>;
  has(id: number): boolean;
  /**
   * Deletes an entry (after PUBACK). Resolves false when it was not held (acked twice, or dropped).
   * The file outbox writes the ack record lazily (with the next group): an ack is not a durability point.
   */
  ack(id: number): Promise<boolean>;
  close(): Promise<void>;
}

/** A process-lifetime outbox: survives broker outages, not restarts. */
export class MemoryOutbox implements Outbox {
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

/**
 * The outbox as device configuration. The defaults hold about an hour of 30 fps results from one
 * camera (~1 KB each) within 64 MiB; beyond that the oldest are dropped and counted.
 */
export const OutboxConfig = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('file'),
    dir: z.string().min(1),
    maxEntries: z.number().int().min(1).default(100_000),
    maxBytes: z.number().int().min(1).default(64 * 1024 * 1024),
    /** Group commit (docs/mqtt.md): a group holding a put is written once that put has waited this long (ms)... */
    commitDelayMs: z.number().int().min(0).max(1000).default(5),
    /** ...or as soon as this many records wait. */
    commitMaxRecords: z.number().int().min(1).default(256),
    /** Acks and drops with no put to ride along with are written after this long (ms). */
    lazyFlushMs: z.number().int().min(0).max(60_000).default(1000),
  }),
  // Survives broker outages, not restarts: for tests and benches.
  z.strictObject({
    kind: z.literal('memory'),
    maxEntries: z.number().int().min(1).default(100_000),
    maxBytes: z.number().int().min(1).default(64 * 1024 * 1024),
  }),
]);
export type OutboxConfig = z.input<typeof OutboxConfig>;

export async function openOutbox(config: OutboxConfig, log?: Pick<Log, 'warn' | 'info'>): Promise<Outbox> {
  const c = parseOptions(OutboxConfig, config, 'outbox');
  if (c.kind === 'memory') return createMemoryOutbox(c);
  return openFileOutbox({ ...c, ...(log && { log }) });
}

export { openFileOutbox, type FileOutbox, type FileOutboxOptions };
