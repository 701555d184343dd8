// Builds a running-ready FrameSource from a camera config (validated here, at the boundary), wrapped
// in a Watchdog unless the config says `watchdog: false`.

import { DeviceConfigError } from '../errors.ts';
import { fieldIssues, type FieldIssue } from '../config-issues.ts';
import { cameraConfigSchema, type CameraConfig } from './config.ts';
import { FfmpegSource } from './ffmpeg.ts';
import { FolderSource } from './folder.ts';
import type { Channels, FrameFormat, FrameSource } from './frame.ts';
import { GstreamerSource } from './gstreamer.ts';
import { SyntheticSource } from './synthetic.ts';
import { Watchdog, type WatchdogOptions } from './watchdog.ts';

export interface CreateSourceOptions {
  /** The model's input size (from the artifact manifest); fills width/height/channels the config leaves out. */
  input?: { width: number; height: number; channels?: Channels };
  /** Prefix for field names in errors, e.g. 'cameras[1]'. Default 'camera'. */
  where?: string;
}

/** Validates a raw (parsed YAML/JSON) camera config; throws DeviceConfigError naming every bad field. */
export function parseCameraConfig(raw: unknown, where = 'camera'): CameraConfig {
  const r = cameraConfigSchema.safeParse(raw, { reportInput: true });
  if (!r.success) throw new DeviceConfigError('E_CAMERA_CONFIG', fieldIssues(r.error, where));
  return r.data;
}

function resolveFormat(cfg: CameraConfig, opts: CreateSourceOptions, where: string): FrameFormat {
  const issues: FieldIssue[] = [];
  const pick = (name: 'width' | 'height'): number => {
    const own = cfg[name];
    const model = opts.input?.[name];
    if (own !== undefined && model !== undefined && own !== model) {
      issues.push({ field: `${where}.${name}`, message: `is ${own} but the model input is ${model}; remove it (the model's size is used) or make them equal` });
    }
    const v = own ?? model;
    if (v === undefined) issues.push({ field: `${where}.${name}`, message: `is missing; set it or pass the model input size` });
    return v ?? 0;
  };
  const width = pick('width');
  const height = pick('height');
  const channels: Channels = cfg.channels ?? opts.input?.channels ?? 3;
  if (cfg.channels !== undefined && opts.input?.channels !== undefined && cfg.channels !== opts.input.channels) {
    issues.push({ field: `${where}.channels`, message: `is ${cfg.channels} but the model input has ${opts.input.channels} channels` });
  }
  if (issues.length > 0) throw new DeviceConfigError('E_CAMERA_CONFIG', issues);
  return { width, height, channels };
}

function watchdogOptions(w: Exclude<CameraConfig['watchdog'], false | undefined>): WatchdogOptions {
  const o: WatchdogOptions = {};
  if (w.stallMs !== undefined) o.stallMs = w.stallMs;
  if (w.firstFrameMs !== undefined) o.firstFrameMs = w.firstFrameMs;
  if (w.healthyAfterMs !== undefined) o.healthyAfterMs = w.healthyAfterMs;
  if (w.backoff !== undefined) o.backoff = Object.fromEntries(Object.entries(w.backoff).filter(([, v]) => v !== undefined));
  if (w.budget !== undefined) o.budget = w.budget;
  if (w.onBudgetExhausted !== undefined) o.onBudgetExhausted = w.onBudgetExhausted;
  if (w.cooldownMs !== undefined) o.cooldownMs = w.cooldownMs;
  return o;
}

/** The bare source for a validated config (no watchdog). */
function createBareSource(cfg: CameraConfig, format: FrameFormat): FrameSource {
  const camera = cfg.id;
  switch (cfg.kind) {
    case 'ffmpeg': {
      const { input, resize, interpolation, fps, binary, logLevel, inputArgs } = cfg;
      return new FfmpegSource({
        camera, format, input, resize, interpolation, logLevel,
        ...(fps !== undefined && { fps }),
        ...(binary !== undefined && { binary }),
        ...(inputArgs !== undefined && { inputArgs }),
      });
    }
    case 'gstreamer':
      return new GstreamerSource({ camera, format, pipeline: cfg.pipeline, convert: cfg.convert, finite: cfg.finite, ...(cfg.binary !== undefined && { binary: cfg.binary }) });
    case 'folder':
      return new FolderSource({ camera, format, path: cfg.path, loop: cfg.loop, resize: cfg.resize, ...(cfg.fps !== undefined && { fps: cfg.fps }) });
    case 'synthetic': {
      const { seed, fps, count, pattern, classes, stallAfter, crashAfter, cycle } = cfg;
      return new SyntheticSource({
        camera, format, seed, fps, pattern,
        ...(count !== undefined && { count }),
        ...(classes !== undefined && { classes }),
        ...(stallAfter !== undefined && { stallAfter }),
        ...(crashAfter !== undefined && { crashAfter }),
        ...(cycle !== undefined && { cycle }),
      });
    }
  }
}

/** Validates `raw` and returns the source, watchdog-wrapped unless `watchdog: false`. Does not start it. */
export function createSource(raw: unknown, opts: CreateSourceOptions = {}): FrameSource {
  const where = opts.where ?? 'camera';
  const cfg = parseCameraConfig(raw, where);
  const format = resolveFormat(cfg, opts, where);
  const bare = createBareSource(cfg, format);
  if (cfg.watchdog === false) return bare;
  return new Watchdog(bare, cfg.watchdog === undefined ? {} : watchdogOptions(cfg.watchdog));
}
