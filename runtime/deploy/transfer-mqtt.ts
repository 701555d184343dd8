// Block transfer over the device's own MQTT session (docs/deploy.md "Transfer"). The device asks
// for blocks on `<device>/deploy/get`, at most `window` outstanding; the controller answers each on
// `<device>/deploy/block`. A block is accepted only with the size and sha256 the signed document
// gives for its index; it is written at its offset in `<rollout>.part`, and the bitmap of held
// blocks (with the figures) is saved after the part file's fdatasync, so the bitmap never claims
// a block that is not on disk. After a restart the held blocks are read and hashed again, and
// only the missing ones are asked for. Outstanding requests are sent again after `retryMs` and on
// every reconnect (a broker restart loses nothing the device holds).

import { createHash } from 'node:crypto';
import { open, readFile, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { z } from 'zod';
import { DeployError, TransferFigures, type BlockFrame } from '../schema/deploy.ts';

export interface BlockTransferOptions {
  part: string;
  bitmap: string;
  sha256: string;
  totalBytes: number;
  blockBytes: number;
  /** sha256 of each block, from the signed document. */
  hashes: readonly string[];
  window: number;
  retryMs: number;
  stallMs: number;
  maxBadBlocks: number;
  /** Sends a block request (the agent publishes it); false when not connected (it is sent on reconnect). */
  request(blocks: number[]): boolean;
  /** Called after every accepted or refused block. */
  onProgress?(f: TransferFigures): void;
}

const Saved = z.object({ v: z.literal(1), blocks: z.number().int(), bits: z.string(), figures: TransferFigures });

const SYNC_EVERY = 16;
const SYNC_MS = 200;

const enospc = (e: unknown) => (e as NodeJS.ErrnoException)?.code === 'ENOSPC';

export class BlockTransfer {
  private fh: FileHandle | null = null;
  private readonly n: number;
  /** Held and on disk (synced). */
  private readonly have: Uint8Array;
  /** Accepted, waiting for its write. */
  private readonly writing = new Set<number>();
  /** Written, not yet synced. */
  private readonly unsynced = new Set<number>();
  private readonly outstanding = new Map<number, number>();
  private cursor = 0;
  private writes: Promise<void> = Promise.resolve();
  private syncing: Promise<void> = Promise.resolve();
  private syncTimer: NodeJS.Timeout | null = null;
  private tick: NodeJS.Timeout | null = null;
  private lastProgress = Date.now();
  private settled = false;
  /** Blocks and reconnects are ignored until start(): open() is still reading what the last run held. */
  private started = false;
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;
  readonly done: Promise<void>;
  figures: TransferFigures;

  constructor(private readonly o: BlockTransferOptions) {
    this.n = o.hashes.length;
    this.have = new Uint8Array(Math.ceil(this.n / 8));
    this.figures = { via: 'mqtt', totalBytes: o.totalBytes, bytes: 0, totalBlocks: this.n, blocks: 0, fetched: 0, requested: 0, duplicates: 0, badBlocks: 0, resumed: 0 };
    this.done = new Promise((res, rej) => ((this.resolveDone = res), (this.rejectDone = rej)));
    this.done.catch(() => {});
  }

  private has(i: number): boolean {
    return (this.have[i >> 3]! & (1 << (i & 7))) !== 0;
  }
  private sizeOf(i: number): number {
    return i === this.n - 1 ? this.o.totalBytes - i * this.o.blockBytes : this.o.blockBytes;
  }

  /** Opens (or creates) the part file and takes over the blocks a previous run held and that still verify. */
  async open(): Promise<void> {
    let saved: z.infer<typeof Saved> | null = null;
    try {
      const r = Saved.safeParse(JSON.parse(await readFile(this.o.bitmap, 'utf8')));
      if (r.success && r.data.blocks === this.n) saved = r.data;
    } catch {
      /* none yet */
    }
    try {
      this.fh = await open(this.o.part, 'r+').catch(() => open(this.o.part, 'w+'));
      await this.fh.truncate(this.o.totalBytes);
    } catch (e) {
      throw new DeployError(enospc(e) ? 'DISK_FULL' : 'INSTALL_FAILED', `${this.o.part}: cannot create the transfer file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
    if (saved === null) return;
    this.figures = { ...saved.figures, resumed: 0 };
    const bits = Buffer.from(saved.bits, 'base64');
    let resumed = 0;
    const buf = Buffer.alloc(this.o.blockBytes);
    for (let i = 0; i < this.n; i++) {
      if ((bits[i >> 3]! & (1 << (i & 7))) === 0) continue;
      const size = this.sizeOf(i);
      await this.fh.read(buf, 0, size, i * this.o.blockBytes);
      if (createHash('sha256').update(buf.subarray(0, size)).digest('hex') !== this.o.hashes[i]) continue; // not on disk after all
      this.have[i >> 3]! |= 1 << (i & 7);
      resumed++;
    }
    this.figures.resumed = resumed;
    this.count();
  }

  /** Asks for the first blocks and resolves `done` when every block is on disk. */
  start(): Promise<void> {
    this.started = true;
    this.lastProgress = Date.now();
    this.tick = setInterval(() => this.onTick(), Math.max(50, Math.min(this.o.retryMs, this.o.stallMs) / 4));
    this.tick.unref();
    this.checkDone();
    this.pump();
    return this.done;
  }

  /** A block arrived (any rollout check is the caller's). */
  onFrame(f: BlockFrame): void {
    if (this.settled || !this.started) return;
    const i = f.index;
    if (!Number.isInteger(i) || i < 0 || i >= this.n) return this.bad(`block ${i} is out of range (0..${this.n - 1})`);
    this.outstanding.delete(i);
    if (this.has(i) || this.writing.has(i) || this.unsynced.has(i)) {
      this.figures.duplicates++;
      return this.report();
    }
    const size = this.sizeOf(i);
    if (f.data.length !== size) return this.bad(`block ${i} has ${f.data.length} bytes, the document says ${size} (truncated or padded)`, i);
    if (createHash('sha256').update(f.data).digest('hex') !== this.o.hashes[i]) return this.bad(`block ${i} does not match its sha256 in the signed document (altered)`, i);
    this.writing.add(i);
    const data = Buffer.from(f.data);
    this.writes = this.writes.then(async () => {
      if (this.settled || !this.fh) return;
      try {
        await this.fh.write(data, 0, size, i * this.o.blockBytes);
      } catch (e) {
        return this.fail(new DeployError(enospc(e) ? 'DISK_FULL' : 'INSTALL_FAILED', `${this.o.part}: writing block ${i} failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e }));
      }
      this.writing.delete(i);
      this.unsynced.add(i);
      this.figures.fetched++;
      this.lastProgress = Date.now();
      if (this.unsynced.size >= SYNC_EVERY || this.unsynced.size + this.count() >= this.n) void this.sync();
      else this.syncTimer ??= setTimeout(() => void this.sync(), SYNC_MS);
    });
    this.pump();
  }

  /** After a reconnect: ask again for everything outstanding. */
  onConnect(): void {
    if (this.settled || !this.started) return;
    const again = [...this.outstanding.keys()];
    if (again.length > 0 && this.o.request(again)) {
      this.figures.requested += again.length;
      for (const i of again) this.outstanding.set(i, Date.now());
    }
    this.pump();
  }

  /** A message on the block topic that is not a block frame at all. */
  badFrame(why: string): void {
    if (!this.settled && this.started) this.bad(why);
  }

  /**
   * Stops without deleting anything (the device is shutting down, or the deployment ended): what is
   * on disk stays for a restart; `done` rejects with TRANSFER_FAILED if it had not settled.
   */
  async close(): Promise<void> {
    const wasOpen = !this.settled;
    this.settled = true;
    this.clearTimers();
    await this.writes;
    if (wasOpen) await this.sync(true);
    await this.fh?.close().catch(() => {});
    this.fh = null;
    if (wasOpen) this.rejectDone(new DeployError('TRANSFER_FAILED', 'the transfer was stopped'));
  }

  private bad(why: string, index?: number): void {
    this.figures.badBlocks++;
    if (index !== undefined) this.outstanding.delete(index); // asked again by pump()
    if (this.figures.badBlocks > this.o.maxBadBlocks) {
      return this.fail(new DeployError('BLOCK_INVALID', `${why}; ${this.figures.badBlocks} blocks refused, more than transfer.maxBadBlocks (${this.o.maxBadBlocks}): the transfer stops`));
    }
    this.report();
    this.pump();
  }

  private pump(): void {
    if (this.settled) return;
    const want: number[] = [];
    for (let k = 0; k < this.n && this.outstanding.size + want.length < this.o.window; k++) {
      const i = (this.cursor + k) % this.n;
      if (!this.has(i) && !this.writing.has(i) && !this.unsynced.has(i) && !this.outstanding.has(i) && !want.includes(i)) want.push(i);
    }
    if (want.length === 0) return;
    this.cursor = (want.at(-1)! + 1) % this.n;
    const sent = this.o.request(want);
    for (const i of want) this.outstanding.set(i, sent ? Date.now() : 0);
    if (sent) this.figures.requested += want.length;
  }

  private onTick(): void {
    if (this.settled) return;
    const now = Date.now();
    if (now - this.lastProgress > this.o.stallMs) {
      return this.fail(new DeployError('TRANSFER_STALLED', `no new block for ${Math.round((now - this.lastProgress) / 1000)} s (transfer.stallS ${this.o.stallMs / 1000}); ${this.count()} of ${this.n} blocks held: is the deploy controller running?`));
    }
    const late = [...this.outstanding].filter(([, at]) => now - at >= this.o.retryMs).map(([i]) => i);
    if (late.length > 0 && this.o.request(late)) {
      this.figures.requested += late.length;
      for (const i of late) this.outstanding.set(i, now);
    }
  }

  /** fdatasync the part file, then save the bitmap of what is on disk (one at a time). */
  private sync(final = false): Promise<void> {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    const next = this.syncing.then(() => this.doSync(final));
    this.syncing = next.catch(() => {});
    return next;
  }

  private async doSync(final: boolean): Promise<void> {
    const batch = [...this.unsynced];
    if (batch.length === 0 && !final) return;
    try {
      if (batch.length > 0 && this.fh) await this.fh.datasync();
      for (const i of batch) {
        this.unsynced.delete(i);
        this.have[i >> 3]! |= 1 << (i & 7);
      }
      this.count();
      // Blocks written while the datasync ran are not in these bits yet: not in `fetched` either, so a
      // restart that fetches them again counts them once.
      const figures = { ...this.figures, fetched: this.figures.fetched - this.unsynced.size };
      const saved: z.infer<typeof Saved> = { v: 1, blocks: this.n, bits: Buffer.from(this.have).toString('base64'), figures };
      const tmp = `${this.o.bitmap}.tmp-${process.pid}`;
      await writeFile(tmp, JSON.stringify(saved));
      await rename(tmp, this.o.bitmap);
    } catch (e) {
      if (!final) this.fail(new DeployError(enospc(e) ? 'DISK_FULL' : 'INSTALL_FAILED', `${this.o.part}: saving the transfer failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e }));
      return;
    }
    this.report();
    this.checkDone();
  }

  private count(): number {
    let held = 0;
    let bytes = 0;
    for (let i = 0; i < this.n; i++) if (this.has(i)) (held++, (bytes += this.sizeOf(i)));
    this.figures.blocks = held;
    this.figures.bytes = bytes;
    return held;
  }

  private checkDone(): void {
    if (this.settled || this.count() < this.n) return;
    this.settled = true;
    this.clearTimers();
    void this.writes.then(async () => {
      await this.fh?.close();
      this.fh = null;
      this.resolveDone();
    });
  }

  private report(): void {
    this.o.onProgress?.({ ...this.figures });
  }

  private fail(e: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.clearTimers();
    void this.writes.then(() => this.fh?.close()).finally(() => {
      this.fh = null;
      this.rejectDone(e);
    });
  }

  private clearTimers(): void {
    if (this.tick) clearInterval(this.tick);
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.tick = null;
    this.syncTimer = null;
  }
}
