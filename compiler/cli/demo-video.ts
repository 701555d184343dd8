/**
 * The demo's sample video: parts from the generator (a seed the model never trained on) passing
 * the camera one per frame, encoded by ffmpeg. Returns the label of every frame, in order.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolveFfmpeg } from '../../devices/cameras/ffmpeg.ts';
import { PART_CLASSES, renderPart } from '../data/parts.ts';
import { mulberry32, shuffleInPlace } from '../data/rng.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { indicesByClass } from '../data/sampling.ts';

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

/**
 * Fashion-MNIST test images of the given classes passing the camera, skipping the first
 * `skipPerClass` of each class (the compile step validates on those), upscaled ×2 (nearest) so
 * the camera scales them back down like a real sensor image.
 */
export async function makeFashionVideo(file: string, o: { classes: number[]; perClass: number; skipPerClass: number; seed: number; fps: number }): Promise<DemoVideo> {
  const set = loadFashionMnist({ split: 'test', classes: o.classes });
  const picks = shuffleInPlace(indicesByClass(set).flatMap((idx) => idx.slice(o.skipPerClass, o.skipPerClass + o.perClass)), mulberry32(o.seed));
  const S = set.size;
  const size = 2 * S;
  const up = (img: Uint8Array) => {
    const out = new Uint8Array(size * size * 3);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) out.set(img.subarray(((y >> 1) * S + (x >> 1)) * 3, ((y >> 1) * S + (x >> 1)) * 3 + 3), (y * size + x) * 3);
    return out;
  };
  await encode(file, picks.map((i) => up(set.samples[i]!.image)), size, o.fps);
  return { file, labels: picks.map((i) => set.classes[set.samples[i]!.label]!), fps: o.fps, size };
}

export async function makePartsVideo(file: string, o: { perClass: number; seed: number; size: number; fps: number }): Promise<DemoVideo> {
  const order = shuffleInPlace(PART_CLASSES.flatMap((c) => Array.from({ length: o.perClass }, (_, i) => ({ c, i }))), mulberry32(o.seed));
  async function* frames() {
    for (const { c, i } of order) yield await renderPart(o.seed, c, i, o.size);
  }
  await encode(file, frames(), o.size, o.fps);
  return { file, labels: order.map((x) => x.c), fps: o.fps, size: o.size };
}
