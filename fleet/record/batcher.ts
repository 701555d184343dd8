// Collects classified messages and stores them in batches, one batch at a time: a batch goes when
// it holds `maxRows` results or its first message has waited `maxDelayMs`. Each message's ack
// token is completed only after its batch is stored, so its PUBACK follows the commit.
//
// Failures:
// - a data error (SQLSTATE class 22 or 23: a payload PostgreSQL cannot take, such as a \u0000 in
//   a string) splits the batch in halves until the one row is found; that row is counted as
//   malformed (UNSTORABLE) and acknowledged, the rest is stored.
// - anything else (server down, connection lost) retries the whole batch with backoff, holding
//   the acknowledgements: the broker stops sending once its in-flight window is full, so nothing
//   is lost and memory stays bounded.

import { EventEmitter } from 'node:events';
import type { Log } from '../../runtime/log.ts';
import type { ResultPayload } from '../../runtime/schema/payloads.ts';
import type { FrameHeader, LabelPayload } from '../../runtime/schema/keep.ts';
import { frameKey, insertFrames, insertLabels, resolveLabels, type FrameRow, type LabelRow } from './loop-store.ts';
import type { Classified, Malformed, MessagePayload } from './classify.ts';
import type { Db } from './db.ts';
import type { AckToken } from './held-acks.ts';
import { addMalformed, dayOf, ensureDays, existingDays, insertMessages, insertResults, messageKey, resultKey, type MalformedRow, type MessageRow, type ResultRow } from './store.ts';

export interface BatcherOptions {
  maxRows: number;
  maxDelayMs: number;
  /** Backoff bounds for retrying a batch the database did not take. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface StoredBatch {
  /** Results stored now for the first time (redeliveries left out). */
  results: ResultPayload[];
  /** Messages stored now for the first time. */
  messages: { kind: MessageRow['kind']; value: MessagePayload; receivedTs: number }[];
  malformed: MalformedRow[];
  /** Kept frames and labels stored now for the first time (docs/data-loop.md). */
  frames: FrameHeader[];
  labels: LabelPayload[];
  /** Results in the batch that were already stored. */
  duplicates: number;
  ms: number;
}

interface Item {
  c: Exclude<Classified, { kind: 'ignored' }>;
  token: AckToken;
}

export interface BatcherStats {
  received: number;
  stored: number;
  /** Kept frames and labels stored (each once). */
  frames: number;
  labels: number;
  duplicates: number;
  malformed: number;
  batches: number;
  buffered: number;
  retries: number;
  lastError: string | null;
}

const isDataError = (e: unknown) => {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
};

export class Batcher extends EventEmitter<{ stored: [StoredBatch] }> {
  private buffer: Item[] = [];
  private resultsBuffered = 0;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private closed = false;
  /** UTC days (YYYYMMDD) known to have a results partition; null until read. */
  private days: Set<string> | null = null;
  readonly stats: BatcherStats = { received: 0, stored: 0, frames: 0, labels: 0, duplicates: 0, malformed: 0, batches: 0, buffered: 0, retries: 0, lastError: null };

  constructor(
    private readonly db: Db,
    private readonly opts: BatcherOptions,
    private readonly log: Log,
  ) {
    super();
  }

