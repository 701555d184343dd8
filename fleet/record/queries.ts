// What the dashboard reads back: the same SQL on PGlite and a server. Times come back as ms since
// the epoch (float8), so callers never meet driver-specific Date or string types.

import type { Queryable } from './db.ts';
import type { ActionRow } from './store.ts';

const ms = (col: string) => `(extract(epoch FROM ${col}) * 1000)::float8`;

export interface LatestMessage {
  device: string;
  kind: string;
  ts: number;
  receivedTs: number;
  payload: unknown;
}

export async function latestMessages(q: Queryable): Promise<LatestMessage[]> {
  return q.query<LatestMessage>(`SELECT device, kind, ${ms('ts')} AS "ts", ${ms('received_ts')} AS "receivedTs", payload FROM edgeprompt.device_latest`);
}

export interface SequenceSummary {
  device: string;
  seqEpoch: string;
  minSeq: number;
  maxSeq: number;
  stored: number;
  /** Seqs between the first and last stored that are not stored. */
  missing: number;
  lastTs: number;
}

/** Per device and sequence epoch (several when a device's outbox started again). */
export async function sequences(q: Queryable): Promise<SequenceSummary[]> {
  const rows = await q.query<Omit<SequenceSummary, 'missing'>>(
    `SELECT device, seq_epoch AS "seqEpoch", min(min_seq) AS "minSeq", max(max_seq) AS "maxSeq", sum(stored)::bigint AS stored, ${ms('max(last_ts)')} AS "lastTs"
     FROM edgeprompt.sequences GROUP BY device, seq_epoch ORDER BY device, max(last_ts)`,
  );
  return rows.map((r) => ({ ...r, missing: Math.max(0, r.maxSeq - r.minSeq + 1 - r.stored) }));
}

export interface GapRange {
  seqEpoch: string;
  from: number;
  to: number;
}

/** Missing seq ranges of one device, newest first (at most `limit`). Reads the device's keys. */
export async function gaps(q: Queryable, device: string, limit = 100): Promise<GapRange[]> {
  return q.query<GapRange>(
    `SELECT seq_epoch AS "seqEpoch", seq + 1 AS "from", next - 1 AS "to" FROM (
       SELECT seq_epoch, seq, lead(seq) OVER (PARTITION BY seq_epoch ORDER BY seq) AS next
       FROM edgeprompt.results WHERE device = $1) x
     WHERE next > seq + 1 ORDER BY "from" DESC LIMIT $2`,
    [device, limit],
  );
}

export interface CountBucket {
  device: string;
  camera: string;
  /** Start of the 15-minute bucket (capture time), ms. */
  bucket: number;
  ok: number;
  ng: number;
  lastTs: number;
}

export async function countBuckets(q: Queryable, sinceMs: number): Promise<CountBucket[]> {
  return q.query<CountBucket>(
    `SELECT device, camera, ${ms('bucket')} AS bucket, ok, ng, ${ms('last_ts')} AS "lastTs"
     FROM edgeprompt.camera_counts WHERE bucket >= to_timestamp($1::float8 / 1000) ORDER BY bucket`,
    [sinceMs],
  );
}

export interface CameraLatest {
  device: string;
  camera: string;
  captureTs: number;
  model: string;
  prompt: string | null;
}

/** Every camera that ever reported, with the model and prompt of its newest result. */
export async function cameraLatest(q: Queryable): Promise<CameraLatest[]> {
  return q.query<CameraLatest>(
    `SELECT c.device, c.camera, ${ms('r.capture_ts')} AS "captureTs", r.model_name || '@' || r.model_version AS model,
       CASE WHEN r.prompt_name IS NULL THEN NULL ELSE r.prompt_name || '@' || r.prompt_version END AS prompt
     FROM (SELECT DISTINCT device, camera FROM edgeprompt.camera_counts) c,
     LATERAL (SELECT capture_ts, model_name, model_version, prompt_name, prompt_version FROM edgeprompt.results r
              WHERE r.device = c.device AND r.camera = c.camera ORDER BY capture_ts DESC LIMIT 1) r`,
  );
}

export interface StoredResult {
  device: string;
  camera: string;
  seq: number;
  seqEpoch: string;
  frameId: string;
  triggerId: string | null;
  captureTs: number;
  publishTs: number;
  receivedTs: number;
  label: string;
  score: number;
  decision: 'OK' | 'NG';
  inferMs: number;
  totalMs: number;
  model: string;
  prompt: string | null;
}

const RESULT_COLUMNS = `device, camera, seq, seq_epoch AS "seqEpoch", frame_id AS "frameId", trigger_id AS "triggerId",
  ${ms('capture_ts')} AS "captureTs", ${ms('publish_ts')} AS "publishTs", ${ms('received_ts')} AS "receivedTs",
  label, score, decision, infer_ms AS "inferMs", total_ms AS "totalMs", model_name || '@' || model_version AS model,
  CASE WHEN prompt_name IS NULL THEN NULL ELSE prompt_name || '@' || prompt_version END AS prompt`;

/** The newest results of one camera, newest first. */
export async function recentResults(q: Queryable, device: string, camera: string, limit: number): Promise<StoredResult[]> {
  return q.query<StoredResult>(
    `SELECT ${RESULT_COLUMNS} FROM edgeprompt.results WHERE device = $1 AND camera = $2 ORDER BY capture_ts DESC LIMIT $3`,
    [device, camera, limit],
  );
}

export interface MalformedSummary {
  device: string;
  kind: string;
  code: string;
  count: number;
  firstTs: number;
  lastTs: number;
  lastTopic: string;
  lastMessage: string;
}

export async function malformed(q: Queryable): Promise<MalformedSummary[]> {
  return q.query<MalformedSummary>(
    `SELECT device, kind, code, count, ${ms('first_ts')} AS "firstTs", ${ms('last_ts')} AS "lastTs", last_topic AS "lastTopic", last_message AS "lastMessage"
     FROM edgeprompt.malformed ORDER BY last_ts DESC`,
  );
}

/** An action as stored (store.ts's ActionRow) with its row id. */
export interface ActionLog extends ActionRow {
  id: number;
}

export async function recentActions(q: Queryable, limit = 50): Promise<ActionLog[]> {
  return q.query<ActionLog>(
    `SELECT id, ${ms('ts')} AS ts, user_name AS "user", role, device, command, args, ok, reply FROM edgeprompt.actions ORDER BY id DESC LIMIT $1`,
    [limit],
  );
}
