// What the recorder writes, one statement per kind of batch (so a batch is stored whole or not at
// all, and a retry after a crash or a lost connection is a no-op for the rows already there).
//
// The validated payload's own JSON text goes to PostgreSQL, which takes the columns apart
// (`jsonb_array_elements`): the recorder parses each message once (zod) and never serialises it
// again. A results batch also maintains, in the same statement, the per-sequence span and count
// (gaps) and the per-camera OK/NG counts per 15 minutes (yields), from the rows actually inserted
// (RETURNING), so a redelivery counts nothing twice.

import type { Db, Queryable } from './db.ts';

/** A result that passed ResultPayload, with the exact text it was parsed from. */
export interface ResultRow {
  device: string;
  /** Capture time, ms: picks the partition. */
  captureTs: number;
  seqEpoch: string;
  seq: number;
  /** The payload's JSON text (validated). */
  json: string;
  receivedTs: number;
}

export type MessageKind = 'status' | 'state' | 'health' | 'event' | 'deploy';

export interface MessageRow {
  device: string;
  kind: MessageKind;
  /** The payload's own time (device clock), ms. */
  ts: number;
  receivedTs: number;
  /** sha1 of the payload bytes, hex. */
  digest: string;
  json: string;
}

export interface MalformedRow {
  /** '' when the topic did not name one. */
  device: string;
  kind: string;
  code: string;
  topic: string;
  message: string;
  count: number;
  firstTs: number;
  lastTs: number;
}

export interface ActionRow {
  ts: number;
  user: string;
  role: string;
  device: string;
  command: string;
  args: unknown;
  ok: boolean;
  reply: unknown;
}

const INSERT_RESULTS = `
WITH batch AS (
  SELECT e->'r' AS r, to_timestamp((e->>'t')::float8 / 1000) AS received_ts FROM jsonb_array_elements($1::jsonb) e
), ins AS (
  INSERT INTO edgeprompt.results (device, seq_epoch, seq, camera, frame_id, trigger_id, capture_ts, publish_ts, received_ts,
    model_name, model_version, model_sha256, prompt_name, prompt_version, prompt_sha256,
    label, score, decision, infer_ms, total_ms, top_k, latency)
  SELECT r->>'device', r->>'seqEpoch', (r->>'seq')::bigint, r->>'camera', r->>'frameId', r->>'triggerId',
    to_timestamp((r->>'captureTs')::float8 / 1000), to_timestamp((r->>'publishTs')::float8 / 1000), received_ts,
    r->'model'->>'name', r->'model'->>'version', r->'model'->>'sha256',
    r->'prompt'->>'name', r->'prompt'->>'version', r->'prompt'->>'sha256',
    r->>'label', (r->>'score')::real, r->>'decision',
    (r->'latency'->>'inferMs')::real, (r->'latency'->>'totalMs')::real, r->'topK', r->'latency'
  FROM batch
  ON CONFLICT DO NOTHING
  RETURNING device, seq_epoch, seq, camera, decision, capture_ts, received_ts
), seqs AS (
  INSERT INTO edgeprompt.sequences AS s (device, seq_epoch, day, min_seq, max_seq, stored, first_ts, last_ts)
  SELECT device, seq_epoch, (capture_ts AT TIME ZONE 'UTC')::date, min(seq), max(seq), count(*), min(received_ts), max(received_ts)
  FROM ins GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (device, seq_epoch, day) DO UPDATE SET
    min_seq = least(s.min_seq, excluded.min_seq), max_seq = greatest(s.max_seq, excluded.max_seq),
    stored = s.stored + excluded.stored, last_ts = greatest(s.last_ts, excluded.last_ts)
), days AS (
  INSERT INTO edgeprompt.result_days AS d (day, rows, last_received_ts)
  SELECT (capture_ts AT TIME ZONE 'UTC')::date, count(*), max(received_ts) FROM ins GROUP BY 1 ORDER BY 1
  ON CONFLICT (day) DO UPDATE SET rows = d.rows + excluded.rows, last_received_ts = greatest(d.last_received_ts, excluded.last_received_ts)
), counts AS (
  INSERT INTO edgeprompt.camera_counts AS c (device, camera, bucket, ok, ng, last_ts)
  SELECT device, camera, date_bin('15 minutes', capture_ts, timestamptz '2000-01-01 00:00:00+00'),
    count(*) FILTER (WHERE decision = 'OK'), count(*) FILTER (WHERE decision = 'NG'), max(capture_ts)
  FROM ins GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (device, camera, bucket) DO UPDATE SET
    ok = c.ok + excluded.ok, ng = c.ng + excluded.ng, last_ts = greatest(c.last_ts, excluded.last_ts)
)
SELECT device, seq_epoch, seq FROM ins`;

