// Real image files for dataset tests, written by sharp into a temp dir the test removes.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

export type Rgb = readonly [number, number, number];

export async function tempDir(prefix = 'ep-data-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** W×H×3 pixels from a function of (x, y). */
export function pixels(width: number, height: number, at: (x: number, y: number) => Rgb): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out.set(at(x, y), (y * width + x) * 3);
  return out;
}

/** A gradient-and-checker pattern: distinct values per pixel, so any misplacement shows. */
export const pattern = (seed: number) => (x: number, y: number): Rgb => [(x * 7 + seed * 31) % 256, (y * 11 + seed * 17) % 256, ((x ^ y) * 13 + seed) % 256];

/**
 * Writes an image; the extension picks the format. PNG and WebP are lossless (exact pixels); JPEG
 * is quality 95. `channels` 1 writes a grey image, 4 an RGBA one (alpha 128).
 */
export async function writeImage(file: string, width: number, height: number, fill: Rgb | ((x: number, y: number) => Rgb), channels: 1 | 3 | 4 = 3): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  const rgb = pixels(width, height, typeof fill === 'function' ? fill : () => fill);
  let img;
  if (channels === 1) {
    const grey = new Uint8Array(width * height).map((_, i) => rgb[i * 3]!);
    img = sharp(grey, { raw: { width, height, channels: 1 } }).toColourspace('b-w');
  } else if (channels === 4) {
    const rgba = new Uint8Array(width * height * 4).map((_, i) => (i % 4 === 3 ? 128 : rgb[(i >> 2) * 3 + (i % 4)]!));
    img = sharp(rgba, { raw: { width, height, channels: 4 } });
  } else {
    img = sharp(rgb, { raw: { width, height, channels: 3 } });
  }
  if (/\.png$/i.test(file)) img = img.png();
  else if (/\.webp$/i.test(file)) img = img.webp({ lossless: true });
  else if (/\.jpe?g$/i.test(file)) img = img.jpeg({ quality: 95, chromaSubsampling: '4:4:4' });
  else throw new Error(`writeImage: unknown extension in ${file}`);
  await img.toFile(file);
  return file;
}

/**
 * A wide image in three vertical bands: left quarter, middle half, right quarter. A centre crop to
 * a square sees only the middle; a stretch keeps all three.
 */
export const bands = (width: number, left: Rgb, middle: Rgb, right: Rgb) => (x: number): Rgb => (x < width / 4 ? left : x >= (3 * width) / 4 ? right : middle);

/** Pixel (x, y) of a size×size×3 image. */
export const pixelAt = (img: Uint8Array, size: number, x: number, y: number): Rgb => {
  const i = (y * size + x) * 3;
  return [img[i]!, img[i + 1]!, img[i + 2]!];
};

/** An in-memory set: counts[c] samples of class c, each a distinct seeded pattern. */
export function syntheticSet(counts: Record<string, number>, size = 4): import('../../compiler/data/types.ts').LabeledSet {
  const classes = Object.keys(counts);
  const samples = classes.flatMap((cls, label) =>
    Array.from({ length: counts[cls]! }, (_, i) => ({ image: pixels(size, size, pattern(label * 1000 + i)), label, source: `${cls}/${i}` })),
  );
  return { name: 'synthetic', classes, size, samples };
}
