/**
 * Fashion-MNIST from its idx files (Debian's dataset-fashion-mnist puts them in
 * /usr/share/datasets/fashion-mnist/; plain or .gz). Grey 28×28 images become RGB by copying the
 * grey value into all three channels. To reach the ViT's 32×32 the default is 'pad': 2 black pixels
 * on each side, as many small-ViT/CIFAR-style papers do; it keeps every original pixel exact and the
 * background is already 0. Larger inputs default to 'pad-scale': the same 32×32 frame scaled up
 * (this package's JS bilinear resampler), so a garment fills the frame as it does at 32 px instead
 * of sitting small in a wide black margin. 'bilinear' stretches 28×28 to any size.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CompilerError } from '../ops/errors.ts';
import { checkInt } from './errors.ts';
import { resizeBilinearU8 } from './resample.ts';
import type { LabeledSet, Sample } from './types.ts';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = ['t-shirt/top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot'] as const;

/** The frame Fashion-MNIST is padded to (28 + 2 each side), at 32 px and, scaled, above. */
const PAD_TO = 32;

const IMAGES_MAGIC = 0x00000803; // ubyte, 3 dims
const LABELS_MAGIC = 0x00000801; // ubyte, 1 dim

export interface FashionMnistOptions {
  /** 'train' (60 000) or 'test' (10 000, the t10k files). */
  split: 'train' | 'test';
  /** Folder of the idx files; default FASHION_MNIST_DIR. */
  dir?: string;
  /** Stored side; default 32 (28 padded). */
  size?: number;
  /** How 28 becomes `size`; default 'pad' up to 32 (when size − 28 is even), 'pad-scale' above 32, else 'bilinear'. */
  fit?: 'pad' | 'pad-scale' | 'bilinear';
  /** Original class indices (0–9) to keep, relabelled 0..m-1 in this order; names kept. Default all. */
  classes?: readonly number[];
  /** At most this many samples per class (the first ones in file order), for fast tests. */
  limit?: number;
}

/** Parsed idx pair: n grey rows×cols images and their labels. */
export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  /** [count, rows, cols] uint8. */
  pixels: Uint8Array;
  labels: Uint8Array;
}

export function loadFashionMnist(options: FashionMnistOptions): LabeledSet {
  const dir = options.dir ?? FASHION_MNIST_DIR;
  const prefix = options.split === 'train' ? 'train' : options.split === 'test' ? 't10k' : undefined;
  if (!prefix) throw new CompilerError('INTERNAL', `fashion-mnist: split must be 'train' or 'test', got ${JSON.stringify(options.split)}`);
  const size = checkInt(options.size ?? 32, 'fashion-mnist size', 1);
  const classes = options.classes ?? FASHION_MNIST_CLASSES.map((_, i) => i);
  for (const c of classes) {
    if (!Number.isInteger(c) || c < 0 || c > 9) throw new CompilerError('CONFIG_INVALID', `fashion-mnist classes: ${c} is not a class index 0–9 (${FASHION_MNIST_CLASSES.map((n, i) => `${i}:${n}`).join(', ')})`);
  }
  if (new Set(classes).size !== classes.length) throw new CompilerError('CONFIG_INVALID', `fashion-mnist classes: [${classes.join(', ')}] names a class twice`);
  const limit = options.limit === undefined ? Infinity : checkInt(options.limit, 'fashion-mnist limit', 1);
  const idx = readIdxPair(idxPath(dir, `${prefix}-images-idx3-ubyte`), idxPath(dir, `${prefix}-labels-idx1-ubyte`));
  const fit = options.fit ?? (size > PAD_TO ? 'pad-scale' : size >= idx.rows && (size - idx.rows) % 2 === 0 ? 'pad' : 'bilinear');
  if (fit === 'pad' && (size < idx.rows || (size - idx.rows) % 2 !== 0 || idx.rows !== idx.cols)) {
    throw new CompilerError('CONFIG_INVALID', `fashion-mnist: cannot pad ${idx.rows}×${idx.cols} to ${size}×${size} evenly; use fit 'bilinear' or an even margin`);
  }

  const relabel = new Map(classes.map((c, i) => [c, i]));
  const taken = new Array<number>(classes.length).fill(0);
  const picked: number[] = [];
  for (let i = 0; i < idx.count; i++) {
    const label = relabel.get(idx.labels[i]!);
    if (label === undefined || taken[label]! >= limit) continue;
    taken[label]!++;
    picked.push(i);
  }
  // One backing buffer for the whole set: 30 000 small typed arrays would each carry their own allocation.
  const px = size * size * 3;
  const all = new Uint8Array(picked.length * px);
  const samples: Sample[] = picked.map((i, n) => {
    const image = all.subarray(n * px, (n + 1) * px);
    const grey = idx.pixels.subarray(i * idx.rows * idx.cols, (i + 1) * idx.rows * idx.cols);
    if (fit === 'pad') padGreyToRgb(grey, idx.rows, size, image);
    else if (fit === 'pad-scale') greyToRgb(resizeBilinearU8(padGrey(grey, idx.rows, PAD_TO), PAD_TO, PAD_TO, 1, size, size), image);
    else greyToRgb(resizeBilinearU8(grey, idx.rows, idx.cols, 1, size, size), image);
    return { image, label: relabel.get(idx.labels[i]!)!, source: `fashion-mnist:${options.split}:${i}` };
  });
  const name = `fashion-mnist:${options.split}${options.classes ? `[${classes.join(',')}]` : ''}`;
  return { name, classes: classes.map((c) => FASHION_MNIST_CLASSES[c]!), size, samples };
}

