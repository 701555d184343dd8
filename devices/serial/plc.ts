// The PLC handshake state machine (docs/serial-protocol.md), written against SerialLink only.
//
//   PLC: TRIG <id>  →  device: READY <id>            (the frame for this trigger is captured)
//                      device: RESULT <id> OK|NG <class> <score> [E<code>]
//   PLC: ACK <id>   →  done (RESULT is resent up to resultRetries times until ACKed)
//
// Fail-safe: every way of not knowing (no frame, no decision in time, inference error, too late
// to reject, busy, shutdown) is an NG with an error code, never a silent OK. The reject output
// fires `reject.delayMs` after the frame's capture time (conveyor distance); a trigger still
// without a decision at that moment counts as a missed deadline and, by default, is rejected
// anyway (the schedule is reject.ts, shared with the free-running reject line). The inference
// pipeline reports through frameCaptured() and complete().

import { EventEmitter } from 'node:events';
import type { BackoffOptions } from '../backoff.ts';
import { errorInfo, type ErrorInfo } from '../errors.ts';
import { KeepOpen } from './keep-open.ts';
import type { SerialLink } from './link.ts';
import { formatErr, formatLabeled, formatReady, formatReject, formatResult, parsePlcLine, PLC_ERRORS, type GarbageReason, type PlcErrorName, type Verdict } from './protocol.ts';
import { RejectScheduler, type RejectPolicy } from './reject.ts';

/** What the pipeline decided for a trigger. */
export type Decision =
  | { kind: 'ok' | 'ng'; label: string; score: number; captureTs?: number }
  | { kind: 'error'; code: 'INFERENCE_FAILED' | 'CAMERA_DOWN' | 'INTERNAL'; label?: string; score?: number; captureTs?: number };

/** The reject output: timing and fail-safe as every reject output has them (reject.ts), and the line. */
export interface RejectOptions extends Pick<RejectPolicy, 'delayMs'>, Partial<Pick<RejectPolicy, 'onMissedDeadline'>> {
  /** The output line; `{id}` is replaced by the trigger id. Default 'REJECT {id}'. */
  line?: string;
}

export interface PlcOptions {
  /** 'capture' (default): READY once the trigger's frame is captured (the part may move on). 'trigger': at once. */
  readyOn?: 'capture' | 'trigger';
  captureTimeoutMs?: number;
  resultTimeoutMs?: number;
  ackTimeoutMs?: number;
  resultRetries?: number;
  maxPending?: number;
  reject?: RejectOptions;
  reconnect?: Partial<BackoffOptions>;
}

export interface PlcCounters {
  triggers: number;
  ok: number;
  ng: number;
  errors: Record<PlcErrorName, number>;
  garbage: number;
  rejectsFired: number;
  deadlineMissed: number;
  resends: number;
  ackMissed: number;
  /** complete() calls for triggers already answered (e.g. after a timeout) or unknown. */
  lateDecisions: number;
  /** Triggers in flight when the link went down (nobody left to answer). */
  droppedOnDisconnect: number;
  writeFailures: number;
  /** LABEL lines taken (answered LABELED). */
  labels: number;
}

/** A LABEL line: the line's truth for the part `id` (docs/serial-protocol.md "Ground truth"). */
export interface PlcLabel {
  id: string;
  verdict: 'OK' | 'NG';
  /** The class token the PLC sent, or null. */
  label: string | null;
  ts: number;
}

/** Stores a label durably; the device answers LABELED once it resolves, `ERR label_failed` if it rejects. */
export type PlcLabelHandler = (l: PlcLabel) => Promise<unknown>;

export interface PlcEvents {
  trigger: [e: { id: string; ts: number }];
  /** The trigger no longer wants a frame (answered without one, or dropped). */
  cancel: [e: { id: string; reason: string }];
  result: [e: { id: string; line: string; verdict: Verdict; ts: number }];
  reject: [e: { id: string; ts: number; dueTs: number; failSafe: boolean }];
  deadline_missed: [e: { id: string; dueTs: number }];
  ack: [e: { id: string; ts: number }];
  ack_missed: [e: { id: string }];
  label: [e: PlcLabel];
  garbage: [e: { line: string; reason: GarbageReason }];
  link: [e: { up: boolean; error?: ErrorInfo }];
}

interface Job {
  id: string;
  captureTs: number | null;
  readySent: boolean;
  verdict: Verdict | null;
  resultLine: string | null;
  sends: number;
  missedDeadline: boolean;
  timers: { capture?: NodeJS.Timeout; result?: NodeJS.Timeout; ack?: NodeJS.Timeout };
}

const zeroErrors = (): Record<PlcErrorName, number> => Object.fromEntries(Object.keys(PLC_ERRORS).map((k) => [k, 0])) as Record<PlcErrorName, number>;

