// The file outbox: an append-only JSON-lines log in one directory, fsync'd before put() resolves,
// so a result survives kill -9 and power loss once its put has resolved.
//
//   <dir>/outbox.log    {"t":"h","v":1,"epoch":"…","nextId":N,"dropped":D}   header (first line)
//                       {"t":"p","id":N,"topic":"…","b64":"…"}                put
//                       {"t":"a","id":N}                                      ack (PUBACK received)
//                       {"t":"d","id":N}                                      dropped by the bound
//   <dir>/outbox.lock   pid of the process holding the directory
//
// Puts are group-committed: every record queued while a write is in flight goes out in the next
// write + fdatasync. Acks and drops are not synced on their own (losing one only means a resend, and
// the subscriber drops duplicates by seq). When dead records dominate, the live entries are
// rewritten to outbox.log.compact, fsync'd and renamed over the log. A torn last line (a crash
// mid-write) is cut off with a warning; an unreadable line elsewhere is skipped with a warning.

import { randomUUID } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { OutboxError } from './errors.ts';
import { defaultLog, type Log } from './log.ts';
import type { Outbox, OutboxEntry, OutboxLimits, OutboxRecord } from './outbox.ts';
import { checkLimits, OutboxIndex } from './outbox-index.ts';
import { acquireLock, releaseLock } from './outbox-lock.ts';

export interface FileOutboxOptions extends OutboxLimits {
  dir: string;
  /** Compact once the log is at least this big and live entries are under half of it. Default 1 MiB. */
  compactMinBytes?: number;
  /** Where torn or unreadable lines are reported. Default: pino on stderr. */
  log?: Pick<Log, 'warn' | 'info'>;
}

const LOG = 'outbox.log';
const TMP = 'outbox.log.compact';

type Rec =
  | { t: 'h'; v: 1; epoch: string; nextId: number; dropped: number }
  | { t: 'p'; id: number; topic: string; b64: string }
  | { t: 'a' | 'd'; id: number };

const isId = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
function asRec(x: unknown): Rec | null {
  if (typeof x !== 'object' || x === null) return null;
  const r = x as Record<string, unknown>;
  if (r.t === 'p' && isId(r.id) && typeof r.topic === 'string' && typeof r.b64 === 'string') return r as Rec;
  if ((r.t === 'a' || r.t === 'd') && isId(r.id)) return r as Rec;
  if (r.t === 'h' && r.v === 1 && typeof r.epoch === 'string' && isId(r.nextId) && isId(r.dropped)) return r as Rec;
  return null;
}

const putLine = (e: OutboxEntry) =>
  JSON.stringify({ t: 'p', id: e.id, topic: e.topic, b64: e.payload.toString('base64') }) + '\n';

