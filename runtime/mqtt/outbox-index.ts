// The in-memory index shared by both outbox implementations, and the bound check.

import { OutboxError } from './errors.ts';
import type { OutboxEntry, OutboxLimits, OutboxRecord } from './outbox.ts';

export function checkLimits(limits: OutboxLimits): Required<OutboxLimits> {
  const maxEntries = limits.maxEntries ?? Number.POSITIVE_INFINITY;
  const maxBytes = limits.maxBytes ?? Number.POSITIVE_INFINITY;
  for (const [field, v] of [['maxEntries', maxEntries], ['maxBytes', maxBytes]] as const) {
    if (!(v >= 1) || (Number.isFinite(v) && !Number.isInteger(v))) {
      throw new OutboxError('OUTBOX_BAD_OPTIONS', `outbox ${field} must be a positive integer, got ${v}`);
    }
  }
  return { maxEntries, maxBytes };
}

const entryBytes = (r: OutboxRecord) => Buffer.byteLength(r.topic) + r.payload.length;

/**
 * The in-memory index both implementations keep: entries by id in id order, byte accounting and
 * the drop-oldest bound. `order` is an append-only id list (ids arrive in increasing order), so
 * peek(afterId) is a binary search; acked ids are skipped and the list is compacted lazily.
 */
/** The first index ≥ from of ids (ascending) whose id is > afterId: where a peek after afterId starts. */
export function firstAfter(ids: readonly number[], from: number, afterId: number): number {
  let lo = from;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! <= afterId) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class OutboxIndex {
  private readonly byId = new Map<number, OutboxEntry>();
  private order: number[] = [];
  private head = 0; // order[0..head) are known deleted
  bytes = 0;

  constructor(private readonly limits: Required<OutboxLimits>) {}

  get size() {
    return this.byId.size;
  }
  has(id: number) {
    return this.byId.has(id);
  }
  get(id: number) {
    return this.byId.get(id);
  }

  /** Throws before anything changes when one entry can never fit. */
  assertFits(record: OutboxRecord) {
    const n = entryBytes(record);
    if (n > this.limits.maxBytes) {
      throw new OutboxError(
        'OUTBOX_ENTRY_TOO_LARGE',
        `outbox entry for ${record.topic} is ${n} bytes, more than maxBytes ${this.limits.maxBytes}; raise maxBytes`,
      );
    }
  }

  /** Adds an entry and returns the ids dropped (oldest first) to respect the bounds. */
  add(entry: OutboxEntry): number[] {
    const last = this.order[this.order.length - 1];
    if (last !== undefined && entry.id <= last) throw new Error(`outbox index: id ${entry.id} after ${last}`);
    this.byId.set(entry.id, entry);
    this.order.push(entry.id);
    this.bytes += entryBytes(entry);
    const dropped: number[] = [];
    while (this.byId.size > this.limits.maxEntries || this.bytes > this.limits.maxBytes) {
      const oldest = this.oldestId();
      if (oldest === undefined || oldest === entry.id) break; // assertFits guarantees the new one fits alone
      this.delete(oldest);
      dropped.push(oldest);
    }
    return dropped;
  }

  delete(id: number): boolean {
    const e = this.byId.get(id);
    if (!e) return false;
    this.byId.delete(id);
    this.bytes -= entryBytes(e);
    if (this.byId.size === 0) {
      this.order = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head > this.order.length / 2) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    return true;
  }

  private oldestId(): number | undefined {
    while (this.head < this.order.length && !this.byId.has(this.order[this.head]!)) this.head++;
    return this.order[this.head];
  }

  peek(limit: number, afterId = -1): OutboxEntry[] {
    const lo = firstAfter(this.order, this.head, afterId);
    const out: OutboxEntry[] = [];
    for (let i = lo; i < this.order.length && out.length < limit; i++) {
      const e = this.byId.get(this.order[i]!);
      if (e) out.push(e);
    }
    return out;
  }

  entries() {
    return this.byId.values();
  }
}