const INSERT_MESSAGES = `
WITH batch AS (
  SELECT e->>'d' AS device, e->>'k' AS kind, to_timestamp((e->>'ts')::float8 / 1000) AS ts,
    to_timestamp((e->>'t')::float8 / 1000) AS received_ts, e->>'h' AS digest, e->'p' AS payload
  FROM jsonb_array_elements($1::jsonb) e
), ins AS (
  INSERT INTO edgeprompt.messages (device, kind, ts, received_ts, digest, payload)
  SELECT device, kind, ts, received_ts, digest, payload FROM batch
  ON CONFLICT DO NOTHING
  RETURNING device, kind, ts, received_ts, payload, digest
), latest AS (
  INSERT INTO edgeprompt.device_latest AS l (device, kind, ts, received_ts, payload)
  SELECT DISTINCT ON (device, kind) device, kind, ts, received_ts, payload FROM ins
  ORDER BY device, kind, received_ts DESC
  ON CONFLICT (device, kind) DO UPDATE SET ts = excluded.ts, received_ts = excluded.received_ts, payload = excluded.payload
  WHERE excluded.received_ts >= l.received_ts
)
SELECT device, kind, digest FROM ins`;

const INSERT_MALFORMED = `
INSERT INTO edgeprompt.malformed AS m (device, kind, code, count, first_ts, last_ts, last_topic, last_message)
SELECT device, kind, code, count, to_timestamp(first_ms / 1000), to_timestamp(last_ms / 1000), topic, message
FROM jsonb_to_recordset($1::jsonb) AS x(device text, kind text, code text, count bigint, first_ms float8, last_ms float8, topic text, message text)
ORDER BY 1, 2, 3
ON CONFLICT (device, kind, code) DO UPDATE SET
  count = m.count + excluded.count, last_ts = greatest(m.last_ts, excluded.last_ts),
  last_topic = excluded.last_topic, last_message = excluded.last_message`;

/** UTC day of a capture time, as the partition suffix: 20261207. */
export const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');

const LOCK_PARTITIONS = 0x6570_7061_7274; // "epart": one recorder at a time creates a day's table

/** Creates the results partitions for these UTC days (YYYYMMDD) unless they exist. */
export async function ensureDays(db: Db, days: Iterable<string>): Promise<void> {
  const list = [...days];
  if (list.length === 0) return;
  await db.transaction(async (q) => {
    await q.query('SELECT pg_advisory_xact_lock($1)', [LOCK_PARTITIONS]);
    for (const day of list) {
      if (!/^\d{8}$/.test(day)) throw new Error(`bad partition day ${day}`);
      const from = `${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6, 8)}`;
      const to = new Date(Date.parse(`${from}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
      await q.query(`CREATE TABLE IF NOT EXISTS edgeprompt.results_${day} PARTITION OF edgeprompt.results FOR VALUES FROM ('${from} 00:00:00+00') TO ('${to} 00:00:00+00')`);
    }
  });
}

/** The UTC days that have a results partition. */
export async function existingDays(q: Queryable): Promise<Set<string>> {
  const rows = await q.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'edgeprompt.results'::regclass`,
  );
  return new Set(rows.map((r) => r.name.replace(/^results_/, '')));
}

export const resultKey = (device: string, seqEpoch: string, seq: number) => `${device}\u0000${seqEpoch}\u0000${seq}`;

/** Inserts results; resolves with the keys (resultKey) of the rows that were new. */
export async function insertResults(q: Queryable, rows: readonly ResultRow[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const json = '[' + rows.map((r) => `{"t":${r.receivedTs},"r":${r.json}}`).join(',') + ']';
  const out = await q.query<{ device: string; seq_epoch: string; seq: number }>(INSERT_RESULTS, [json]);
  return new Set(out.map((r) => resultKey(r.device, r.seq_epoch, r.seq)));
}

export const messageKey = (device: string, kind: string, digest: string) => `${device}\u0000${kind}\u0000${digest}`;

/** Inserts status/state/health/event/deploy messages; resolves with the keys (messageKey) that were new. */
export async function insertMessages(q: Queryable, rows: readonly MessageRow[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const json =
    '[' +
    rows.map((r) => `{"d":${JSON.stringify(r.device)},"k":"${r.kind}","ts":${r.ts},"t":${r.receivedTs},"h":"${r.digest}","p":${r.json}}`).join(',') +
    ']';
  const out = await q.query<{ device: string; kind: string; digest: string }>(INSERT_MESSAGES, [json]);
  return new Set(out.map((r) => messageKey(r.device, r.kind, r.digest)));
}

export async function addMalformed(q: Queryable, rows: readonly MalformedRow[]): Promise<void> {
  if (rows.length === 0) return;
  const json = JSON.stringify(
    rows.map((r) => ({ device: r.device, kind: r.kind, code: r.code, count: r.count, first_ms: r.firstTs, last_ms: r.lastTs, topic: r.topic, message: r.message.slice(0, 1000) })),
  );
  await q.query(INSERT_MALFORMED, [json]);
}

export async function insertAction(q: Queryable, a: ActionRow): Promise<void> {
  await q.query(
    `INSERT INTO edgeprompt.actions (ts, user_name, role, device, command, args, ok, reply)
     VALUES (to_timestamp($1::float8 / 1000), $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb)`,
    [a.ts, a.user, a.role, a.device, a.command, JSON.stringify(a.args ?? {}), a.ok, JSON.stringify(a.reply ?? null)],
  );
}
