/**
 * The demo's sample video: parts from the generator (a seed the model never trained on) passing
 * the camera one per frame, encoded by ffmpeg. Returns the label of every frame, in order.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolveFfmpeg } from '../../devices/cameras/ffmpeg.ts';
import { PART_CLASSES, renderPart } from '../data/parts.ts';
import { mulberry32, shuffleInPlace } from '../data/rng.ts';

export interface DemoVideo { file: string; labels: string[]; fps: number; size: number }

export async function makePartsVideo(file: string, o: { perClass: number; seed: number; size: number; fps: number }): Promise<DemoVideo> {
  const order = shuffleInPlace(PART_CLASSES.flatMap((c) => Array.from({ length: o.perClass }, (_, i) => ({ c, i }))), mulberry32(o.seed));
  // Lossless-ish H.264 in 4:4:4 keeps thin scratches visible after compression.
  const ff = spawn(resolveFfmpeg(), ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${o.size}x${o.size}`, '-r', String(o.fps), '-i', 'pipe:0', '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '8', '-pix_fmt', 'yuv444p', file], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  ff.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  for (const { c, i } of order) {
    const frame = await renderPart(o.seed, c, i, o.size);
    if (!ff.stdin.write(frame)) await once(ff.stdin, 'drain');
  }
  ff.stdin.end();
  const [code] = (await once(ff, 'close')) as [number];
  if (code !== 0) throw new Error(`ffmpeg could not encode ${file} (exit ${code}): ${stderr.trim().split('\n').at(-1)}`);
  return { file, labels: order.map((x) => x.c), fps: o.fps, size: o.size };
}
