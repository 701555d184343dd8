// The camera config contract: one discriminated union by `kind`, validated at the boundary.
// Width, height and channels normally come from the model's manifest; a camera may pin them.

import { z } from 'zod';

const id = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, _ . -');
const ms = z.number().int().nonnegative();
const positive = z.number().positive();

const watchdogConfigSchema = z.strictObject({
  stallMs: ms.min(50).optional(),
  firstFrameMs: ms.min(50).optional(),
  healthyAfterMs: ms.optional(),
  backoff: z
    .strictObject({ initialMs: ms.optional(), factor: z.number().min(1).optional(), maxMs: ms.optional(), jitter: z.number().min(0).max(1).optional() })
    .optional(),
  budget: z.strictObject({ maxRestarts: z.number().int().min(1), windowMs: ms.min(1) }).optional(),
  onBudgetExhausted: z.enum(['cooldown', 'stop']).optional(),
  cooldownMs: ms.optional(),
});

const common = {
  id: id.default('cam0'),
  width: z.number().int().min(1).max(8192).optional(),
  height: z.number().int().min(1).max(8192).optional(),
  channels: z.union([z.literal(3), z.literal(4)]).optional(),
  /** `false` gives the bare source (no restarts), e.g. for a one-shot replay. */
  watchdog: z.union([z.literal(false), watchdogConfigSchema]).optional(),
};

const resize = z.enum(['stretch', 'center-crop']).default('stretch');

const ffmpegInputSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('file'), path: z.string().min(1), loop: z.boolean().default(false), realtime: z.boolean().default(false) }),
  z.strictObject({
    kind: z.literal('url'),
    url: z.string().regex(/^(rtsps?|https?|rtmp|srt|udp|tcp):\/\//i, 'must start with rtsp://, rtsps://, http(s)://, rtmp://, srt://, udp:// or tcp://'),
    transport: z.enum(['tcp', 'udp']).default('tcp'),
  }),
  z.strictObject({
    kind: z.literal('v4l2'),
    device: z.string().regex(/^\/dev\//, 'must be a device path such as /dev/video0'),
    inputFormat: z.string().min(1).optional(),
    size: z.string().regex(/^\d+x\d+$/, 'must look like 1280x720').optional(),
    framerate: positive.optional(),
  }),
  z.strictObject({ kind: z.literal('lavfi'), graph: z.string().min(1), realtime: z.boolean().default(false) }),
]);

const ffmpegCameraSchema = z.strictObject({
  kind: z.literal('ffmpeg'),
  ...common,
  input: ffmpegInputSchema,
  resize,
  interpolation: z.enum(['bilinear', 'bicubic', 'area', 'lanczos', 'neighbor']).default('bilinear'),
  fps: positive.optional(),
  binary: z.string().min(1).optional(),
  logLevel: z.enum(['quiet', 'error', 'warning', 'info']).default('error'),
  inputArgs: z.array(z.string()).optional(),
});

const gstreamerCameraSchema = z.strictObject({
  kind: z.literal('gstreamer'),
  ...common,
  pipeline: z.string().min(1),
  convert: z.boolean().default(true),
  finite: z.boolean().default(false),
  binary: z.string().min(1).optional(),
});

const folderCameraSchema = z.strictObject({
  kind: z.literal('folder'),
  ...common,
  path: z.string().min(1),
  loop: z.boolean().default(false),
  fps: positive.optional(),
  resize,
});

const syntheticCameraSchema = z.strictObject({
  kind: z.literal('synthetic'),
  ...common,
  seed: z.number().int().default(1),
  fps: positive.default(30),
  count: z.number().int().positive().optional(),
  pattern: z.enum(['solid', 'bars', 'noise']).default('solid'),
  classes: z.array(z.string().min(1)).min(1).optional(),
  stallAfter: z.number().int().nonnegative().optional(),
  crashAfter: z.number().int().nonnegative().optional(),
  /** Repeat this many pre-rendered frames (no per-frame rendering cost; for benchmarks). */
  cycle: z.number().int().positive().max(1024).optional(),
});

export const cameraConfigSchema = z.discriminatedUnion('kind', [ffmpegCameraSchema, gstreamerCameraSchema, folderCameraSchema, syntheticCameraSchema]);

/** A camera config as written (defaults optional). */
export type CameraConfigInput = z.input<typeof cameraConfigSchema>;
/** A validated camera config (defaults filled). */
export type CameraConfig = z.output<typeof cameraConfigSchema>;
