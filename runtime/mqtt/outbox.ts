// The outbox: where every result waits between "produced" and "PUBACK received".
// Like MQTT.js's IStore (docs/style.md "Durable messaging") it is a small interface with two
// implementations, memory (outbox-memory.ts) and file (outbox-file.ts), that pass one contract
// suite (test/mqtt-outbox.test.ts).
//
// Ids are the result sequence numbers: monotonic, never reused within an epoch, and (for the file
// outbox) persisted across restarts even when every entry has been acked. An entry dropped by the
// bound therefore shows up at the subscriber as a gap, which is the truth.

// This file holds the interface only; outbox-config.ts opens the one a device config names.

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
