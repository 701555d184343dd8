// The data loop's messages (docs/data-loop.md), shared by the device (runtime/keep/), the recorder
// and the dashboard (fleet/):
//
// - a kept frame, `edgeprompt/v1/<device>/<camera>/frame`, QoS 1, binary: the image and a JSON
//   header carrying the whole result it belongs to, why it was kept, and the model's release;
// - a label, `edgeprompt/v1/<device>/label`, QoS 1, JSON: ground truth from the line (a PLC
//   confirmation or an override over MQTT) for one result, named by seq or by trigger id.
//
// Both travel through the device's spool (runtime/keep/spool.ts), so they survive a broker outage
// and a restart, and both carry an idempotency key, so the recorder stores each exactly once
// however often it is delivered: a frame is keyed by its result (device, seqEpoch, seq: a result
// has one frame), a label by `labelId` (a UUID the device draws when it takes the label).

import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ArtifactRef, CameraId, DeviceId, PAYLOAD_VERSION, ResultPayload } from './payloads.ts';

const EpochMs = z.number().int().nonnegative();
const Text = (max: number) => z.string().min(1).max(max);
const V = z.literal(PAYLOAD_VERSION);

/** Why a frame was kept (runtime/keep/rules.ts). */
export const KEEP_REASONS = ['ng', 'uncertain', 'random', 'shadow', 'label'] as const;
export const KeepReason = z.enum(KEEP_REASONS);
export type KeepReason = z.infer<typeof KeepReason>;

/** A PLC trigger id or MQTT trigger id: what the line calls a part. */
export const TriggerIdText = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, _ . -');
/** A class as the line names it: a model label, or a new class the model does not know yet. */
export const LabelClass = z.string().min(1).max(256).regex(/^[^\u0000-\u001f\u007f]+$/, 'must not hold control characters');

/**
 * The line's class as the model names it: a PLC sends a class as one token (spaces and other
 * characters as `_`, docs/serial-protocol.md), so `missing_hole` is the label `missing hole`. A
 * class the model does not know stays as given (a new defect for the next re-tune).
 */
export function classOf(given: string, labels: readonly string[]): string {
  if (labels.includes(given)) return given;
  const token = (l: string) => l.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 32);
  return labels.find((l) => token(l) === given) ?? given;
}

/** Which result a label or frame is about: the result's sequence identity on its device. */
export const ResultKey = z.object({ seqEpoch: Text(64), seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) });
export type ResultKey = z.infer<typeof ResultKey>;

// ---------------------------------------------------------------- frame: <device>/<camera>/frame
export const IMAGE_TYPES = ['image/png', 'image/jpeg'] as const;

