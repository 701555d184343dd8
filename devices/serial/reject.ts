// The reject schedule, one for every reject output: the PLC handshake's (plc.ts, per trigger) and
// the free-running camera's reject line (runtime/pipeline/sinks.ts, per NG frame). Rules
// (docs/serial-protocol.md "Reject output and deadlines"):
//
//   due = capture time + delayMs           (conveyor travel from the camera to the gate)
//   at the due time: decided NG → fire; decided OK → nothing;
//                    undecided  → the deadline is missed: counted, and with
//                                 onMissedDeadline 'fire' (default) fired anyway (fail-safe),
//                                 with 'skip' the part passes.
//
// A decision that comes after the due time is a missed deadline too (counted, fail-safe fired at
// once): that is how a free-running camera's late NG frame, known only once decided, is handled,
// and it closes the window between the due time and its timer running.

export interface RejectPolicy {
  /** Capture → reject gate travel time (ms). */
  delayMs: number;
  /** No decision by the due time: reject anyway (default, fail-safe) or let the part pass. */
  onMissedDeadline: 'fire' | 'skip';
}

export interface RejectCounters {
  rejectsFired: number;
  deadlineMissed: number;
}

export interface RejectHandlers<K extends object> {
  /** Write the reject for `key` now. `failSafe`: fired for a missed deadline, not for a decided NG. */
  fire(key: K, e: { dueTs: number; failSafe: boolean }): void;
  /** The deadline of `key` passed without a decision (called before any fail-safe fire). */
  missed?(key: K, e: { dueTs: number }): void;
}

interface Entry {
  dueTs: number;
  /** null: undecided; true: reject; false never stays (an OK cancels). */
  reject: boolean | null;
  timer: NodeJS.Timeout;
}

/** Keys are objects compared by identity: each part its own (a PLC job, a pipeline result). */
export class RejectScheduler<K extends object> {
  readonly counters: RejectCounters = { rejectsFired: 0, deadlineMissed: 0 };
  private readonly entries = new Map<K, Entry>();
  /** Keys already settled (fired, passed or missed): a late arm() or decide() for them does nothing. */
  private readonly settled = new WeakSet<K>();

  constructor(
    private readonly policy: RejectPolicy,
    private readonly on: RejectHandlers<K>,
  ) {}

  /** Parts armed and not yet settled. */
  get pending(): number {
    return this.entries.size;
  }

  /**
   * Arms (or re-arms, e.g. trigger time first, then the capture time once known) the reject of
   * `key` for `fromTs + delayMs`. A settled key is left alone.
   */
  arm(key: K, fromTs: number): void {
    if (this.settled.has(key)) return;
    const old = this.entries.get(key);
    clearTimeout(old?.timer);
    const dueTs = fromTs + this.policy.delayMs;
    const timer = setTimeout(() => this.due(key), Math.max(0, dueTs - Date.now()));
    this.entries.set(key, { dueTs, reject: old?.reject ?? null, timer });
  }

  /**
   * The decision for an armed key: `reject` true (NG) fires at the due time, false (OK) cancels.
   * Returns false when the decision came after the due time (a missed deadline) or the key is not
   * armed.
   */
  decide(key: K, reject: boolean): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    if (Date.now() > e.dueTs) {
      this.due(key);
      return false;
    }
    if (!reject) {
      this.settle(key, e);
      return true;
    }
    e.reject = true;
    return true;
  }

  /** Forgets every armed key without firing (the link went down, or the output stops). */
  clear(): void {
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
  }

  private due(key: K): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.settle(key, e);
    if (e.reject === true) return this.fire(key, e.dueTs, false);
    this.counters.deadlineMissed++;
    this.on.missed?.(key, { dueTs: e.dueTs });
    if (this.policy.onMissedDeadline === 'fire') this.fire(key, e.dueTs, true);
  }

  private fire(key: K, dueTs: number, failSafe: boolean): void {
    this.counters.rejectsFired++;
    this.on.fire(key, { dueTs, failSafe });
  }

  private settle(key: K, e: Entry): void {
    clearTimeout(e.timer);
    this.entries.delete(key);
    this.settled.add(key);
  }
}
