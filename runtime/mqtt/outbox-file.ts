// The file outbox: an append-only JSON-lines log in one directory (format: outbox-log.ts), with
// group commit. Records wait in a queue; a group (everything queued, at most `commitMaxRecords` puts)
// goes to disk in one write()
// on a descriptor opened O_DSYNC, which returns only once the data is durable (one system call
// instead of write + fdatasync). A group holding a put starts once that put has waited
// `commitDelayMs`, or at once when `commitMaxRecords` wait, and never while the previous group is
// being written. A put resolves ("accepted") only after its group's write returned, and only then
// does peek() show it, so nothing reaches the broker before it is on disk. The durability contract
// is in docs/mqtt.md.
//
// Acks and drops are not urgent (losing one means a resend, which subscribers drop by seq, or a
// re-drop on open): they ride along with the next put's group, or go alone after `lazyFlushMs`.
// When dead records dominate, the live entries are rewritten to outbox.log.compact, fsync'd and
// renamed over the log.
//
//   <dir>/outbox.log    the log (outbox-log.ts)
//   <dir>/outbox.lock   pid of the process holding the directory (outbox-lock.ts)

import { randomUUID } from 'node:crypto';
import { constants as fsConstants, write as fsWrite } from 'node:fs';
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { OutboxError } from './errors.ts';
import { defaultLog, type Log } from '../log.ts';
import type { Outbox, OutboxEntry, OutboxLimits, OutboxRecord } from './outbox.ts';
import { checkLimits, OutboxIndex } from './outbox-index.ts';
import { acquireLock, releaseLock } from './outbox-lock.ts';
import { ackLine, COMPACT_FILE, dropLine, headerLine, LOG_FILE, putLine, replayLog } from './outbox-log.ts';

export interface FileOutboxOptions extends OutboxLimits {
  dir: string;
  /** Compact once the log is at least this big and live entries are under half of it. Default 1 MiB. */
  compactMinBytes?: number;
  /** A group holding a put is written once that put has waited this long (ms). Default 5; 0 = at once. */
  commitDelayMs?: number;
  /** ...or as soon as this many records wait; a group holds at most this many puts (acks and drops ride along). Default 256. */
  commitMaxRecords?: number;
  /** Acks and drops with no put to ride along with are written after this long (ms). Default 1000. */
  lazyFlushMs?: number;
  /** Where torn or unreadable lines and failed ack writes are reported. Default: pino on stderr. */
  log?: Pick<Log, 'warn' | 'info'>;
  /**
   * Crash injection (test/outbox-crash.test.ts, bench/crash.ts): called at every write boundary
   * with the file about to change and, before a write, the bytes it will get. Never set in
   * production; unset, it costs one undefined check per boundary.
   */
  crashHook?: CrashHook;
}

/**
 * The outbox's write boundaries, in the order they happen:
 * - a group: `group:write` (before its one durable write; `bytes` is the group) → `group:written`
 *   (durable, not yet accepted) → `group:accepted` (in the index; callers are told next);
 * - a rewrite (on open and at compaction): `compact:write` (before writing the temp file; `bytes`
 *   is its content) → `compact:synced` (temp file durable) → `compact:renamed` (over the log, the
 *   directory not yet synced) → `compact:done`.
 */
export type CrashPoint = 'group:write' | 'group:written' | 'group:accepted' | 'compact:write' | 'compact:synced' | 'compact:renamed' | 'compact:done';
export type CrashHook = (point: CrashPoint, io: { path: string; bytes?: Buffer; puts: number }) => void;

/** The file outbox, with its commit counter. */
export interface FileOutbox extends Outbox {
  /** Groups written: one durable write() each. */
  readonly commits: number;
}

// O_DSYNC: each write() returns once its data (and the metadata to read it back) is on stable
// storage, as write() + fdatasync() would. Where the platform has none, fdatasync after the write.
const DSYNC: number | undefined = fsConstants.O_DSYNC;
const LOG_FLAGS = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | (DSYNC ?? 0);

/** fs.write with a callback: measurably cheaper per call than FileHandle.write on the main thread. */
function writeAt(fd: number, buf: Buffer, off: number): Promise<number> {
  return new Promise((resolve, reject) => fsWrite(fd, buf, off, buf.length - off, null, (err, n) => (err ? reject(err) : resolve(n))));
}

interface QueuedPut {
  line: string;
  /** The entry the index takes once the group is durable. */
  entry: OutboxEntry;
  done: (err: Error | null) => void;
}

const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'ENOENT', 'ENOSPC', 'EISDIR']);
function notWritable(dir: string, e: unknown): OutboxError {
  const code = (e as NodeJS.ErrnoException).code ?? 'unknown';
  return new OutboxError(
    'OUTBOX_NOT_WRITABLE',
    `outbox dir ${JSON.stringify(dir)} is not writable (${code}); point outbox.dir at a writable directory on persistent storage`,
    { cause: e },
  );
}

function positiveInt(field: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new OutboxError('OUTBOX_BAD_OPTIONS', `outbox ${field} must be an integer >= ${min}, got ${v}`);
  return v;
}

