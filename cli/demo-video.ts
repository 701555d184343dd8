/**
 * The demo's sample videos, one item per frame, encoded by ffmpeg: Fashion-MNIST items on a sorting
 * line (the demo) or generated parts (bench:runtime). Each returns the label of every frame, in order.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { CompilerError } from '../compiler/ops/errors.ts';
import { resolveFfmpeg } from '../devices/cameras/ffmpeg.ts';
import { PART_CLASSES, renderPart, type Line } from '../compiler/data/parts.ts';
import { mulberry32, shuffleInPlace } from '../compiler/data/rng.ts';
import { loadFashionMnist } from '../compiler/data/fashion-mnist.ts';
import { indicesByClass } from '../compiler/data/sampling.ts';

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
 * The items on the demo's sorting line: Fashion-MNIST test images (MIT licence, Zalando Research)
 * that the demo model neither trained nor validated on. A sample is committed (the PNG sheet and
 * its JSON), so `npm run demo` needs no dataset on the machine; `demo --rebuild`, which needs the
 * Debian dataset anyway to train, writes it again with writeDemoItems().
 */
export interface DemoItems {
  /** Class names in label order. */
  classes: string[];
  /** Per item, in line order: its class index and its index in the test split. */
  labels: number[];
  indices: number[];
  /** Side of each (grey) item in the sheet. */
  size: number;
}

/** Picks `perClass` test images per class after the first `skipPerClass` (the compile step validates on those), shuffled. */
export async function writeDemoItems(png: string, o: { classes: number[]; perClass: number; skipPerClass: number; seed: number }): Promise<DemoItems> {
  const set = loadFashionMnist({ split: 'test', classes: o.classes });
  const firsts = indicesByClass(set).map((idx) => idx.slice(o.skipPerClass, o.skipPerClass + o.perClass));
  const picks = shuffleInPlace(firsts.flat(), mulberry32(o.seed));
  const S = set.size;
  // One row of grey tiles (the set's RGB channels are equal).
  const sheet = new Uint8Array(picks.length * S * S);
  picks.forEach((p, k) => {
    const img = set.samples[p]!.image;
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) sheet[y * picks.length * S + k * S + x] = img[(y * S + x) * 3]!;
  });
  await sharp(sheet, { raw: { width: picks.length * S, height: S, channels: 1 } }).png({ compressionLevel: 9 }).toFile(png);
  const items: DemoItems = { classes: set.classes, labels: picks.map((p) => set.samples[p]!.label), indices: picks.map((p) => Number(set.samples[p]!.source.split(':').at(-1))), size: S };
  writeFileSync(png.replace(/\.png$/, '.json'), JSON.stringify({ source: 'Fashion-MNIST test split (t10k), MIT licence, Zalando Research', ...items }) + '\n');
  return items;
}

/** The committed items: at most `perClass` of each class, in line order. */
export async function readDemoItems(png: string, perClass: number): Promise<{ items: DemoItems; images: Uint8Array[] }> {
  const meta = JSON.parse(readFileSync(png.replace(/\.png$/, '.json'), 'utf8')) as DemoItems;
  const stored = Math.min(...meta.classes.map((_, c) => meta.labels.filter((l) => l === c).length));
  if (perClass > stored) throw new CompilerError('FLAG_INVALID', `--per-class ${perClass}: ${png} holds ${stored} items per class; ask for fewer, or run \`npm run demo -- --rebuild --per-class ${perClass}\` where the Fashion-MNIST dataset is installed`);
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const S = meta.size;
  const n = info.width / S;
  const seen = new Array<number>(meta.classes.length).fill(0);
  const keep = meta.labels.flatMap((l, k) => (seen[l]!++ < perClass ? [k] : []));
  const images = keep.map((k) => {
    const img = new Uint8Array(S * S * 3);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) img.fill(data[y * n * S + k * S + x]!, (y * S + x) * 3, (y * S + x) * 3 + 3);
    return img;
  });
  return { items: { ...meta, labels: keep.map((k) => meta.labels[k]!), indices: keep.map((k) => meta.indices[k]!) }, images };
}

/** The items passing the camera, upscaled ×2 (nearest) so the camera scales them back down like a real sensor image. */
export async function makeFashionVideo(file: string, items: string, o: { perClass: number; fps: number }): Promise<DemoVideo> {
  const { items: meta, images } = await readDemoItems(items, o.perClass);
  const S = meta.size;
  const size = 2 * S;
  const up = (img: Uint8Array) => {
    const out = new Uint8Array(size * size * 3);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) out.set(img.subarray(((y >> 1) * S + (x >> 1)) * 3, ((y >> 1) * S + (x >> 1)) * 3 + 3), (y * size + x) * 3);
    return out;
  };
  await encode(file, images.map(up), size, o.fps);
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
