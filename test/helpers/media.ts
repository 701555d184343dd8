// Test media made with the real tools: short videos by ffmpeg (lavfi sources), truncated copies,
// and images by sharp. Everything goes into a temp dir the test removes.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { resolveFfmpeg } from '../../devices/cameras/ffmpeg.ts';
import type { CameraStateEvent, FrameSource } from '../../devices/cameras/frame.ts';

const run = promisify(execFile);

export async function tempDir(prefix = 'ep-media-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export type Codec = 'h264' | 'ffv1' | 'mjpeg';

export interface VideoSpec {
  /** A lavfi graph, e.g. 'testsrc2=s=320x240:r=25' or solidGraph([255,0,0], 64, 48). */
  graph: string;
  seconds: number;
  codec?: Codec;
  /** File name inside dir; the extension picks the container (.mp4, .mkv, .avi). */
  name: string;
}

const CODEC_ARGS: Record<Codec, string[]> = {
  // yuv444p + qp 0: lossless H.264, so solid colours survive with only YUV rounding.
  h264: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv444p', '-qp', '0', '-g', '10'],
  // bgr0: lossless RGB, exact colours.
  ffv1: ['-c:v', 'ffv1', '-pix_fmt', 'bgr0'],
  mjpeg: ['-c:v', 'mjpeg', '-q:v', '3', '-pix_fmt', 'yuvj444p'],
};

export async function makeVideo(dir: string, spec: VideoSpec): Promise<string> {
  const out = join(dir, spec.name);
  const args = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', spec.graph, '-t', String(spec.seconds), ...CODEC_ARGS[spec.codec ?? 'h264'], out];
  await run(resolveFfmpeg(), args);
  return out;
}

const hex = (rgb: readonly [number, number, number]): string => '0x' + rgb.map((v) => v.toString(16).padStart(2, '0')).join('');

/** A lavfi graph for one solid colour. */
export function solidGraph(rgb: readonly [number, number, number], width: number, height: number, fps = 10): string {
  return `color=c=${hex(rgb)}:s=${width}x${height}:r=${fps}`;
}

/**
 * A wide frame in three vertical bands: left quarter `left`, middle half `middle`, right quarter
 * `right`. A centre crop to a square sees only `middle`; a stretch keeps all three.
 */
export function bandsGraph(left: readonly [number, number, number], middle: readonly [number, number, number], right: readonly [number, number, number], width: number, height: number, fps = 10): string {
  const q = width / 4;
  return `color=c=${hex(middle)}:s=${width}x${height}:r=${fps},drawbox=x=0:y=0:w=${q}:h=${height}:c=${hex(left)}:t=fill,drawbox=x=${3 * q}:y=0:w=${q}:h=${height}:c=${hex(right)}:t=fill`;
}

/** Copies the first `fraction` of a file: a video cut off mid-download or mid-write. */
export async function truncateCopy(src: string, dst: string, fraction = 0.5): Promise<string> {
  const bytes = await readFile(src);
  await writeFile(dst, bytes.subarray(0, Math.floor(bytes.length * fraction)));
  return dst;
}

/** A solid-colour image through sharp; the extension picks png/jpg/webp. */
export async function makeImage(file: string, rgb: readonly [number, number, number], width = 40, height = 30): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  const img = sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  const ext = file.slice(file.lastIndexOf('.') + 1).toLowerCase();
  const encoded = ext === 'png' ? img.png() : ext === 'webp' ? img.webp({ lossless: true }) : img.jpeg({ quality: 95 });
  await encoded.toFile(file);
  return file;
}

/** The RGB(A) value at (x, y) of a frame. */
export function pixel(frame: { data: Uint8Array; width: number; channels: number }, x: number, y: number): number[] {
  const p = (y * frame.width + x) * frame.channels;
  return Array.from(frame.data.subarray(p, p + frame.channels));
}

/** Largest |difference| between any pixel of the frame and `rgb` (alpha ignored). */
export function maxColourError(frame: { data: Uint8Array; channels: number }, rgb: readonly [number, number, number]): number {
  let worst = 0;
  const { data, channels: c } = frame;
  for (let p = 0; p < data.length; p += c) {
    for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(data[p + k]! - rgb[k]!));
  }
  return worst;
}

/** Records every camera_state event of a source. */
export function recordStates(source: FrameSource): CameraStateEvent[] {
  const events: CameraStateEvent[] = [];
  source.on('state', (e) => events.push(e));
  return events;
}

/**
 * Resolves when `pred` holds for a state event (checking ones already recorded first). The timeout
 * only bounds a failure: on a machine at load 20 on 2 cores, starting ffmpeg alone took seconds
 * and 5 s made passing tests fail (the wait is not what the tests measure).
 */
export function waitForState(source: FrameSource, events: CameraStateEvent[], pred: (e: CameraStateEvent) => boolean, timeoutMs = 20_000): Promise<CameraStateEvent> {
  const seen = events.find(pred);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      source.off('state', on);
      reject(new Error(`no matching camera_state within ${timeoutMs} ms; saw ${events.map((e) => `${e.state}/${e.reason}`).join(', ')}`));
    }, timeoutMs);
    const on = (e: CameraStateEvent): void => {
      if (!pred(e)) return;
      clearTimeout(timer);
      source.off('state', on);
      resolve(e);
    };
    source.on('state', on);
  });
}
