// The recorder's SQL schema, as ordered migrations (the same for PGlite and a PostgreSQL server,
// PostgreSQL ≥ 14 for date_bin). Everything lives in the schema `edgeprompt`, so a shared
// database keeps its other tables apart. Applied under an advisory lock, in one transaction, so
// several recorders starting together against one server migrate once. A database migrated by a
// newer edgeprompt is refused (SCHEMA_TOO_NEW) rather than written with old assumptions.
//
// Times are timestamptz. `received_ts` is the recorder's clock; every other time is the device's.

import type { Db } from './db.ts';
import { RecorderError } from './errors.ts';

export interface Migration {
  version: number;
  name: string;
  statements: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'results, sequences, camera counts, device messages, malformed messages, actions',
    statements: [
      // One row per result, partitioned by UTC day of capture (edgeprompt.results_YYYYMMDD, made
      // on demand by ensureDays): retention drops whole days, which gives the disk back at once.
      // The key makes a redelivered result (QoS 1 is at-least-once) a no-op; it holds capture_ts
      // because a partitioned table's keys must, and a redelivery carries the same capture_ts.
      `CREATE TABLE edgeprompt.results (
        device text NOT NULL, seq_epoch text NOT NULL, seq bigint NOT NULL,
        camera text NOT NULL, frame_id text NOT NULL, trigger_id text,
        capture_ts timestamptz NOT NULL, publish_ts timestamptz NOT NULL, received_ts timestamptz NOT NULL,
        model_name text NOT NULL, model_version text NOT NULL, model_sha256 text NOT NULL,
        prompt_name text, prompt_version text, prompt_sha256 text,
        label text NOT NULL, score real NOT NULL, decision text NOT NULL CHECK (decision IN ('OK', 'NG')),
        infer_ms real NOT NULL, total_ms real NOT NULL,
        top_k jsonb NOT NULL, latency jsonb NOT NULL,
        PRIMARY KEY (device, seq_epoch, seq, capture_ts)) PARTITION BY RANGE (capture_ts)`,
      `CREATE INDEX results_by_camera ON edgeprompt.results (device, camera, capture_ts)`,
      // Per result partition: its rows and when the newest arrived (age retention reads this, not
      // capture time, so a device whose clock says 1970 does not lose today's results).
      `CREATE TABLE edgeprompt.result_days (
        day date PRIMARY KEY, rows bigint NOT NULL, last_received_ts timestamptz NOT NULL)`,
      // Per device, sequence epoch and capture day: the stored span and count. A device's missing
      // results = span of all its days - stored; dropping a day drops its rows here too.
      `CREATE TABLE edgeprompt.sequences (
        device text NOT NULL, seq_epoch text NOT NULL, day date NOT NULL,
        min_seq bigint NOT NULL, max_seq bigint NOT NULL, stored bigint NOT NULL,
        first_ts timestamptz NOT NULL, last_ts timestamptz NOT NULL,
        PRIMARY KEY (device, seq_epoch, day))`,
      // OK/NG per camera and 15-minute bucket of capture time: yields per hour and per shift
      // (shift boundaries on quarter hours) without scanning results.
      `CREATE TABLE edgeprompt.camera_counts (
        device text NOT NULL, camera text NOT NULL, bucket timestamptz NOT NULL,
        ok integer NOT NULL, ng integer NOT NULL, last_ts timestamptz NOT NULL,
        PRIMARY KEY (device, camera, bucket))`,
      // status, state, health, event (and later deploy) payloads as received; `digest` (sha1 of
      // the bytes) makes a redelivery, or a retained message seen again on reconnect, a no-op.
      `CREATE TABLE edgeprompt.messages (
        device text NOT NULL, kind text NOT NULL, ts timestamptz NOT NULL, received_ts timestamptz NOT NULL,
        digest text NOT NULL, payload jsonb NOT NULL,
        PRIMARY KEY (device, kind, digest))`,
      `CREATE INDEX messages_by_time ON edgeprompt.messages (device, kind, ts)`,
      `CREATE INDEX messages_by_received ON edgeprompt.messages USING brin (received_ts)`,
      // The newest message of each kind per device, in broker order (receive time): the fleet view.
      `CREATE TABLE edgeprompt.device_latest (
        device text NOT NULL, kind text NOT NULL, ts timestamptz NOT NULL, received_ts timestamptz NOT NULL,
        payload jsonb NOT NULL,
        PRIMARY KEY (device, kind))`,
      // Messages that were not JSON or failed their schema, counted per device, kind and code.
      `CREATE TABLE edgeprompt.malformed (
        device text NOT NULL, kind text NOT NULL, code text NOT NULL,
        count bigint NOT NULL, first_ts timestamptz NOT NULL, last_ts timestamptz NOT NULL,
        last_topic text NOT NULL, last_message text NOT NULL,
        PRIMARY KEY (device, kind, code))`,
      // Commands sent from the dashboard and the device's reply: who changed what, when.
      `CREATE TABLE edgeprompt.actions (
        id bigserial PRIMARY KEY, ts timestamptz NOT NULL, user_name text NOT NULL, role text NOT NULL,
        device text NOT NULL, command text NOT NULL, args jsonb NOT NULL,
        ok boolean NOT NULL, reply jsonb NOT NULL)`,
      `CREATE INDEX actions_by_time ON edgeprompt.actions (ts)`,
    ],
  },
  {
    version: 2,
    name: 'the data loop: kept frames and labels (docs/data-loop.md)',
    statements: [
      // One row per kept frame, keyed by its result (a result has one frame): a redelivery is a
      // no-op. The image as the device encoded it; the header (with the whole result) as jsonb.
      `CREATE TABLE edgeprompt.frames (
        device text NOT NULL, seq_epoch text NOT NULL, seq bigint NOT NULL,
        camera text NOT NULL, trigger_id text, capture_ts timestamptz NOT NULL, kept_ts timestamptz NOT NULL, received_ts timestamptz NOT NULL,
        reasons text[] NOT NULL, release integer NOT NULL,
        model_name text NOT NULL, model_version text NOT NULL, model_sha256 text NOT NULL,
        label text NOT NULL, score real NOT NULL, ok_score real, threshold real NOT NULL, decision text NOT NULL CHECK (decision IN ('OK', 'NG')),
        content_type text NOT NULL, width integer NOT NULL, height integer NOT NULL, image bytea NOT NULL,
        header jsonb NOT NULL,
        PRIMARY KEY (device, seq_epoch, seq))`,
      `CREATE INDEX frames_by_kept ON edgeprompt.frames (kept_ts)`,
      `CREATE INDEX frames_by_camera ON edgeprompt.frames (device, camera, kept_ts)`,
      // Ground truth: one row per label (the device's UUID, or the dashboard's for a review), so a
      // redelivery is a no-op and a result's history is every row naming it. seq is null until the
      // label is resolved to a result (a PLC label for a trigger id the device no longer held).
      `CREATE TABLE edgeprompt.labels (
        label_id uuid PRIMARY KEY,
        device text NOT NULL, camera text, seq_epoch text, seq bigint, trigger_id text,
        ts timestamptz NOT NULL, received_ts timestamptz NOT NULL,
        decision text NOT NULL CHECK (decision IN ('OK', 'NG')), class text,
        source text NOT NULL, by_name text, frame_kept boolean NOT NULL)`,
      `CREATE INDEX labels_by_result ON edgeprompt.labels (device, seq_epoch, seq, ts)`,
      `CREATE INDEX labels_unresolved ON edgeprompt.labels (device, camera, trigger_id) WHERE seq IS NULL`,
      `CREATE INDEX results_by_trigger ON edgeprompt.results (device, camera, trigger_id, capture_ts) WHERE trigger_id IS NOT NULL`,
    ],
  },
];

/** An arbitrary constant: the advisory lock that serialises migrations across recorders. */
const LOCK_KEY = 0x6570_7265_636f; // "eprec"

/** Brings the schema up to date; returns the versions applied now (empty when current). */
export async function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  return db.transaction(async (q) => {
    await q.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await q.query('CREATE SCHEMA IF NOT EXISTS edgeprompt');
    await q.query(`CREATE TABLE IF NOT EXISTS edgeprompt.schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_ts timestamptz NOT NULL DEFAULT now())`);
    const [row] = await q.query<{ v: number | null }>('SELECT max(version) AS v FROM edgeprompt.schema_migrations');
    const current = row?.v ?? 0;
    const known = migrations.at(-1)?.version ?? 0;
    if (current > known) {
      throw new RecorderError(
        'SCHEMA_TOO_NEW',
        `the database at ${db.where} has recorder schema version ${current}, newer than this edgeprompt knows (${known}); upgrade edgeprompt, or use another --db`,
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= current) continue;
      for (const s of m.statements) await q.query(s);
      await q.query('INSERT INTO edgeprompt.schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    return applied;
  });
}
