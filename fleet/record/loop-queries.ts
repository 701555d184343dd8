// What the dashboard's review and `edgeprompt data export` read of the data loop: kept frames
// (the NG gallery, the review queue, newest or most uncertain first), one frame with its label
// history, its image, and the escape and false-reject rates the line's own ground truth implies.
// The same SQL on PGlite and a server; times as ms since the epoch.

import type { Queryable } from './db.ts';

const ms = (col: string) => `(extract(epoch FROM ${col}) * 1000)::float8`;

import type { FrameDetail, FrameKey, FrameSummary, LabelView, LineRates } from '../dashboard/protocol.ts';

export type { FrameDetail, FrameKey, FrameSummary, LabelView, LineRates };

export interface FrameQuery {
  /** ng: frames decided NG (the gallery); queue: frames no label names yet; all. */
  view: 'ng' | 'queue' | 'all';
  /** newest: kept time; uncertain: |deciding score − threshold| ascending. */
  order: 'newest' | 'uncertain';
  device?: string;
  camera?: string;
  since?: number;
  limit: number;
  offset?: number;
}

const LATEST_LABEL = `LEFT JOIN LATERAL (
    SELECT label_id::text AS id, decision, class, source, by_name, ts, count(*) OVER () AS n FROM edgeprompt.labels l
    WHERE l.device = f.device AND l.seq_epoch = f.seq_epoch AND l.seq = f.seq ORDER BY ts DESC, received_ts DESC LIMIT 1) t ON true`;

const SUMMARY = `f.device, f.seq_epoch AS "seqEpoch", f.seq, f.camera, f.trigger_id AS "triggerId", ${ms('f.capture_ts')} AS "captureTs", ${ms('f.kept_ts')} AS "keptTs",
  f.reasons, f.release, f.model_name || '@' || f.model_version AS model, f.label, f.score, f.ok_score AS "okScore", f.threshold, f.decision,
  f.content_type AS "contentType", f.width, f.height,
  t.id AS "tId", t.decision AS "tDecision", t.class AS "tClass", t.source AS "tSource", t.by_name AS "tBy", ${ms('t.ts')} AS "tTs", coalesce(t.n, 0)::int AS labels`;

type Row = Omit<FrameSummary, 'truth'> & { tId: string | null; tDecision: 'OK' | 'NG' | null; tClass: string | null; tSource: string | null; tBy: string | null; tTs: number | null };

const toSummary = ({ tId, tDecision, tClass, tSource, tBy, tTs, ...r }: Row): FrameSummary => ({
  ...r,
  truth: tId === null ? null : { labelId: tId, decision: tDecision!, class: tClass, source: tSource!, by: tBy, ts: tTs! },
});

/** Kept frames for review: the gallery, the queue, or all, filtered and ordered. */
export async function reviewFrames(q: Queryable, f: FrameQuery): Promise<FrameSummary[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown) => `$${params.push(v)}`;
  if (f.device) where.push(`f.device = ${p(f.device)}`);
  if (f.camera) where.push(`f.camera = ${p(f.camera)}`);
  if (f.since !== undefined) where.push(`f.kept_ts >= to_timestamp(${p(f.since)}::float8 / 1000)`);
  if (f.view === 'ng') where.push(`f.decision = 'NG'`);
  if (f.view === 'queue') where.push('t.id IS NULL');
  const order = f.order === 'uncertain' ? 'abs(coalesce(f.ok_score, f.score) - f.threshold) ASC, f.kept_ts DESC' : 'f.kept_ts DESC, f.seq DESC';
  const rows = await q.query<Row>(
    `SELECT ${SUMMARY} FROM edgeprompt.frames f ${LATEST_LABEL}
     ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT ${p(f.limit)} OFFSET ${p(f.offset ?? 0)}`,
    params,
  );
  return rows.map(toSummary);
}

