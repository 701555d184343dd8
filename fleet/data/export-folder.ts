// Writes a data export folder (the contract: runtime/schema/data-export.ts): one image file per
// frame under a folder per class, then manifest.json, validated, written last, so a folder with a
// manifest is a finished export. The images are written as the device encoded them (PNG or JPEG
// bytes from the recorder), never re-encoded.

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXPORT_KIND, ExportManifest, type ExportedFrame } from '../../runtime/schema/data-export.ts';

export interface FrameToWrite {
  meta: Omit<ExportedFrame, 'file'>;
  image: Uint8Array;
  contentType: 'image/png' | 'image/jpeg';
}

export interface ExportInput {
  source: string;
  since: string | null;
  reviewedOnly: boolean;
  frames: readonly FrameToWrite[];
  skipped: Record<string, number>;
}

export class ExportError extends Error {
  override readonly name = 'ExportError';
  constructor(
    readonly code: 'EXPORT_EXISTS' | 'EXPORT_EMPTY' | 'EXPORT_NO_DB',
    message: string,
  ) {
    super(message);
  }
}

/** A class name as one folder name: path separators, NUL and dot-only names replaced. */
export const classFolder = (cls: string): string => {
  const s = cls.replace(/[/\\\u0000]/g, '_');
  return s === '.' || s === '..' ? s.replace(/\./g, '_') : s;
};

/** Writes the folder (new or empty); returns the manifest written. */
export async function writeExportFolder(out: string, input: ExportInput): Promise<ExportManifest> {
  const existing = await readdir(out).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  if (existing.length > 0) throw new ExportError('EXPORT_EXISTS', `${out} is not empty; export into a new folder (an export is one finished set: manifest.json names every image in it)`);
  if (input.frames.length === 0) throw new ExportError('EXPORT_EMPTY', `no frames to export${Object.keys(input.skipped).length ? ` (skipped: ${Object.entries(input.skipped).map(([k, n]) => `${n} ${k}`).join(', ')})` : ''}; widen --since, or review frames in the dashboard first`);
  const frames: ExportedFrame[] = [];
  const classes: Record<string, number> = {};
  for (const f of input.frames) {
    const m = f.meta;
    const folder = classFolder(m.class);
    await mkdir(join(out, folder), { recursive: true });
    const file = `${folder}/${m.device}_${m.seqEpoch.slice(0, 8)}_${m.seq}.${f.contentType === 'image/png' ? 'png' : 'jpg'}`;
    await writeFile(join(out, file), f.image);
    frames.push({ ...m, file });
    classes[m.class] = (classes[m.class] ?? 0) + 1;
  }
  const manifest = ExportManifest.parse({ kind: EXPORT_KIND, v: 1, createdAt: new Date().toISOString(), source: input.source, since: input.since, reviewedOnly: input.reviewedOnly, classes, frames, skipped: input.skipped });
  await writeFile(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
