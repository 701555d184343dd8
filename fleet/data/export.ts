// `edgeprompt data export`: the recorder's kept frames, filed by what the line says they are, as
// a folder `compile` takes beside its training data (site.dirs; docs/data-loop.md "Re-tune").
//
// A frame's class comes from the newest label of its result:
// - the label names a class: that class (its decision is the label's);
// - it only says OK or NG: the model's top label when it agrees (a confirmation: the label is a
//   good-part class exactly when the truth is OK); else, for OK, the task's one good-part class;
//   anything else cannot be filed and is skipped, counted by reason;
// - no label (only without --reviewed): the model's top label and decision, `label: null`.

import type { Db } from '../record/db.ts';
import { exportFrames, type ExportRow } from '../record/loop-queries.ts';
import { migrate } from '../record/migrations.ts';
import type { ExportManifest } from '../../runtime/schema/data-export.ts';
import { classOf } from '../../runtime/schema/keep.ts';
import { writeExportFolder, type FrameToWrite } from './export-folder.ts';

export interface ExportOptions {
  out: string;
  /** Frames kept at or after this time (ms). */
  since?: number;
  /** Only frames a label names. */
  reviewedOnly: boolean;
}

type Filed = { class: string; decision: 'OK' | 'NG' } | { skip: string };

/** Which class folder a kept frame goes to (see the header), or why it cannot be filed. */
export function fileFrame(r: Pick<ExportRow, 'truth' | 'label' | 'decision' | 'classes' | 'okLabels'>): Filed {
  const good = r.okLabels ?? r.classes;
  const t = r.truth;
  if (!t) return { class: r.label, decision: r.decision };
  if (t.class !== null) return { class: classOf(t.class, r.classes), decision: t.decision };
  if (good.includes(r.label) === (t.decision === 'OK')) return { class: r.label, decision: t.decision };
  if (t.decision === 'OK') return good.length === 1 ? { class: good[0]!, decision: 'OK' } : { skip: 'OK label, several good-part classes to choose from' };
  return { skip: 'NG label without a class' };
}

export async function exportData(db: Db, o: ExportOptions): Promise<ExportManifest> {
  await migrate(db); // an older recorder database gets the data loop's tables (empty) rather than an SQL error
  const rows = await exportFrames(db, { reviewedOnly: o.reviewedOnly, ...(o.since !== undefined && { since: o.since }) });
  const frames: FrameToWrite[] = [];
  const skipped: Record<string, number> = {};
  for (const r of rows) {
    const f = fileFrame(r);
    if ('skip' in f) {
      skipped[f.skip] = (skipped[f.skip] ?? 0) + 1;
      continue;
    }
    const [name, version] = splitModel(r.model);
    frames.push({
      image: r.image,
      contentType: r.contentType === 'image/jpeg' ? 'image/jpeg' : 'image/png',
      meta: {
        class: f.class,
        decision: f.decision,
        device: r.device,
        camera: r.camera,
        seqEpoch: r.seqEpoch,
        seq: r.seq,
        captureTs: new Date(r.captureTs).toISOString(),
        model: { name, version, sha256: r.modelSha256 },
        release: r.release,
        predicted: { label: r.label, score: r.score, decision: r.decision },
        reasons: r.reasons,
        label: r.truth ? { source: r.truth.source, by: r.truth.by, ts: new Date(r.truth.ts).toISOString() } : null,
      },
    });
  }
  return writeExportFolder(o.out, {
    source: db.where,
    since: o.since === undefined ? null : new Date(o.since).toISOString(),
    reviewedOnly: o.reviewedOnly,
    frames,
    skipped,
  });
}

function splitModel(m: string): [string, string] {
  const at = m.lastIndexOf('@');
  return [m.slice(0, at), m.slice(at + 1)];
}