  add(c: Classified, token: AckToken): void {
    if (this.closed) return; // unacknowledged: redelivered to the next run
    this.stats.received++;
    if (c.kind === 'ignored') return token.done();
    this.buffer.push({ c, token });
    if (c.kind === 'result') this.resultsBuffered++;
    this.stats.buffered = this.buffer.length;
    if (this.resultsBuffered >= this.opts.maxRows) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.opts.maxDelayMs);
  }

  get buffered(): number {
    return this.buffer.length;
  }

  /** Stores everything buffered (and waits for a batch in progress). */
  async drain(): Promise<void> {
    while (this.flushing || this.buffer.length > 0) {
      if (!this.flushing) this.kick();
      await this.flushing;
    }
  }

  /**
   * Stores what is buffered, for at most `timeoutMs`; then gives up a batch the database keeps
   * refusing (its messages stay unacknowledged, so the broker redelivers them to the next run).
   */
  async close(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.drain(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.flushing || this.buffer.length === 0) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = null;
      // Whatever arrived during the batch: at once if a batch is full, else after the delay.
      if (this.buffer.length > 0) {
        if (this.resultsBuffered >= this.opts.maxRows) this.kick();
        else this.timer ??= setTimeout(() => this.kick(), this.opts.maxDelayMs);
      }
    });
  }

  private async flushLoop(): Promise<void> {
    // Take up to maxRows results (and every other message before the cut).
    let n = 0;
    let results = 0;
    while (n < this.buffer.length && results < this.opts.maxRows) if (this.buffer[n++]!.c.kind === 'result') results++;
    const items = this.buffer.slice(0, n);
    this.buffer = this.buffer.slice(n);
    this.resultsBuffered -= results;
    this.stats.buffered = this.buffer.length;
    const t0 = performance.now();
    const out: StoredBatch = { results: [], messages: [], malformed: [], frames: [], labels: [], duplicates: 0, ms: 0 };
    let delay = this.opts.retryMinMs ?? 100;
    for (;;) {
      try {
        await this.store(items, out);
        break;
      } catch (e) {
        this.stats.retries++;
        this.stats.lastError = (e as Error).message;
        if (this.closed) return;
        if (this.stats.retries === 1 || this.stats.retries % 50 === 0) {
          this.log.warn({ err: (e as Error).message, code: (e as { code?: unknown }).code, rows: items.length, retries: this.stats.retries }, 'recorder: the database did not take a batch; retrying (acknowledgements held)');
        }
        await new Promise((r) => setTimeout(r, delay).unref()); // unref: a closing recorder does not wait for it
        delay = Math.min(delay * 2, this.opts.retryMaxMs ?? 5000);
        out.results.length = out.messages.length = out.malformed.length = out.frames.length = out.labels.length = out.duplicates = 0;
      }
    }
    for (const it of items) it.token.done();
    out.ms = performance.now() - t0;
    this.stats.batches++;
    this.stats.stored += out.results.length;
    this.stats.frames += out.frames.length;
    this.stats.labels += out.labels.length;
    this.stats.duplicates += out.duplicates;
    this.stats.malformed += out.malformed.reduce((s, m) => s + m.count, 0);
    this.stats.lastError = null;
    this.emit('stored', out);
  }

  /** Makes the partitions of these times' days now, off the path of a batch (today's and tomorrow's, ahead). */
  prepareDays(times: number[]): Promise<void> {
    return this.ensureDays(times, false);
  }

  /** Makes the results partitions these capture times need (re-reading which exist when asked). */
  private async ensureDays(captureTs: number[], reread: boolean): Promise<void> {
    if (captureTs.length === 0) return;
    if (this.days === null || reread) this.days = await existingDays(this.db);
    const missing = new Set<string>();
    for (const ts of captureTs) {
      const d = dayOf(ts);
      if (!this.days.has(d)) missing.add(d);
    }
    if (missing.size === 0) return;
    await ensureDays(this.db, missing);
    for (const d of missing) this.days.add(d);
  }

  /** Forget which partitions exist (retention dropped some). */
  forgetDays(): void {
    this.days = null;
  }

  /** Frames one by one (each its own statement), labels in one; a row the database refuses as data is counted malformed. */
  private async storeLoop(frames: FrameRow[], labels: LabelRow[], out: StoredBatch, addBad: (m: Malformed, ts: number) => void): Promise<void> {
    for (const f of frames) {
      const h = f.header;
      try {
        if ((await insertFrames(this.db, [f])).has(frameKey(h.device, h.result.seqEpoch, h.result.seq))) out.frames.push(h);
        else out.duplicates++;
      } catch (e) {
        if (!isDataError(e)) throw e;
        addBad({ device: h.device, kind: 'frame', code: 'UNSTORABLE', topic: '', message: `the database refused the frame: ${(e as Error).message}` }, Date.now());
      }
    }
    const store = async (rows: LabelRow[]): Promise<void> => {
      try {
        const fresh = await insertLabels(this.db, rows);
        for (const r of rows) if (fresh.delete(r.label.labelId)) out.labels.push(r.label);
      } catch (e) {
        if (!isDataError(e)) throw e;
        if (rows.length === 1) return addBad({ device: rows[0]!.label.device, kind: 'label', code: 'UNSTORABLE', topic: '', message: `the database refused the label: ${(e as Error).message}` }, Date.now());
        const h = Math.ceil(rows.length / 2);
        await store(rows.slice(0, h));
        await store(rows.slice(h));
      }
    };
    if (labels.length > 0) await store(labels);
  }

  /** Stores items; on a data error, halves until the offending row is isolated. */
  private async store(items: Item[], out: StoredBatch): Promise<void> {
    const results: { row: ResultRow; value: ResultPayload }[] = [];
    const messages: { row: MessageRow; value: MessagePayload }[] = [];
    const malformed = new Map<string, MalformedRow>();
    const addBad = (m: Malformed, ts: number) => {
      const key = `${m.device}\u0000${m.kind}\u0000${m.code}`;
      const prev = malformed.get(key);
      if (prev) Object.assign(prev, { count: prev.count + 1, lastTs: ts, topic: m.topic, message: m.message });
      else malformed.set(key, { ...m, count: 1, firstTs: ts, lastTs: ts });
    };
    const frames: FrameRow[] = [];
    const labels: LabelRow[] = [];
    for (const { c } of items) {
      if (c.kind === 'result') results.push(c);
      else if (c.kind === 'message') messages.push(c);
      else if (c.kind === 'frame') frames.push(c.row);
      else if (c.kind === 'label') labels.push(c.row);
      else addBad(c.malformed, Date.now());
    }
    await this.ensureDays(results.map((r) => r.row.captureTs), false);
    const storeRows = async (rs: typeof results, ms: typeof messages, retried = false): Promise<void> => {
      try {
        const [newResults, newMessages] = [await insertResults(this.db, rs.map((r) => r.row)), await insertMessages(this.db, ms.map((m) => m.row))];
        for (const r of rs) {
          const k = resultKey(r.row.device, r.row.seqEpoch, r.row.seq);
          if (newResults.delete(k)) out.results.push(r.value); // delete: a repeat inside the batch counts once
          else out.duplicates++;
        }
        for (const m of ms) if (newMessages.delete(messageKey(m.row.device, m.row.kind, m.row.digest))) out.messages.push({ kind: m.row.kind, value: m.value, receivedTs: m.row.receivedTs });
      } catch (e) {
        // No partition for a row: another recorder's retention dropped its day meanwhile.
        if ((e as { code?: unknown }).code === '23514' && !retried) {
          await this.ensureDays(rs.map((r) => r.row.captureTs), true);
          return storeRows(rs, ms, true);
        }
        if (!isDataError(e)) throw e;
        const n = rs.length + ms.length;
        if (n === 1) {
          const what = rs[0] ? { device: rs[0].row.device, kind: 'result' } : { device: ms[0]!.row.device, kind: ms[0]!.row.kind };
          addBad({ ...what, code: 'UNSTORABLE', topic: '', message: `the database refused the payload: ${(e as Error).message}` }, Date.now());
          return;
        }
        // Halve results first, then messages.
        if (rs.length > 1 || (rs.length === 1 && ms.length > 0)) {
          const h = Math.ceil(rs.length / 2);
          await storeRows(rs.slice(0, h), []);
          await storeRows(rs.slice(h), ms);
        } else {
          const h = Math.ceil(ms.length / 2);
          await storeRows([], ms.slice(0, h));
          await storeRows([], ms.slice(h));
        }
      }
    };
    await storeRows(results, messages);
    await this.storeLoop(frames, labels, out, addBad);
    if (out.results.length > 0 || out.labels.length > 0) await resolveLabels(this.db);
    out.malformed = [...malformed.values()];
    await addMalformed(this.db, out.malformed);
  }
}