interface Pending {
  line: string;
  sync: boolean;
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

export async function openFileOutbox(options: FileOutboxOptions): Promise<Outbox> {
  const limits = checkLimits(options);
  const { dir } = options;
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw notWritable(dir, e);
  }
  await acquireLock(dir, notWritable);
  try {
    const log = options.log ?? defaultLog('edgeprompt.outbox');
    const ob = new FileOutbox(dir, limits, options.compactMinBytes ?? 1 << 20, log);
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

class FileOutbox implements Outbox {
  epoch: string = randomUUID();
  private id = 0;
  private droppedCount = 0;
  private readonly index: OutboxIndex;
  private fh: FileHandle | null = null;
  private logBytes = 0; // size of outbox.log
  private liveBytes = 0; // bytes of the put lines of live entries
  private readonly lineBytes = new Map<number, number>();
  private queue: Pending[] = [];
  private writing: Promise<void> | null = null;
  private closed = false;
  private readonly path: string;

  constructor(
    private readonly dir: string,
    limits: Required<OutboxLimits>,
    private readonly compactMinBytes: number,
    private readonly log: Pick<Log, 'warn' | 'info'>,
  ) {
    this.index = new OutboxIndex(limits);
    this.path = join(dir, LOG);
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

  /** Replays the log into the index, cuts a torn tail, applies the bounds and opens for append. */
  async load() {
    await rm(join(this.dir, TMP), { force: true }); // a compaction that died before its rename
    let text = '';
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    let end = text.length;
    if (end > 0 && !text.endsWith('\n')) {
      end = text.lastIndexOf('\n') + 1;
      this.log.warn(
        { file: this.path, bytes: Buffer.byteLength(text.slice(end)) },
        'outbox: torn last line (a write cut short by a crash) skipped',
      );
    }
    let header = false;
    const lines = text.slice(0, end).split('\n');
    lines.pop(); // after the final '\n'
    const held = new Map<number, OutboxEntry>();
    let maxId = -1;
    lines.forEach((line, i) => {
      let rec: Rec | null = null;
      try {
        rec = asRec(JSON.parse(line));
      } catch {
        rec = null;
      }
      if (rec === null) {
        this.log.warn({ file: this.path, line: i + 1, text: line.slice(0, 80) }, 'outbox: unreadable line skipped');
        return;
      }
      switch (rec.t) {
        case 'h':
          header = true;
          this.epoch = rec.epoch;
          this.id = Math.max(this.id, rec.nextId);
          this.droppedCount = rec.dropped;
          break;
        case 'p':
          held.set(rec.id, { id: rec.id, topic: rec.topic, payload: Buffer.from(rec.b64, 'base64') });
          maxId = Math.max(maxId, rec.id);
          break;
        case 'a':
          held.delete(rec.id);
          break;
        case 'd':
          if (held.delete(rec.id)) this.droppedCount++;
          break;
      }
    });
    if (!header && lines.length > 0) {
      this.log.warn({ file: this.path }, 'outbox: header missing; ids continue, with a new epoch');
    }
    this.id = Math.max(this.id, maxId + 1);
    const dropped: number[] = [];
    for (const e of [...held.values()].sort((a, b) => a.id - b.id)) {
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

  async put(record: OutboxRecord): Promise<OutboxEntry> {
    if (this.closed) throw new OutboxError('OUTBOX_CLOSED', 'outbox put after close()');
    this.index.assertFits(record);
    const entry: OutboxEntry = { id: this.id++, topic: record.topic, payload: record.payload };
    const line = putLine(entry);
    await this.append(line, true);
    // Durable now; only now may peek() hand it to the broker (an id seen by a subscriber must
    // never be reused after a crash).
    this.lineBytes.set(entry.id, Buffer.byteLength(line));
    this.liveBytes += Buffer.byteLength(line);
    const dropped = this.index.add(entry);
    for (const d of dropped) {
      this.forget(d);
      this.droppedCount++;
      void this.append(JSON.stringify({ t: 'd', id: d }) + '\n', false).catch(() => {});
    }
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
    if (!this.index.delete(id)) return false;
    this.forget(id);
    await this.append(JSON.stringify({ t: 'a', id }) + '\n', false);
    return true;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    while (this.writing) await this.writing;
    await this.fh?.close();
    this.fh = null;
    await releaseLock(this.dir);
  }

  private forget(id: number) {
    this.liveBytes -= this.lineBytes.get(id) ?? 0;
    this.lineBytes.delete(id);
  }

  private append(line: string, sync: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ line, sync, done: (err) => (err ? reject(err) : resolve()) });
      if (!this.writing) this.writing = this.drain().finally(() => (this.writing = null));
    });
  }

  /** Group commit: one write (+ one fdatasync if any put is waiting) per batch. */
  private async drain() {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const buf = Buffer.from(batch.map((p) => p.line).join(''));
      let err: Error | null = null;
      try {
        await this.fh!.write(buf);
        this.logBytes += buf.length;
        if (batch.some((p) => p.sync)) await this.fh!.datasync();
      } catch (e) {
        err = new OutboxError('OUTBOX_NOT_WRITABLE', `outbox write to ${this.path} failed: ${(e as Error).message}`, {
          cause: e,
        });
      }
      for (const p of batch) p.done(err);
      if (!err && this.logBytes >= this.compactMinBytes && this.liveBytes * 2 < this.logBytes) {
        try {
          await this.rewrite();
        } catch (e) {
          this.log.warn({ err: (e as Error).message, file: this.path }, 'outbox: compaction failed; will retry');
        }
      }
    }
  }

  /** Writes header + live entries to a temp file, fsyncs it and renames it over the log. */
  private async rewrite() {
    const header = JSON.stringify({ t: 'h', v: 1, epoch: this.epoch, nextId: this.id, dropped: this.droppedCount });
    const body = [header + '\n'];
    for (const e of this.index.entries()) body.push(putLine(e));
    const text = body.join('');
    const tmp = join(this.dir, TMP);
    const th = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC, 0o644);
    try {
      await th.writeFile(text);
      await th.sync();
    } finally {
      await th.close();
    }
    await this.fh?.close();
    this.fh = null;
    await rename(tmp, this.path);
    await syncDir(this.dir);
    this.fh = await open(this.path, 'a');
    this.logBytes = Buffer.byteLength(text);
    this.liveBytes = this.logBytes - Buffer.byteLength(header) - 1;
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