export class PlcHandshake extends EventEmitter<PlcEvents> {
  private readonly o: Required<Omit<PlcOptions, 'reject' | 'reconnect'>> & { reject: Required<RejectOptions> | null };
  private readonly keep: KeepOpen;
  private readonly jobs = new Map<string, Job>();
  /** The reject schedule (null without a reject output); a job stays in it after its ACK. */
  private readonly rejects: RejectScheduler<Job> | null;
  private readonly c: Omit<PlcCounters, 'rejectsFired' | 'deadlineMissed'> = {
    triggers: 0, ok: 0, ng: 0, errors: zeroErrors(), garbage: 0,
    resends: 0, ackMissed: 0, lateDecisions: 0, droppedOnDisconnect: 0, writeFailures: 0, labels: 0,
  };
  private labelHandler: PlcLabelHandler | null = null;

  constructor(
    readonly link: SerialLink,
    options: PlcOptions = {},
  ) {
    super();
    this.o = {
      readyOn: options.readyOn ?? 'capture',
      captureTimeoutMs: options.captureTimeoutMs ?? 1000,
      resultTimeoutMs: options.resultTimeoutMs ?? 2000,
      ackTimeoutMs: options.ackTimeoutMs ?? 500,
      resultRetries: options.resultRetries ?? 2,
      maxPending: options.maxPending ?? 16,
      reject: options.reject ? { line: 'REJECT {id}', onMissedDeadline: 'fire', ...options.reject } : null,
    };
    const r = this.o.reject;
    this.rejects =
      r === null
        ? null
        : new RejectScheduler<Job>(r, {
            fire: (job, e) => {
              void this.send(formatReject(r.line, job.id));
              this.emit('reject', { id: job.id, ts: Date.now(), dueTs: e.dueTs, failSafe: e.failSafe });
            },
            missed: (job, e) => {
              job.missedDeadline = true;
              this.emit('deadline_missed', { id: job.id, dueTs: e.dueTs });
            },
          });
    this.keep = new KeepOpen(link, options.reconnect);
    this.keep.on('up', () => this.emit('link', { up: true }));
    this.keep.on('down', (err) => this.linkLost(err));
    link.on('line', (l) => this.onLine(l));
    link.on('overflow', () => this.garbage('(over-long line)', 'line_too_long'));
  }

  /** Who stores LABEL lines (the device's keeper); without one they are answered `ERR labels_off <id>`. */
  setLabelHandler(h: PlcLabelHandler | null): void {
    this.labelHandler = h;
  }

  /** Opens the link (retrying in the background while the port is missing). Never rejects. */
  start(): Promise<void> {
    return this.keep.start();
  }

  /** Answers every undecided trigger with NG E6, then closes the link. */
  async stop(): Promise<void> {
    const writes: Promise<void>[] = [];
    for (const job of this.jobs.values()) if (job.verdict === null) writes.push(this.finalize(job, { verdict: 'NG', label: '-', score: 0, error: 'SHUTDOWN' }));
    await Promise.all(writes);
    this.clearAll();
    await this.keep.stop();
  }

  get linkUp(): boolean {
    return this.link.isOpen;
  }
  /** Triggers not yet acknowledged. */
  get inFlight(): number {
    return this.jobs.size;
  }
  counters(): PlcCounters {
    const r = this.rejects?.counters ?? { rejectsFired: 0, deadlineMissed: 0 };
    return { ...this.c, ...r, errors: { ...this.c.errors } };
  }

  /** The trigger's frame was captured at `captureTs` (ms epoch). Returns false when the trigger is unknown or settled. */
  frameCaptured(id: string, captureTs: number): boolean {
    const job = this.jobs.get(id);
    if (job === undefined || job.verdict !== null || job.captureTs !== null) return false;
    job.captureTs = captureTs;
    clearTimeout(job.timers.capture);
    if (!job.readySent) this.sendReady(job);
    this.rejects?.arm(job, captureTs);
    return true;
  }

  /** The decision for a trigger. Returns false when it came too late to be sent (already answered) or the id is unknown. */
  complete(id: string, d: Decision): boolean {
    const job = this.jobs.get(id);
    if (job === undefined || job.verdict !== null) {
      this.c.lateDecisions++;
      return false;
    }
    if (d.captureTs !== undefined && job.captureTs === null) this.frameCaptured(id, d.captureTs);
    if (!job.readySent) this.sendReady(job);
    this.rejects?.decide(job, d.kind !== 'ok'); // past the due time this marks the deadline missed
    let v: Verdict =
      d.kind === 'error'
        ? { verdict: 'NG', label: d.label ?? '-', score: d.score ?? 0, error: d.code }
        : { verdict: d.kind === 'ok' ? 'OK' : 'NG', label: d.label, score: d.score };
    if (job.missedDeadline) v = { ...v, verdict: 'NG', error: 'LATE' };
    void this.finalize(job, v);
    return true;
  }

