// The outbox as the device config names it, and opening the one it names.

import { z } from 'zod';
import type { Log } from '../log.ts';
import { parseOptions } from './connection.ts';
import type { Outbox } from './outbox.ts';
import { openFileOutbox } from './outbox-file.ts';
import { createMemoryOutbox } from './outbox-memory.ts';

/**
 * The outbox as device configuration. The defaults hold about an hour of 30 fps results from one
 * camera (~1 KB each) within 64 MiB; beyond that the oldest are dropped and counted.
 */
export const OutboxConfig = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('file'),
    dir: z.string().min(1),
    maxEntries: z.number().int().min(1).default(100_000),
    maxBytes: z.number().int().min(1).default(64 * 1024 * 1024),
    /** Group commit (docs/mqtt.md): a group holding a put is written once that put has waited this long (ms)... */
    commitDelayMs: z.number().int().min(0).max(1000).default(5),
    /** ...or as soon as this many records wait; a group holds at most this many puts. */
    commitMaxRecords: z.number().int().min(1).default(256),
    /** Acks and drops with no put to ride along with are written after this long (ms). */
    lazyFlushMs: z.number().int().min(0).max(60_000).default(1000),
  }),
  // Survives broker outages, not restarts: for tests and benches.
  z.strictObject({
    kind: z.literal('memory'),
    maxEntries: z.number().int().min(1).default(100_000),
    maxBytes: z.number().int().min(1).default(64 * 1024 * 1024),
  }),
]);
export type OutboxConfig = z.input<typeof OutboxConfig>;

export async function openOutbox(config: OutboxConfig, log?: Pick<Log, 'warn' | 'info'>): Promise<Outbox> {
  const c = parseOptions(OutboxConfig, config, 'outbox');
  if (c.kind === 'memory') return createMemoryOutbox(c);
  return openFileOutbox({ ...c, ...(log && { log }) });
}