export async function openFileOutbox(options: FileOutboxOptions): Promise<FileOutbox> {
  const limits = checkLimits(options);
  const commit = {
    delayMs: positiveInt('commitDelayMs', options.commitDelayMs ?? 5, 0),
    maxRecords: positiveInt('commitMaxRecords', options.commitMaxRecords ?? 256, 1),
    lazyMs: positiveInt('lazyFlushMs', options.lazyFlushMs ?? 1000, 0),
  };
  const { dir } = options;
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw notWritable(dir, e);
  }
  await acquireLock(dir, notWritable);
  try {
    const log = options.log ?? defaultLog('edgeprompt.outbox');
    const ob = new GroupCommitOutbox(dir, limits, options.compactMinBytes ?? 1 << 20, commit, log, options.crashHook);
    await ob.load();
    return ob;
  } catch (e) {
    await releaseLock(dir);
    if (e instanceof OutboxError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && NOT_WRITABLE.has(code)) throw notWritable(dir, e);
    throw e;
  }
}

class GroupCommitOutbox implements FileOutbox {
  epoch: string = randomUUID();
  commits = 0;
  private id = 0;
  private droppedCount = 0;
  private readonly index: OutboxIndex;
  private fh: FileHandle | null = null;
  private logBytes = 0; // size of outbox.log up to the last committed group
  private liveBytes = 0; // bytes of the put lines of live entries
  private readonly lineBytes = new Map<number, number>();
  private puts: QueuedPut[] = [];
  private lazy: string[] = []; // ack and drop lines
  private putsSince = 0;
  private lazySince = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerDue = Infinity;
  private committing: Promise<void> | null = null;
  private closed = false;
  private lastLazyError = -Infinity;
  private readonly path: string;

