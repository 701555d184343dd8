// The spool: the on-device store of kept frames and labels until the recorder has them. It is an
// Outbox (runtime/mqtt/outbox.ts: the same contract suite as the memory and file outboxes), so the
// reporter's ResultSender moves it to the broker exactly as it moves results: stored → sent with
// QoS 1 → deleted on PUBACK. It differs from the file outbox where images make the difference:
// one file per entry, so a payload stays on disk (the process holds only ids, topics and sizes)
// and deleting one costs an unlink, never a rewrite of the rest.
//
//   <dir>/spool.json          {"v":1,"epoch":"…","reserved":N,"dropped":D}, replaced atomically
//   <dir>/e/<id>.msg          u16 BE topic length | topic (UTF-8) | payload; written to .tmp-<id>,
//                             fsync'd, renamed, directory fsync'd: a put is accepted once all that returned
//   <dir>/outbox.lock         pid of the process holding the directory (runtime/mqtt/outbox-lock.ts)
//
// Ids are never reused within an epoch: the header reserves them in blocks (`reserved`, written
// durably before an id at or past it is used), so after a restart ids continue past the block
// (a jump, not a gap anyone reads: frames and labels carry their own keys, docs/data-loop.md).
// The bound (maxEntries, maxBytes) drops the oldest entries, counted in `dropped` (persisted).

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { defaultLog, type Log } from '../log.ts';
import { OutboxError } from '../mqtt/errors.ts';
import { firstAfter } from '../mqtt/outbox-index.ts';
import { acquireLock, releaseLock } from '../mqtt/outbox-lock.ts';
import type { Outbox, OutboxEntry, OutboxLimits, OutboxRecord } from '../mqtt/outbox.ts';

const HEADER = 'spool.json';
const ENTRIES = 'e';
const RESERVE = 1024;
const Header = z.object({ v: z.literal(1), epoch: z.string().min(1), reserved: z.number().int().nonnegative(), dropped: z.number().int().nonnegative() });

export interface SpoolOptions extends OutboxLimits {
  dir: string;
  log?: Pick<Log, 'warn' | 'info'>;
}

const fileName = (id: number) => `${String(id).padStart(16, '0')}.msg`;

function notWritable(dir: string, e: unknown): OutboxError {
  const code = (e as NodeJS.ErrnoException).code ?? 'unknown';
  return new OutboxError('OUTBOX_NOT_WRITABLE', `spool dir ${JSON.stringify(dir)} is not writable (${code}); point keep.dir at a writable directory on persistent storage`, { cause: e });
}

function limit(field: string, v: number | undefined): number {
  if (v === undefined) return Number.POSITIVE_INFINITY;
  if (!Number.isInteger(v) || v < 1) throw new OutboxError('OUTBOX_BAD_OPTIONS', `spool ${field} must be a positive integer, got ${v}`);
  return v;
}

async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Writes `data` to `file` so that it is either wholly there or not at all, and durable. */
async function writeDurably(dir: string, file: string, data: Uint8Array): Promise<void> {
  const tmp = join(dir, `.tmp-${file}`);
  let fh: FileHandle | null = null;
  try {
    fh = await open(tmp, 'w', 0o644);
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh?.close();
  }
  await rename(tmp, join(dir, file));
  await syncDir(dir);
}

interface Held {
  id: number;
  topic: string;
  /** Topic + payload bytes, as the bound counts them. */
  bytes: number;
}

export async function openSpool(options: SpoolOptions): Promise<Spool> {
  const maxEntries = limit('maxEntries', options.maxEntries);
  const maxBytes = limit('maxBytes', options.maxBytes);
  const { dir } = options;
  try {
    await mkdir(join(dir, ENTRIES), { recursive: true });
  } catch (e) {
    throw notWritable(dir, e);
  }
  await acquireLock(dir, notWritable);
  try {
    const s = new Spool(dir, maxEntries, maxBytes, options.log ?? defaultLog('edgeprompt.keep'));
    await s.load();
    return s;
  } catch (e) {
    await releaseLock(dir);
    if (e instanceof OutboxError) throw e;
    throw notWritable(dir, e);
  }
}

