// What the crash-injection parent (outbox-crash.ts) and child (outbox-crash-child.ts) share.

import type { CrashPoint } from '../../runtime/mqtt/outbox-file.ts';

export interface ChildPlan {
  dir: string;
  seed: number;
  /** hook: SIGKILL at the n-th time `point` is reached; torn: write part of that write, then SIGKILL; none: run until killed from outside. */
  mode: 'hook' | 'torn' | 'none';
  point?: CrashPoint;
  occurrence?: number;
  /** Fraction (0..1) of the bytes a torn write gets to the file. */
  tornFraction?: number;
  maxEntries: number;
  compactMinBytes: number;
  commitDelayMs: number;
}

/** The payload of entry `id`: self-describing, so the parent can tell a damaged entry from a good one. */
export function crashPayload(id: number): Buffer {
  const pad = 20 + ((id * 2654435761) >>> 0) % 600;
  return Buffer.from(JSON.stringify({ id, pad: 'x'.repeat(pad), sum: pad * 31 + id }));
}
export const crashTopic = (id: number) => `edgeprompt/v1/crash/cam${id % 3}/result`;

