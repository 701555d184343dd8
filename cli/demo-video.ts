/**
 * The demo's sample videos, one item per frame, encoded by ffmpeg: the committed line items (the
 * demo, cli/demo-items.ts) or freshly generated parts (bench:runtime). Each returns the label of
 * every frame, in order.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolveFfmpeg } from '../devices/cameras/ffmpeg.ts';
import { PART_CLASSES, renderPart, type Line } from '../compiler/data/parts.ts';
import { mulberry32, shuffleInPlace } from '../devices/rng.ts';
import { readLineItems } from './demo-items.ts';

export interface DemoVideo { file: string; labels: string[]; fps: number; size: number }

/** Encode rgb24 frames (size×size) to an H.264 file at `fps`. */
async function encode(file: string, frames: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number, fps: number): Promise<void> {
  // Lossless-ish H.264 in 4:4:4 keeps thin details visible after compression.
  const ff = spawn(resolveFfmpeg(), ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${size}x${size}`, '-r', String(fps), '-i', 'pipe:0', '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '8', '-pix_fmt', 'yuv444p', file], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  ff.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  for await (const frame of frames) if (!ff.stdin.write(frame)) await once(ff.stdin, 'drain');
  ff.stdin.end();
  const [code] = (await once(ff, 'close')) as [number];
  if (code !== 0) throw new Error(`ffmpeg could not encode ${file} (exit ${code}): ${stderr.trim().split('\n').at(-1)}`);
}

/** Nearest-neighbour ×k: the camera scales the frame back down like a real sensor image. */
function upscale(img: Uint8Array, S: number, k: number): Uint8Array {
  if (k === 1) return img;
  const size = k * S;
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) out.set(img.subarray(((Math.floor(y / k) * S + Math.floor(x / k)) * 3), (Math.floor(y / k) * S + Math.floor(x / k)) * 3 + 3), (y * size + x) * 3);
  return out;
}

/** The committed line items (at most `perClass` of each class) passing the camera, upscaled ×`upscale`. */
export async function makeItemsVideo(file: string, items: string, o: { perClass: number; fps: number; upscale: number }): Promise<DemoVideo> {
  const { items: meta, images } = await readLineItems(items, o.perClass);
  const size = o.upscale * meta.size;
  await encode(file, images.map((img) => upscale(img, meta.size, o.upscale)), size, o.fps);
  return { file, labels: meta.labels.map((l) => meta.classes[l]!), fps: o.fps, size };
}

/** Generated parts passing the camera (`line`: what the line makes; default a steel plate). */
export async function makePartsVideo(file: string, o: { perClass: number; seed: number; size: number; fps: number; line?: Line }): Promise<DemoVideo> {
  const order = shuffleInPlace(PART_CLASSES.flatMap((c) => Array.from({ length: o.perClass }, (_, i) => ({ c, i }))), mulberry32(o.seed));
  async function* frames() {
    for (const { c, i } of order) yield await renderPart(o.seed, c, i, o.size, o.line);
  }
  await encode(file, frames(), o.size, o.fps);
  return { file, labels: order.map((x) => x.c), fps: o.fps, size: o.size };
}