/** Prefer the .gz Debian ships; accept an unpacked file of the same name. */
function idxPath(dir: string, base: string): string {
  for (const f of [join(dir, `${base}.gz`), join(dir, base)]) if (existsSync(f)) return f;
  throw new CompilerError('FILE_NOT_FOUND', `${join(dir, `${base}.gz`)}: no such file (nor ${base} unpacked); install Debian's dataset-fashion-mnist or point dir at the idx files`);
}

/** Reads and cross-checks an images + labels idx pair. */
function readIdxPair(imagesFile: string, labelsFile: string): IdxImages {
  const img = readIdx(imagesFile, IMAGES_MAGIC, 3);
  const lab = readIdx(labelsFile, LABELS_MAGIC, 1);
  const [count, rows, cols] = img.dims as [number, number, number];
  if (lab.dims[0] !== count) throw new CompilerError('BAD_FILE', `${labelsFile}: ${lab.dims[0]} labels but ${imagesFile} has ${count} images; use files from the same split`);
  for (let i = 0; i < count; i++) {
    if (lab.data[i]! > 9) throw new CompilerError('BAD_FILE', `${labelsFile}: label ${lab.data[i]} at index ${i} is not a class 0–9`);
  }
  return { count, rows, cols, pixels: img.data, labels: lab.data };
}

function readIdx(file: string, magic: number, ndim: number): { dims: number[]; data: Uint8Array } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new CompilerError('BAD_FILE', `${file}: cannot read (${(e as Error).message})`);
  }
  if (file.endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new CompilerError('BAD_FILE', `${file}: not a readable gzip file (${(e as Error).message}); re-download or unpack it`);
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const head = 4 + 4 * ndim;
  const kind = ndim === 3 ? 'images (magic 2051)' : 'labels (magic 2049)';
  if (bytes.length < head || view.getUint32(0) !== magic) {
    const got = bytes.length >= 4 ? view.getUint32(0) : 'none';
    throw new CompilerError('BAD_FILE', `${file}: not an idx ${kind} file (magic ${got}); check the file name (images vs labels) and that it is not truncated`);
  }
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== head + n) throw new CompilerError('BAD_FILE', `${file}: header says ${dims.join('×')} = ${n} bytes of data, file has ${bytes.length - head}; the file is truncated or corrupt`);
  return { dims, data: bytes.subarray(head) };
}

/** 28×28 grey → size×size×3 with an even black margin; original pixels unchanged. */
function padGreyToRgb(grey: Uint8Array, n: number, size: number, out: Uint8Array): void {
  const m = (size - n) / 2;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const v = grey[y * n + x]!;
      const o = ((y + m) * size + x + m) * 3;
      out[o] = v;
      out[o + 1] = v;
      out[o + 2] = v;
    }
  }
}

/** 28×28 grey → n×n grey with an even black margin. */
function padGrey(grey: Uint8Array, rows: number, n: number): Uint8Array {
  const out = new Uint8Array(n * n);
  const m = (n - rows) / 2;
  for (let y = 0; y < rows; y++) out.set(grey.subarray(y * rows, (y + 1) * rows), (y + m) * n + m);
  return out;
}

function greyToRgb(grey: Uint8Array, out: Uint8Array): void {
  for (let i = 0; i < grey.length; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = grey[i]!;
}
