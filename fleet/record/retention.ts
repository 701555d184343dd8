// Retention by age and by size. Results live in one partition per UTC day of capture, so both
// drop whole days (the disk space comes back at once, no table rewrite):
// - age: a day whose newest result arrived more than `maxAgeDays` ago (arrival, not capture, so
//   a device with an unset clock does not lose what it sends today);
// - size: while the recorder's tables (indexes included) exceed `maxBytes`, the day that received
//   its last result longest ago. Today's partition (UTC) is never dropped.
// Device messages (status, state, health, events), kept frames and labels, malformed counts and the action log are deleted
// row by row past the age limit, and past the newest dropped day when trimming for size; the
// per-camera OK/NG counts follow the age limit only (they are small, and yields outlive results).
// Several recorders on one server may all run this: each step is idempotent.

import type { Db } from './db.ts';

export interface RetentionOptions {
  /** Keep results received within this many days; null = no age limit. */
  maxAgeDays: number | null;
  /** Keep the recorder's tables under this many bytes; null = no size limit. */
  maxBytes: number | null;
}

export interface RetentionReport {
  droppedDays: string[];
  deletedMessages: number;
  sizeBytes: number;
}

const DAY_MS = 86_400_000;
const LOCK_PARTITIONS = 0x6570_7061_7274; // the same lock ensureDays takes (store.ts)
const CHUNK = 10_000;

export async function tablesSize(db: Db): Promise<number> {
  const [r] = await db.query<{ bytes: number }>(
    `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::float8 AS bytes
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'edgeprompt' AND c.relkind = 'r'`,
  );
  return r?.bytes ?? 0;
}

interface Day {
  day: string; // YYYYMMDD
  lastMs: number;
}

async function listDays(db: Db): Promise<Day[]> {
  // Partitions with no bookkeeping row (made, then every insert failed) count as never received.
  const rows = await db.query<{ name: string; last_ms: number | null }>(
    `SELECT c.relname AS name, (extract(epoch FROM d.last_received_ts) * 1000)::float8 AS last_ms
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     LEFT JOIN edgeprompt.result_days d ON to_char(d.day, 'YYYYMMDD') = substr(c.relname, 9)
     WHERE i.inhparent = 'edgeprompt.results'::regclass`,
  );
  return rows.map((r) => ({ day: r.name.replace(/^results_/, ''), lastMs: r.last_ms ?? 0 })).sort((a, b) => a.lastMs - b.lastMs);
}

async function dropDay(db: Db, day: string): Promise<void> {
  if (!/^\d{8}$/.test(day)) throw new Error(`bad partition day ${day}`);
  const date = `${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6, 8)}`;
  await db.transaction(async (q) => {
    await q.query('SELECT pg_advisory_xact_lock($1)', [LOCK_PARTITIONS]);
    await q.query(`DROP TABLE IF EXISTS edgeprompt.results_${day}`);
    await q.query('DELETE FROM edgeprompt.sequences WHERE day = $1::date', [date]);
    await q.query('DELETE FROM edgeprompt.result_days WHERE day = $1::date', [date]);
  });
}

async function deleteInChunks(db: Db, table: string, column: string, beforeMs: number): Promise<number> {
  let total = 0;
  for (;;) {
    const rows = await db.query<{ n: number }>(
      `WITH d AS (DELETE FROM edgeprompt.${table} WHERE ctid IN (
         SELECT ctid FROM edgeprompt.${table} WHERE ${column} < to_timestamp($1::float8 / 1000) LIMIT ${CHUNK}) RETURNING 1)
       SELECT count(*)::int AS n FROM d`,
      [beforeMs],
    );
    const n = rows[0]?.n ?? 0;
    total += n;
    if (n < CHUNK) return total;
  }
}

export async function applyRetention(db: Db, opts: RetentionOptions, now = Date.now()): Promise<RetentionReport> {
  const today = new Date(now).toISOString().slice(0, 10).replaceAll('-', '');
  const dropped: string[] = [];
  let messagesBefore = 0; // delete device messages received before this (ms)
  let days = (await listDays(db)).filter((d) => d.day !== today);
  if (opts.maxAgeDays !== null) {
    const cutoff = now - opts.maxAgeDays * DAY_MS;
    for (const d of days.filter((d) => d.lastMs < cutoff)) {
      await dropDay(db, d.day);
      dropped.push(d.day);
    }
    days = days.filter((d) => d.lastMs >= cutoff);
    messagesBefore = cutoff;
  }
  let size = await tablesSize(db);
  if (opts.maxBytes !== null) {
    while (size > opts.maxBytes && days.length > 0) {
      const d = days.shift()!;
      await dropDay(db, d.day);
      dropped.push(d.day);
      messagesBefore = Math.max(messagesBefore, d.lastMs);
      size = await tablesSize(db);
    }
  }
  let deletedMessages = 0;
  if (messagesBefore > 0) {
    deletedMessages = await deleteInChunks(db, 'messages', 'received_ts', messagesBefore);
    await deleteInChunks(db, 'malformed', 'last_ts', messagesBefore);
    await deleteInChunks(db, 'actions', 'ts', messagesBefore);
    await deleteInChunks(db, 'frames', 'received_ts', messagesBefore);
    await deleteInChunks(db, 'labels', 'received_ts', messagesBefore);
  }
  if (opts.maxAgeDays !== null) await deleteInChunks(db, 'camera_counts', 'last_ts', now - opts.maxAgeDays * DAY_MS);
  // Deleted rows' space becomes reusable. The embedded database also checkpoints here: PGlite
  // has no checkpointer process, so between these its WAL grows until max_wal_size (1 GB).
  // (No ANALYZE: it would hold PGlite's one connection for seconds on a big table, and the
  // dashboard's queries are index scans that need no statistics.)
  if (deletedMessages > 0) await db.exec('VACUUM edgeprompt.messages');
  if (db.kind === 'pglite') await db.exec('CHECKPOINT');
  if (dropped.length > 0 || deletedMessages > 0) size = await tablesSize(db);
  return { droppedDays: dropped, deletedMessages, sizeBytes: size };
}
