// What the recorder writes for the data loop (docs/data-loop.md): kept frames and labels, each
// batch in one statement, idempotent on the message's key (a frame: its result's device, seqEpoch,
// seq; a label: its labelId), so a redelivery stores nothing twice. Labels that name their result
// only by trigger id are resolved to it once it is stored (the result and the label travel apart).

import type { FrameHeader, LabelPayload } from '../../runtime/schema/keep.ts';
import type { Queryable } from './db.ts';

/** A frame message that passed decodeFrameMessage. */
export interface FrameRow {
  header: FrameHeader;
  image: Buffer;
  receivedTs: number;
}

export interface LabelRow {
  label: LabelPayload;
  receivedTs: number;
}

export const frameKey = (device: string, seqEpoch: string, seq: number) => `${device}\u0000${seqEpoch}\u0000${seq}`;

// One frame per statement (frames are few; an image is one bytea parameter on both drivers).
const INSERT_FRAME = `
WITH x AS (SELECT $1::jsonb AS h, to_timestamp($2::float8 / 1000) AS received_ts)
INSERT INTO edgeprompt.frames (device, seq_epoch, seq, camera, trigger_id, capture_ts, kept_ts, received_ts, reasons, release,
  model_name, model_version, model_sha256, label, score, ok_score, threshold, decision, content_type, width, height, image, header)
SELECT h->>'device', h->'result'->>'seqEpoch', (h->'result'->>'seq')::bigint, h->>'camera', h->'result'->>'triggerId',
  to_timestamp((h->'result'->>'captureTs')::float8 / 1000), to_timestamp((h->>'keptTs')::float8 / 1000), received_ts,
  ARRAY(SELECT jsonb_array_elements_text(h->'reasons')), (h->>'release')::int,
  h->'result'->'model'->>'name', h->'result'->'model'->>'version', h->'result'->'model'->>'sha256',
  h->'result'->>'label', (h->'result'->>'score')::real, (h->'result'->>'okScore')::real, (h->'task'->>'threshold')::real, h->'result'->>'decision',
  h->'image'->>'contentType', (h->'image'->>'width')::int, (h->'image'->>'height')::int, $3::bytea, h
FROM x
ON CONFLICT DO NOTHING
RETURNING device, seq_epoch, seq`;

/** Inserts frames; resolves with the keys (frameKey) of those that were new. */
export async function insertFrames(q: Queryable, rows: readonly FrameRow[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const r of rows) {
    const [row] = await q.query<{ device: string; seq_epoch: string; seq: number }>(INSERT_FRAME, [JSON.stringify(r.header), r.receivedTs, r.image]);
    if (row) out.add(frameKey(row.device, row.seq_epoch, row.seq));
  }
  return out;
}

const INSERT_LABELS = `
INSERT INTO edgeprompt.labels (label_id, device, camera, seq_epoch, seq, trigger_id, ts, received_ts, decision, class, source, by_name, frame_kept)
SELECT (l->>'labelId')::uuid, l->>'device', l->>'camera', l->'target'->>'seqEpoch', (l->'target'->>'seq')::bigint, l->>'triggerId',
  to_timestamp((l->>'ts')::float8 / 1000), to_timestamp((e->>'t')::float8 / 1000), l->>'decision', l->>'class', l->>'source', l->>'by', (l->>'frameKept')::boolean
FROM jsonb_array_elements($1::jsonb) e, LATERAL (SELECT e->'l' AS l) x
ON CONFLICT DO NOTHING
RETURNING label_id::text AS id`;

/** Inserts labels; resolves with the labelIds that were new. */
export async function insertLabels(q: Queryable, rows: readonly LabelRow[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const json = JSON.stringify(rows.map((r) => ({ t: r.receivedTs, l: r.label })));
  const out = await q.query<{ id: string }>(INSERT_LABELS, [json]);
  return new Set(out.map((r) => r.id));
}

/**
 * Gives labels that name only a trigger id their result: the newest result of that device, camera
 * and trigger id captured before the label was given. Run after a batch stored results or labels;
 * touches only unresolved labels (a partial index holds them). Returns how many it resolved.
 */
export async function resolveLabels(q: Queryable): Promise<number> {
  const rows = await q.query<{ n: number }>(`
    WITH m AS (
      SELECT u.label_id, x.seq_epoch, x.seq FROM edgeprompt.labels u
      CROSS JOIN LATERAL (
        SELECT seq_epoch, seq FROM edgeprompt.results r
        WHERE r.device = u.device AND r.camera = u.camera AND r.trigger_id = u.trigger_id AND r.capture_ts <= u.ts
        ORDER BY r.capture_ts DESC LIMIT 1) x
      WHERE u.seq IS NULL AND u.trigger_id IS NOT NULL AND u.camera IS NOT NULL
    ), done AS (
      UPDATE edgeprompt.labels l SET seq_epoch = m.seq_epoch, seq = m.seq FROM m WHERE l.label_id = m.label_id RETURNING 1)
    SELECT count(*)::int AS n FROM done`);
  return rows[0]?.n ?? 0;
}

/** A label from the dashboard's review (source `review`): inserted directly, not through MQTT. */
export async function insertReviewLabel(
  q: Queryable,
  l: { labelId: string; device: string; camera: string; seqEpoch: string; seq: number; decision: 'OK' | 'NG'; class: string; by: string; ts: number },
): Promise<void> {
  await q.query(
    `INSERT INTO edgeprompt.labels (label_id, device, camera, seq_epoch, seq, trigger_id, ts, received_ts, decision, class, source, by_name, frame_kept)
     VALUES ($1::uuid, $2, $3, $4, $5, NULL, to_timestamp($6::float8 / 1000), now(), $7, $8, 'review', $9, true)`,
    [l.labelId, l.device, l.camera, l.seqEpoch, l.seq, l.ts, l.decision, l.class, l.by],
  );
}
