// Exponential backoff shared by camera restarts and serial reconnects. Deterministic unless
// `jitter` > 0; tests inject `random` when they want jitter and still need repeatable delays.

export interface BackoffOptions {
  /** Delay before the first retry. */
  initialMs: number;
  /** Growth per attempt. */
  factor: number;
  /** Upper bound for any single delay. */
  maxMs: number;
  /** 0..1: the delay is scaled by a factor drawn from [1 - jitter, 1]. 0 (default) = exact. */
  jitter?: number;
  random?: () => number;
}

/** Delay before retry number `attempt` (0-based): initial × factor^attempt, capped at maxMs. */
export function backoffDelay(attempt: number, o: BackoffOptions): number {
  const raw = o.initialMs * Math.pow(o.factor, Math.max(0, attempt));
  const capped = Math.min(o.maxMs, raw);
  const jitter = o.jitter ?? 0;
  if (jitter <= 0) return Math.round(capped);
  const r = (o.random ?? Math.random)();
  return Math.round(capped * (1 - jitter * r));
}
