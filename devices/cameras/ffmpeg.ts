// ffmpeg as the decoder: V4L2 device, RTSP/HTTP URL, video file or lavfi test graph in; model-size
// RGB(A) rawvideo out. Scaling, cropping, fps limiting and colour conversion all happen inside
// ffmpeg, so JavaScript never touches individual pixels.

import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { CameraError } from '../errors.ts';
import type { FrameFormat } from './frame.ts';
import { ProcessSource } from './process-source.ts';

export type FfmpegInput =
  | { kind: 'file'; path: string; loop?: boolean; realtime?: boolean }
  | { kind: 'url'; url: string; transport?: 'tcp' | 'udp' }
  | { kind: 'v4l2'; device: string; inputFormat?: string; size?: string; framerate?: number }
  | { kind: 'lavfi'; graph: string; realtime?: boolean };

/** How a camera image of another aspect ratio becomes the model's W×H (the manifest's resize contract). */
export type ResizeMode = 'stretch' | 'center-crop';
export type Interpolation = 'bilinear' | 'bicubic' | 'area' | 'lanczos' | 'neighbor';

export interface FfmpegOptions {
  camera: string;
  format: FrameFormat;
  input: FfmpegInput;
  resize?: ResizeMode;
  interpolation?: Interpolation;
  /** Output frame-rate limit (in stream time; combine with `realtime` for wall-clock pacing). */
  fps?: number;
  /** ffmpeg binary; default: system ffmpeg on PATH, else @ffmpeg-installer/ffmpeg. */
  binary?: string;
  logLevel?: 'quiet' | 'error' | 'warning' | 'info';
  /** Extra arguments placed just before `-i` (e.g. ['-probesize', '32']). */
  inputArgs?: string[];
  stderrLines?: number;
}

/** The filter chain: fps first (dropping frames before scaling is cheaper), then resize. */
export function ffmpegFilters(o: Pick<FfmpegOptions, 'format' | 'resize' | 'interpolation' | 'fps'>): string {
  const { width: w, height: h } = o.format;
  const flags = o.interpolation ?? 'bilinear';
  const f: string[] = [];
  if (o.fps !== undefined) f.push(`fps=${o.fps}`);
  if ((o.resize ?? 'stretch') === 'stretch') f.push(`scale=${w}:${h}:flags=${flags}`);
  // Cover W×H keeping the aspect ratio, then cut the centre: works for any target aspect.
  else f.push(`scale=${w}:${h}:force_original_aspect_ratio=increase:flags=${flags}`, `crop=${w}:${h}`);
  return f.join(',');
}

export function ffmpegArgs(o: FfmpegOptions): string[] {
  const a = ['-hide_banner', '-nostdin', '-loglevel', o.logLevel ?? 'error'];
  const inp = o.input;
  switch (inp.kind) {
    case 'file':
      if (inp.loop) a.push('-stream_loop', '-1');
      if (inp.realtime) a.push('-re');
      a.push(...(o.inputArgs ?? []), '-i', inp.path);
      break;
    case 'url':
      if (/^rtsps?:/i.test(inp.url)) a.push('-rtsp_transport', inp.transport ?? 'tcp');
      // A live stream is probed for 0.5 s, not ffmpeg's default 5 s: a camera that comes back
      // (MPEG-TS over TCP/UDP/HTTP) then delivers its first frame ~1 s after connecting instead of
      // ~6 s (measured: tcp MPEG-TS, keyframe every 1/3 s). Give -analyzeduration in inputArgs to change it.
      if (!(o.inputArgs ?? []).includes('-analyzeduration')) a.push('-analyzeduration', '500000');
      // No '-fflags nobuffer' by default: it makes ffmpeg 5.1 decode nothing from an mp4 over HTTP
      // (verified). Pass it in inputArgs for a live RTSP camera if latency matters.
      a.push(...(o.inputArgs ?? []), '-i', inp.url);
      break;
    case 'v4l2':
      a.push('-f', 'v4l2');
      if (inp.inputFormat !== undefined) a.push('-input_format', inp.inputFormat);
      if (inp.size !== undefined) a.push('-video_size', inp.size);
      if (inp.framerate !== undefined) a.push('-framerate', String(inp.framerate));
      a.push(...(o.inputArgs ?? []), '-i', inp.device);
      break;
    case 'lavfi':
      if (inp.realtime) a.push('-re');
      a.push('-f', 'lavfi', ...(o.inputArgs ?? []), '-i', inp.graph);
      break;
  }
  a.push('-map', '0:v:0', '-an', '-sn', '-dn');
  a.push('-vf', ffmpegFilters(o));
  a.push('-pix_fmt', o.format.channels === 4 ? 'rgba' : 'rgb24', '-f', 'rawvideo', 'pipe:1');
  return a;
}

function onPath(name: string, searchPath: string): string | null {
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** System ffmpeg first (it may have hardware decoders), else the npm-shipped static build. */
export function resolveFfmpeg(override?: string, searchPath: string = process.env.PATH ?? ''): string {
  if (override !== undefined) return override;
  const sys = onPath('ffmpeg', searchPath);
  if (sys !== null) return sys;
  try {
    // Loaded lazily and through require so the runtime bundle does not inline the package.
    const mod: unknown = createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg');
    const p = (mod as { path?: unknown }).path;
    if (typeof p === 'string') return p;
  } catch {
    /* fall through: the package is missing or has no binary for this platform */
  }
  throw new CameraError(
    'E_NO_FFMPEG',
    `no ffmpeg found: none on PATH (${searchPath}) and @ffmpeg-installer/ffmpeg is not usable on ${process.platform}-${process.arch}; install ffmpeg (apt-get install ffmpeg) or set the camera's 'binary' field`,
    { field: 'binary' },
  );
}

export class FfmpegSource extends ProcessSource {
  constructor(readonly options: FfmpegOptions) {
    const inp = options.input;
    super({
      camera: options.camera,
      kind: 'ffmpeg',
      format: options.format,
      finite: inp.kind === 'file' && inp.loop !== true,
      stderrLines: options.stderrLines ?? 50,
      spec: () => ({ command: resolveFfmpeg(options.binary), args: ffmpegArgs(options) }),
    });
  }
}