  private onLine(line: string): void {
    const p = parsePlcLine(line);
    if (!p.ok) return this.garbage(line, p.reason);
    const c = p.command;
    if (c.cmd === 'PING') return void this.send('PONG');
    if (c.cmd === 'LABEL') return this.label({ id: c.id, verdict: c.verdict, label: c.label, ts: Date.now() }, line);
    if (c.cmd === 'TRIG') {
      if (this.jobs.has(c.id)) return this.garbage(line, 'duplicate_id', c.id);
      return this.trigger(c.id);
    }
    const job = this.jobs.get(c.id);
    if (job === undefined) return this.garbage(line, 'unknown_id', c.id);
    if (job.resultLine === null) return this.garbage(line, 'unexpected_ack', c.id);
    clearTimeout(job.timers.ack);
    this.jobs.delete(job.id); // a pending reject keeps its own reference
    this.emit('ack', { id: job.id, ts: Date.now() });
  }

  private label(l: PlcLabel, line: string): void {
    const h = this.labelHandler;
    if (!h) return this.garbage(line, 'labels_off', l.id);
    h(l).then(
      () => {
        this.c.labels++;
        this.emit('label', l);
        void this.send(formatLabeled(l.id));
      },
      () => void this.send(formatErr('label_failed', l.id)),
    );
  }

  private garbage(line: string, reason: GarbageReason, id?: string): void {
    this.c.garbage++;
    this.emit('garbage', { line, reason });
    void this.send(formatErr(reason, id));
  }

  private trigger(id: string): void {
    const now = Date.now();
    this.c.triggers++;
    const job: Job = { id, captureTs: null, readySent: false, verdict: null, resultLine: null, sends: 0, missedDeadline: false, timers: {} };
    this.jobs.set(id, job);
    this.rejects?.arm(job, now); // until a frame is captured, the trigger time stands in for it
    if (this.undecided() > this.o.maxPending) {
      void this.finalize(job, { verdict: 'NG', label: '-', score: 0, error: 'BUSY' });
      return;
    }
    this.emit('trigger', { id, ts: now });
    if (this.o.readyOn === 'trigger') this.sendReady(job);
    job.timers.capture = setTimeout(() => {
      if (job.captureTs !== null || job.verdict !== null) return;
      void this.finalize(job, { verdict: 'NG', label: '-', score: 0, error: 'CAMERA_DOWN' });
    }, this.o.captureTimeoutMs);
    job.timers.result = setTimeout(() => void this.finalize(job, { verdict: 'NG', label: '-', score: 0, error: 'RESULT_TIMEOUT' }), this.o.resultTimeoutMs);
  }

  private undecided(): number {
    let n = 0;
    for (const j of this.jobs.values()) if (j.verdict === null) n++;
    return n;
  }

  private sendReady(job: Job): void {
    job.readySent = true;
    void this.send(formatReady(job.id));
  }

  private finalize(job: Job, v: Verdict): Promise<void> {
    if (job.verdict !== null) return Promise.resolve();
    job.verdict = v;
    clearTimeout(job.timers.capture);
    clearTimeout(job.timers.result);
    if (v.error !== undefined) this.c.errors[v.error]++;
    if (v.verdict === 'OK') this.c.ok++;
    else this.c.ng++;
    if (job.captureTs === null) this.emit('cancel', { id: job.id, reason: v.error ?? 'answered' });
    // An OK cancels the reject now; an NG fires at its due time (a decision past it was missed).
    this.rejects?.decide(job, v.verdict === 'NG');
    job.resultLine = formatResult(job.id, v);
    this.emit('result', { id: job.id, line: job.resultLine, verdict: v, ts: Date.now() });
    return this.sendResult(job);
  }

  private sendResult(job: Job): Promise<void> {
    job.sends++;
    job.timers.ack = setTimeout(() => {
      if (!this.jobs.has(job.id) || this.jobs.get(job.id) !== job) return;
      if (job.sends <= this.o.resultRetries) {
        this.c.resends++;
        void this.sendResult(job);
        return;
      }
      this.c.ackMissed++;
      this.jobs.delete(job.id);
      this.emit('ack_missed', { id: job.id });
    }, this.o.ackTimeoutMs);
    return this.send(job.resultLine!);
  }

  private async send(line: string): Promise<void> {
    if (!this.link.isOpen) {
      this.c.writeFailures++;
      return;
    }
    try {
      await this.link.writeLine(line);
    } catch {
      this.c.writeFailures++;
    }
  }

  private clearAll(): void {
    for (const job of this.jobs.values()) for (const t of Object.values(job.timers)) clearTimeout(t);
    this.rejects?.clear();
    this.jobs.clear();
  }

  private linkLost(err: Error): void {
    const ids = [...this.jobs.keys()];
    this.c.droppedOnDisconnect += this.jobs.size;
    this.clearAll();
    for (const id of ids) this.emit('cancel', { id, reason: 'link_lost' });
    this.emit('link', { up: false, error: errorInfo(err) });
  }
}