export class Spool implements Outbox {
  epoch: string = randomUUID();
  private id = 0;
  private reserved = 0;
  private droppedCount = 0;
  private readonly held = new Map<number, Held>();
  private order: number[] = [];
  private head = 0;
  private heldBytes = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private unlinks = new Set<Promise<void>>();
  private headerDirty = false;
  private headerTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly entriesDir: string;

  constructor(
    readonly dir: string,
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    private readonly log: Pick<Log, 'warn' | 'info'>,
  ) {
    this.entriesDir = join(dir, ENTRIES);
  }

  get nextId() {
    return this.id;
  }
  get size() {
    return this.held.size;
  }
  get bytes() {
    return this.heldBytes;
  }
  get dropped() {
    return this.droppedCount;
  }

  async load(): Promise<void> {
    try {
      const h = Header.safeParse(JSON.parse(await readFile(join(this.dir, HEADER), 'utf8')));
      if (h.success) {
        this.epoch = h.data.epoch;
        this.reserved = h.data.reserved;
        this.droppedCount = h.data.dropped;
      } else this.log.warn({ dir: this.dir }, 'spool: header unreadable; ids continue with a new epoch');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ dir: this.dir, err: (e as Error).message }, 'spool: header unreadable; ids continue with a new epoch');
    }
    const found: Held[] = [];
    for (const name of await readdir(this.entriesDir)) {
      if (name.startsWith('.tmp-')) {
        await rm(join(this.entriesDir, name), { force: true }); // a put that died before its rename: never accepted
        continue;
      }
      const m = /^(\d{16})\.msg$/.exec(name);
      if (!m) continue;
      const h = await this.readHead(Number(m[1]));
      if (h) found.push(h);
    }
    found.sort((a, b) => a.id - b.id);
    for (const h of found) this.index(h);
    this.id = Math.max(this.reserved, (found.at(-1)?.id ?? -1) + 1);
    const over = this.overBound(null);
    if (over.length > 0) this.log.warn({ dropped: over.length }, 'spool: over its bound after reopening; oldest dropped');
    await this.writeHeader();
  }

  /** The topic and size of an entry file; null (with a warning) for a file that is not one. */
  private async readHead(id: number): Promise<Held | null> {
    const file = join(this.entriesDir, fileName(id));
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const b = Buffer.alloc(Math.min(size, 2 + 65535));
      await fh.read(b, 0, b.length, 0);
      const n = size >= 2 ? b.readUInt16BE(0) : -1;
      if (n < 1 || 2 + n > size) {
        this.log.warn({ file, size }, 'spool: unreadable entry skipped (left in place)');
        return null;
      }
      const topic = b.subarray(2, 2 + n).toString('utf8');
      return { id, topic, bytes: size - 2 };
    } finally {
      await fh.close();
    }
  }

  put(record: OutboxRecord): Promise<OutboxEntry> {
    if (this.closed) return Promise.reject(new OutboxError('OUTBOX_CLOSED', 'spool put after close()'));
    const topic = Buffer.from(record.topic, 'utf8');
    const bytes = topic.length + record.payload.length;
    if (bytes > this.maxBytes) {
      return Promise.reject(new OutboxError('OUTBOX_ENTRY_TOO_LARGE', `spool entry for ${record.topic} is ${bytes} bytes, more than maxBytes ${this.maxBytes}; raise keep.maxBytes`));
    }
    if (topic.length < 1 || topic.length > 65535) return Promise.reject(new OutboxError('OUTBOX_BAD_OPTIONS', `spool entry topic must be 1-65535 bytes, got ${topic.length}`));
    const id = this.id++; // taken now, synchronously, like every outbox
    const head = Buffer.alloc(2);
    head.writeUInt16BE(topic.length, 0);
    const data = Buffer.concat([head, topic, record.payload]);
    // One put at a time, in id order: the index takes ids in increasing order, and a put needing a
    // new id block writes the header first.
    const p = this.chain.then(async () => {
      try {
        if (id >= this.reserved) {
          this.reserved = id + RESERVE;
          await this.writeHeader();
        }
        await writeDurably(this.entriesDir, fileName(id), data);
      } catch (e) {
        throw new OutboxError('OUTBOX_NOT_WRITABLE', `spool write to ${this.entriesDir} failed: ${(e as Error).message}`, { cause: e });
      }
      this.index({ id, topic: record.topic, bytes });
      this.overBound(id);
      return this.entry(this.held.get(id)!);
    });
    this.chain = p.catch(() => {});
    return p;
  }

  private index(h: Held): void {
    this.held.set(h.id, h);
    this.order.push(h.id);
    this.heldBytes += h.bytes;
  }

  /** Drops the oldest entries (never `keep`) until the bound holds; returns their ids. */
  private overBound(keep: number | null): number[] {
    const out: number[] = [];
    while (this.held.size > this.maxEntries || this.heldBytes > this.maxBytes) {
      while (this.head < this.order.length && !this.held.has(this.order[this.head]!)) this.head++;
      const oldest = this.order[this.head];
      if (oldest === undefined || oldest === keep) break;
      this.remove(oldest);
      out.push(oldest);
    }
    if (out.length > 0) {
      this.droppedCount += out.length;
      this.markHeader();
    }
    return out;
  }

  /** Leaves the index at once; the file goes in the background (close() waits for it). */
  private remove(id: number): boolean {
    const h = this.held.get(id);
    if (!h) return false;
    this.held.delete(id);
    this.heldBytes -= h.bytes;
    if (this.held.size === 0) {
      this.order = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head > this.order.length / 2) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    const u = unlink(join(this.entriesDir, fileName(id))).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ id, err: (e as Error).message }, 'spool: entry file not deleted; it is sent again after a restart');
    });
    this.unlinks.add(u);
    void u.finally(() => this.unlinks.delete(u));
    return true;
  }

  /** An entry whose payload is read from its file when asked for (the sender asks once, when it sends). */
  private entry(h: Held): OutboxEntry {
    const file = join(this.entriesDir, fileName(h.id));
    const topicBytes = Buffer.byteLength(h.topic);
    return {
      id: h.id,
      topic: h.topic,
      get payload(): Buffer {
        return readFileSync(file).subarray(2 + topicBytes);
      },
    };
  }

  peek(limit: number, afterId = -1): OutboxEntry[] {
    const lo = firstAfter(this.order, this.head, afterId);
    const out: OutboxEntry[] = [];
    for (let i = lo; i < this.order.length && out.length < limit; i++) {
      const h = this.held.get(this.order[i]!);
      if (h) out.push(this.entry(h));
    }
    return out;
  }

  *entries(): IterableIterator<OutboxEntry> {
    for (const h of this.held.values()) yield this.entry(h);
  }

  has(id: number): boolean {
    return this.held.has(id);
  }

  async ack(id: number): Promise<boolean> {
    if (this.closed) throw new OutboxError('OUTBOX_CLOSED', `spool ack(${id}) after close()`);
    return this.remove(id);
  }

  /** Waits for puts and deletions in progress, writes the header, releases the directory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    await Promise.all([...this.unlinks]);
    if (this.headerTimer) clearTimeout(this.headerTimer);
    await this.writeHeader().catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'spool: header not written at close'));
    await releaseLock(this.dir);
  }

  /** The dropped count is not urgent: written within a second, or with the next id block. */
  private markHeader(): void {
    this.headerDirty = true;
    if (this.headerTimer || this.closed) return;
    this.headerTimer = setTimeout(() => {
      this.headerTimer = null;
      if (!this.headerDirty || this.closed) return;
      this.chain = this.chain.then(() => this.writeHeader()).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'spool: header not written'));
    }, 1000);
    this.headerTimer.unref();
  }

  private async writeHeader(): Promise<void> {
    this.headerDirty = false;
    const text = JSON.stringify({ v: 1, epoch: this.epoch, reserved: this.reserved, dropped: this.droppedCount });
    await writeDurably(this.dir, HEADER, Buffer.from(text + '\n'));
  }
}
