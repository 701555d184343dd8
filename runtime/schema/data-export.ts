// The folder `edgeprompt data export` writes (fleet side) and `compile` reads beside its training
// data (compiler/data/site.ts): an image folder, `<dir>/<class>/<file>`, with `<dir>/manifest.json`
// saying where every image came from (device, camera, result, the release that saw it) and who
// said what it is (the label: its source, who, when). One schema for writer and reader.

import { z } from 'zod';
import { ArtifactRef, CameraId, DeviceId } from './payloads.ts';

const Text = (max: number) => z.string().min(1).max(max);
const Iso = z.iso.datetime({ offset: true });

export const EXPORT_KIND = 'edgeprompt-data-export' as const;

export const ExportedFrame = z.object({
  /** Relative to the export folder: `<class>/<name>.png|jpg`. */
  file: z.string().regex(/^[^/\\]+\/[^/\\]+\.(png|jpg)$/, 'must be <class>/<name>.png or .jpg'),
  class: Text(256),
  /** The truth the class stands for (the label's decision). */
  decision: z.enum(['OK', 'NG']),
  device: DeviceId,
  camera: CameraId,
  seqEpoch: Text(64),
  seq: z.number().int().nonnegative(),
  captureTs: Iso,
  model: ArtifactRef,
  release: z.number().int().nonnegative(),
  /** What the model said. */
  predicted: z.object({ label: Text(256), score: z.number().min(0).max(1), decision: z.enum(['OK', 'NG']) }),
  /** Why the device kept it. */
  reasons: z.array(Text(32)),
  /** The label the class comes from (the newest), or null when the prediction stands unreviewed. */
  label: z.object({ source: Text(32), by: Text(128).nullable(), ts: Iso }).nullable(),
});
export type ExportedFrame = z.infer<typeof ExportedFrame>;

export const ExportManifest = z.object({
  kind: z.literal(EXPORT_KIND),
  v: z.literal(1),
  createdAt: Iso,
  /** The recorder database it was read from (no credentials). */
  source: Text(1024),
  since: Iso.nullable(),
  /** Only frames a label confirmed or corrected. */
  reviewedOnly: z.boolean(),
  /** Frames per class. */
  classes: z.record(z.string(), z.number().int().nonnegative()),
  frames: z.array(ExportedFrame),
  /** Kept frames left out, and why (e.g. an NG label without a class to file it under). */
  skipped: z.record(z.string(), z.number().int().nonnegative()),
});
export type ExportManifest = z.infer<typeof ExportManifest>;