  constructor(
    private readonly dir: string,
    limits: Required<OutboxLimits>,
    private readonly compactMinBytes: number,
    private readonly commit: { delayMs: number; maxRecords: number; lazyMs: number },
    private readonly log: Pick<Log, 'warn' | 'info'>,
    private readonly hook: CrashHook | undefined,
  ) {
    this.index = new OutboxIndex(limits);
    this.path = join(dir, LOG_FILE);
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

  /** Replays the log into the index, applies the bounds and starts a compact log. */
  async load() {
    await rm(join(this.dir, COMPACT_FILE), { force: true }); // a compaction that died before its rename
    let text = '';
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const r = replayLog(text, this.path, this.log);
    if (r.epoch !== null) this.epoch = r.epoch;
    this.id = r.nextId;
    this.droppedCount = r.dropped;
    const dropped: number[] = [];
    for (const e of r.held) {
      for (const d of this.index.add(e)) dropped.push(d);
      this.lineBytes.set(e.id, Buffer.byteLength(putLine(e)));
    }
    for (const d of dropped) this.lineBytes.delete(d);
    this.droppedCount += dropped.length;
    if (dropped.length > 0) this.log.warn({ dropped: dropped.length }, 'outbox: over its bound after reopening; oldest dropped');
    // Always start from a compact log: it writes the header (epoch, nextId, dropped) and drops
    // whatever was torn or unreadable, so the next open sees a clean file.
    await this.rewrite();
  }

  put(record: OutboxRecord): Promise<OutboxEntry> {
    if (this.closed) return Promise.reject(new OutboxError('OUTBOX_CLOSED', 'outbox put after close()'));
    try {
      this.index.assertFits(record);
    } catch (e) {
      return Promise.reject(e);
    }
    // The id is taken now, synchronously: callers put it in the payload before it is stored.
    const entry: OutboxEntry = { id: this.id++, topic: record.topic, payload: record.payload };
    return new Promise((resolve, reject) => {
      if (this.puts.length === 0) this.putsSince = performance.now();
      this.puts.push({ line: putLine(entry), entry, done: (err) => (err ? reject(err) : resolve(entry)) });
      this.schedule();
    });
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

  /** Deletes at once; the ack record goes to disk with the next group (see the header). */
  async ack(id: number): Promise<boolean> {
    if (this.closed) throw new OutboxError('OUTBOX_CLOSED', `outbox ack(${id}) after close()`);
    if (!this.index.delete(id)) return false;
    this.forget(id);
    this.queueLazy(ackLine(id));
    return true;
  }

  /** Commits whatever waits (at once), then releases the directory. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    this.schedule();
    while (this.committing) await this.committing;
    if (this.timer) clearTimeout(this.timer);
    await this.fh?.close();
    this.fh = null;
    await releaseLock(this.dir);
  }

  private queueLazy(line: string) {
    if (this.lazy.length === 0) this.lazySince = performance.now();
    this.lazy.push(line);
    this.schedule();
  }

  /** Starts the next group when one is due; otherwise arms a timer for when it will be. */
  private schedule() {
    if (this.committing || (this.puts.length === 0 && this.lazy.length === 0)) return;
    const due = this.puts.length > 0 ? this.putsSince + this.commit.delayMs : this.lazySince + this.commit.lazyMs;
    const now = performance.now();
    if (this.closed || due <= now || this.puts.length + this.lazy.length >= this.commit.maxRecords) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.timerDue = Infinity;
      this.committing = this.commitGroup().finally(() => {
        this.committing = null;
        this.schedule(); // records that arrived meanwhile (and drop records) form the next group
      });
    } else if (due < this.timerDue) {
      if (this.timer) clearTimeout(this.timer);
      this.timerDue = due;
      this.timer = setTimeout(() => {
        this.timer = null;
        this.timerDue = Infinity;
        this.schedule();
      }, Math.ceil(due - now));
    }
  }

  /** One group: one durable write of every queued record; never rejects. */
  private async commitGroup(): Promise<void> {
    // At most maxRecords puts (the rest form the next group at once); every waiting ack/drop line.
    const puts = this.puts.length <= this.commit.maxRecords ? this.puts : this.puts.slice(0, this.commit.maxRecords);
    this.puts = puts === this.puts ? [] : this.puts.slice(puts.length);
    if (this.puts.length > 0) this.putsSince = -Infinity; // what the cap left over goes next, without a new wait
    const lazy = this.lazy;
    this.lazy = [];
    // Acks first: they only delete entries put in earlier groups.
    const buf = Buffer.from(lazy.join('') + puts.map((q) => q.line).join(''));
    let err: OutboxError | null = null;
    try {
      this.hook?.('group:write', { path: this.path, bytes: buf, puts: puts.length });
      const fd = this.fh!.fd;
      for (let off = 0; off < buf.length; ) off += await writeAt(fd, buf, off);
      if (DSYNC === undefined) await this.fh!.datasync();
      this.logBytes += buf.length;
      this.hook?.('group:written', { path: this.path, puts: puts.length });
    } catch (e) {
      err = new OutboxError('OUTBOX_NOT_WRITABLE', `outbox write to ${this.path} failed: ${(e as Error).message}`, { cause: e });
      // Cut off what this group left (a partial line would swallow the next record on replay).
      await this.fh?.truncate(this.logBytes).catch(() => {});
    }
    this.commits++;
    if (err && lazy.length > 0 && performance.now() - this.lastLazyError > 10_000) {
      this.lastLazyError = performance.now(); // nobody awaits acks: say so here, at most every 10 s
      this.log.warn({ err: err.message, records: lazy.length }, 'outbox: ack/drop records not written; those results may be sent again after a restart');
    }
    // The index takes the group before any caller hears it is durable, so a compaction (below, or
    // started by a later group) snapshots every accepted entry.
    for (const q of puts) {
      if (!err) this.accept(q.entry, q.line);
      q.done(err);
    }
    if (!err) this.hook?.('group:accepted', { path: this.path, puts: puts.length });
    if (!err && this.logBytes >= this.compactMinBytes && this.liveBytes * 2 < this.logBytes) {
      try {
        await this.rewrite();
      } catch (e) {
        this.log.warn({ err: (e as Error).message, file: this.path }, 'outbox: compaction failed; will retry');
      }
    }
  }

  /** A durable put joins the index; the bound drops the oldest (recorded in the next group). */
  private accept(entry: OutboxEntry, line: string) {
    const n = Buffer.byteLength(line);
    this.lineBytes.set(entry.id, n);
    this.liveBytes += n;
    for (const d of this.index.add(entry)) {
      this.forget(d);
      this.droppedCount++;
      // A lost drop record is harmless: the bound drops the same entry again on the next open.
      this.queueLazy(dropLine(d));
    }
  }

  private forget(id: number) {
    this.liveBytes -= this.lineBytes.get(id) ?? 0;
    this.lineBytes.delete(id);
  }

  /** Writes header + live entries to a temp file, fsyncs it and renames it over the log. */
  private async rewrite() {
    const header = headerLine({ epoch: this.epoch, nextId: this.id, dropped: this.droppedCount });
    const body = [header];
    for (const e of this.index.entries()) body.push(putLine(e));
    const text = body.join('');
    const tmp = join(this.dir, COMPACT_FILE);
    const th = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC, 0o644);
    try {
      this.hook?.('compact:write', { path: tmp, bytes: Buffer.from(text), puts: 0 });
      await th.writeFile(text);
      await th.sync();
    } finally {
      await th.close();
    }
    this.hook?.('compact:synced', { path: tmp, puts: 0 });
    await this.fh?.close();
    this.fh = null;
    let renamed = false;
    try {
      await rename(tmp, this.path);
      renamed = true;
      this.hook?.('compact:renamed', { path: this.path, puts: 0 });
      await syncDir(this.dir);
    } finally {
      // Appends continue on whichever log is in place (the old one if the rename failed).
      this.fh = await open(this.path, LOG_FLAGS, 0o644);
      if (renamed) {
        this.logBytes = Buffer.byteLength(text);
        this.liveBytes = this.logBytes - Buffer.byteLength(header);
      }
    }
    this.hook?.('compact:done', { path: this.path, puts: 0 });
  }
}

/** fsync the directory so the rename itself survives power loss. */
async function syncDir(dir: string) {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