export const FrameHeader = z.object({
  v: V,
  device: DeviceId,
  camera: CameraId,
  /** The result this frame was classified into, exactly as published (its seq is the idempotency key). */
  result: ResultPayload,
  /** The model's release number (manifest `release`), so an export can say which release saw the frame. */
  release: z.number().int().nonnegative(),
  /** The rule it was decided by: the model's classes, which of them are good parts (null: every one), the camera's threshold. */
  task: z.object({ labels: z.array(Text(256)).min(1).max(100_000), okLabels: z.array(Text(256)).nullable(), threshold: z.number().min(0).max(1) }),
  reasons: z.array(KeepReason).min(1),
  /** When the device kept it. */
  keptTs: EpochMs,
  /** For reason `shadow`: what the candidate of the deployment in shadow said instead. */
  shadow: z.object({ model: ArtifactRef, label: Text(256), decision: z.enum(['OK', 'NG']) }).optional(),
  image: z.object({
    contentType: z.enum(IMAGE_TYPES),
    width: z.number().int().positive().max(8192),
    height: z.number().int().positive().max(8192),
    bytes: z.number().int().positive(),
    /** sha256 of the image bytes that follow the header. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters'),
  }),
});
export type FrameHeader = z.infer<typeof FrameHeader>;

const FRAME_MAGIC = Buffer.from('EPF1', 'ascii');

/** `'EPF1' | u32 BE header length | header JSON (UTF-8) | image bytes`: the image costs its size, no base64. */
export function encodeFrameMessage(header: FrameHeader, image: Uint8Array): Buffer {
  const h = Buffer.from(JSON.stringify(FrameHeader.parse(header)), 'utf8');
  const head = Buffer.alloc(8);
  FRAME_MAGIC.copy(head, 0);
  head.writeUInt32BE(h.length, 4);
  return Buffer.concat([head, h, image]);
}

export type DecodedFrame = { ok: true; header: FrameHeader; image: Buffer } | { ok: false; code: 'BAD_FRAME' | 'INVALID_PAYLOAD'; message: string };

/** Reads a frame message: the framing, the header's schema, and the image against its size and sha256. Never throws. */
export function decodeFrameMessage(b: Uint8Array): DecodedFrame {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 4).equals(FRAME_MAGIC)) return { ok: false, code: 'BAD_FRAME', message: 'not a frame message (no EPF1 magic)' };
  const n = buf.readUInt32BE(4);
  if (buf.length < 8 + n) return { ok: false, code: 'BAD_FRAME', message: `header of ${n} bytes cut short at ${buf.length - 8}` };
  let json: unknown;
  try {
    json = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    return { ok: false, code: 'BAD_FRAME', message: `header is not JSON: ${(e as Error).message}` };
  }
  const r = FrameHeader.safeParse(json);
  if (!r.success) return { ok: false, code: 'INVALID_PAYLOAD', message: r.error.issues.map((i) => `${i.path.join('.') || '(header)'}: ${i.message}`).join('; ') };
  const image = buf.subarray(8 + n);
  const h = r.data;
  if (image.length !== h.image.bytes) return { ok: false, code: 'BAD_FRAME', message: `image is ${image.length} bytes, the header says ${h.image.bytes}` };
  if (createHash('sha256').update(image).digest('hex') !== h.image.sha256) return { ok: false, code: 'BAD_FRAME', message: 'image bytes do not match the header sha256' };
  if (h.device !== h.result.device || h.camera !== h.result.camera) return { ok: false, code: 'INVALID_PAYLOAD', message: `header says ${h.device}/${h.camera}, its result ${h.result.device}/${h.result.camera}` };
  return { ok: true, header: h, image };
}

// ---------------------------------------------------------------- label: <device>/label
export const LABEL_SOURCES = ['plc', 'mqtt', 'review'] as const;

export const LabelPayload = z
  .object({
    v: V,
    device: DeviceId,
    /** Drawn by the device when it took the label: the idempotency key. */
    labelId: z.uuid(),
    /** When the line gave it (device clock). */
    ts: EpochMs,
    camera: CameraId.nullable(),
    /** The result it is about, when the device could tell (seq given, or a trigger id still in its recent results). */
    target: ResultKey.nullable(),
    /** The trigger id the line named; the recorder resolves it to a result when `target` is null. */
    triggerId: TriggerIdText.nullable(),
    /** The truth: the part is good (OK) or defective (NG). */
    decision: z.enum(['OK', 'NG']),
    /** The defect class (or good class) when the line knows it. */
    class: LabelClass.nullable(),
    /** plc: a confirmation on the PLC's serial line; mqtt: the `label` command; review: the dashboard. */
    source: z.enum(LABEL_SOURCES),
    /** Who: an operator, a station, a PLC name; null when the source does not say. */
    by: Text(128).nullable(),
    /** The device still held the frame and kept it (reason `label`): it follows on the frame topic. */
    frameKept: z.boolean(),
  })
  .refine((l) => l.target !== null || l.triggerId !== null, { message: 'a label names its result by target (seq) or triggerId', path: ['target'] });
export type LabelPayload = z.infer<typeof LabelPayload>;