export async function frameDetail(q: Queryable, k: FrameKey): Promise<FrameDetail | null> {
  const [row] = await q.query<Row & { task: { labels: string[]; okLabels: string[] | null } }>(
    `SELECT ${SUMMARY}, f.header->'task' AS task FROM edgeprompt.frames f ${LATEST_LABEL} WHERE f.device = $1 AND f.seq_epoch = $2 AND f.seq = $3`,
    [k.device, k.seqEpoch, k.seq],
  );
  if (!row) return null;
  const history = await q.query<LabelView>(
    `SELECT label_id::text AS "labelId", decision, class, source, by_name AS by, ${ms('ts')} AS ts FROM edgeprompt.labels
     WHERE device = $1 AND seq_epoch = $2 AND seq = $3 ORDER BY ts, received_ts`,
    [k.device, k.seqEpoch, k.seq],
  );
  const { task, ...rest } = row;
  return { ...toSummary(rest), classes: task.labels, okLabels: task.okLabels, history };
}

export async function frameImage(q: Queryable, k: FrameKey): Promise<{ contentType: string; image: Uint8Array } | null> {
  const [row] = await q.query<{ contentType: string; image: Uint8Array }>(
    `SELECT content_type AS "contentType", image FROM edgeprompt.frames WHERE device = $1 AND seq_epoch = $2 AND seq = $3`,
    [k.device, k.seqEpoch, k.seq],
  );
  return row ?? null;
}

/**
 * Escape and false-reject rates as the line's ground truth implies them, per camera and model:
 * of the results a label names (its newest label), defective parts the model passed and good
 * parts it failed.
 */
export async function lineRates(q: Queryable, since?: number): Promise<LineRates[]> {
  const rows = await q.query<Omit<LineRates, 'escapeRate' | 'falseRejectRate'>>(
    `WITH truth AS (
       SELECT DISTINCT ON (device, seq_epoch, seq) device, seq_epoch, seq, decision FROM edgeprompt.labels
       WHERE seq IS NOT NULL ${since !== undefined ? 'AND ts >= to_timestamp($1::float8 / 1000)' : ''}
       ORDER BY device, seq_epoch, seq, ts DESC, received_ts DESC)
     SELECT r.device, r.camera, r.model_name || '@' || r.model_version AS model,
       coalesce(
         (SELECT max(release) FROM edgeprompt.frames f WHERE f.model_sha256 = r.model_sha256),
         (SELECT max((m.payload->'installed'->'model'->>'release')::int) FROM edgeprompt.messages m
          WHERE m.kind = 'deploy' AND m.device = r.device AND m.payload->'installed'->'model'->>'sha256' = r.model_sha256)) AS release,
       count(*)::int AS labelled,
       count(*) FILTER (WHERE t.decision = 'OK')::int AS good,
       count(*) FILTER (WHERE t.decision = 'NG')::int AS defective,
       count(*) FILTER (WHERE t.decision = 'NG' AND r.decision = 'OK')::int AS escapes,
       count(*) FILTER (WHERE t.decision = 'OK' AND r.decision = 'NG')::int AS "falseRejects"
     FROM truth t JOIN edgeprompt.results r ON r.device = t.device AND r.seq_epoch = t.seq_epoch AND r.seq = t.seq
     GROUP BY r.device, r.camera, r.model_name, r.model_version, r.model_sha256
     ORDER BY r.device, r.camera, release NULLS FIRST, model`,
    since !== undefined ? [since] : [],
  );
  return rows.map((r) => ({ ...r, escapeRate: r.defective ? r.escapes / r.defective : null, falseRejectRate: r.good ? r.falseRejects / r.good : null }));
}

export interface ExportRow extends FrameSummary {
  modelSha256: string;
  classes: string[];
  okLabels: string[] | null;
  image: Uint8Array;
}

/** Kept frames for an export, oldest first, with their newest label and image. */
export async function exportFrames(q: Queryable, o: { since?: number; reviewedOnly: boolean }): Promise<ExportRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (o.since !== undefined) where.push(`f.kept_ts >= to_timestamp($${params.push(o.since)}::float8 / 1000)`);
  if (o.reviewedOnly) where.push('t.id IS NOT NULL');
  const rows = await q.query<Row & { task: { labels: string[]; okLabels: string[] | null }; image: Uint8Array; modelSha256: string }>(
    `SELECT ${SUMMARY}, f.header->'task' AS task, f.image, f.model_sha256 AS "modelSha256" FROM edgeprompt.frames f ${LATEST_LABEL}
     ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY f.kept_ts, f.device, f.seq`,
    params,
  );
  return rows.map(({ task, image, modelSha256, ...r }) => ({ ...toSummary(r), modelSha256, classes: task.labels, okLabels: task.okLabels, image }));
}
