/**
 * Image-folder datasets: `root/<class>/*.{jpg,jpeg,png,webp}` (files in sub-folders of a class
 * count too), or `root/train/<class>` + `root/val/<class>` for a split by folder. Images are decoded
 * and resized by sharp exactly as the runtime's folder camera does (devices/cameras/folder.ts: fit
 * 'fill' or 'cover' + centre, sharp's default kernel), so load at the model's input size to train
 * on the pixels the line will see. EXIF orientation is not applied (as torchvision's ImageFolder
 * and line cameras); alpha is dropped; grey, CMYK and 16-bit images become 8-bit sRGB.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { CompilerError } from '../ops/errors.ts';
import { DataError, checkInt } from './errors.ts';
import { splitFraction } from './sampling.ts';
import type { LabeledSet, ResizeMode, Sample, Split } from './types.ts';

const IMAGE = /\.(jpe?g|png|webp)$/i;

export interface ImageFolderOptions {
  /** Stored side in pixels: every image becomes size×size×3. */
  size: number;
  /** Default 'center-crop'; use the value the manifest will carry to the runtime. */
  resize?: ResizeMode;
  /** Images decoded at once (sharp runs each on a libuv thread). Default 4. */
  concurrency?: number;
}

export interface FolderSplit {
  /** 'folder': root/train and root/val. A number: that fraction of each class to val, seeded. */
  val: 'folder' | number;
  /** For a fraction split; default 0. */
  seed?: number;
}

export function loadImageFolder(root: string, options: ImageFolderOptions & { split: FolderSplit }): Promise<Split>;
export function loadImageFolder(root: string, options: ImageFolderOptions & { split?: undefined }): Promise<LabeledSet>;
export async function loadImageFolder(root: string, options: ImageFolderOptions & { split?: FolderSplit }): Promise<LabeledSet | Split> {
  const split = options.split;
  if (split === undefined) return loadClasses(root, basename(root), options);
  if (split.val === 'folder') {
    const train = await loadClasses(join(root, 'train'), `${basename(root)}:train`, options);
    const val = await loadClasses(join(root, 'val'), `${basename(root)}:val`, options);
    if (val.classes.join('\n') !== train.classes.join('\n')) {
      throw new DataError('CLASS_MISMATCH', `${join(root, 'val')}: classes [${val.classes.join(', ')}] differ from ${join(root, 'train')}: [${train.classes.join(', ')}]; give both folders the same class sub-folders`);
    }
    return { train, val };
  }
  return splitFraction(await loadClasses(root, basename(root), options), split.val, split.seed ?? 0);
}

/** Sorted class folder names under root (code-point order, so labels agree across machines). */
async function listClassFolders(root: string): Promise<string[]> {
  let st;
  try {
    st = await stat(root);
  } catch {
    throw new CompilerError('FILE_NOT_FOUND', `${root}: no such folder; expected ${root}/<class>/*.{jpg,jpeg,png,webp}`);
  }
  if (!st.isDirectory()) throw new CompilerError('BAD_FILE', `${root}: is a file, expected a folder of class folders`);
  const names: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    // A symlinked class folder counts; stat follows the link.
    if (e.isDirectory() || (e.isSymbolicLink() && (await stat(join(root, e.name))).isDirectory())) names.push(e.name);
  }
  if (names.length === 0) throw new DataError('NO_CLASSES', `${root}: no class folders; put images in ${root}/<class>/ (one folder per class)`);
  return names.sort(codePoint);
}

/** Image files of one class folder (recursively), sorted by relative path. */
export async function listImages(classDir: string): Promise<string[]> {
  const entries = await readdir(classDir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile() && IMAGE.test(e.name) && !e.name.startsWith('.'))
    .map((e) => relative(classDir, join(e.parentPath, e.name)))
    .sort(codePoint);
  return files.map((f) => join(classDir, f));
}

async function loadClasses(root: string, name: string, options: ImageFolderOptions): Promise<LabeledSet> {
  const size = checkInt(options.size, 'size', 1);
  const concurrency = checkInt(options.concurrency ?? 4, 'concurrency', 1);
  const resize = options.resize ?? 'center-crop';
  const classes = await listClassFolders(root);
  const files: { file: string; label: number }[] = [];
  for (const [label, cls] of classes.entries()) {
    const list = await listImages(join(root, cls));
    if (list.length === 0) throw new DataError('EMPTY_CLASS', `${join(root, cls)}: class "${cls}" has no .jpg/.jpeg/.png/.webp images; add some or remove the folder`);
    for (const file of list) files.push({ file, label });
  }
  const failures: string[] = [];
  const images = await mapLimit(files, concurrency, async ({ file }) => {
    try {
      return await decodeImage(file, size, resize);
    } catch (e) {
      failures.push(`${file} (${(e as Error).message})`);
      return new Uint8Array(0);
    }
  });
  if (failures.length) {
    failures.sort(codePoint);
    const shown = failures.slice(0, 10).join('; ');
    const more = failures.length > 10 ? `; … ${failures.length - 10} more` : '';
    throw new CompilerError('BAD_FILE', `${failures.length} unreadable image(s) under ${root}: ${shown}${more}; fix or remove them`);
  }
  const samples: Sample[] = files.map(({ file, label }, i) => ({ image: images[i]!, label, source: file }));
  return { name, classes, size, samples };
}

/** One image file → size×size×3 RGB uint8, the runtime folder camera's sharp pipeline. */
export async function decodeImage(file: string, size: number, resize: ResizeMode): Promise<Uint8Array> {
  return toRgb(sharp(file), size, resize);
}

/** Resize, drop alpha, 8-bit sRGB, raw: the one pipeline for files and in-memory images alike. */
export async function toRgb(img: Sharp, size: number, resize: ResizeMode): Promise<Uint8Array> {
  const { data, info } = await img
    .resize(size, size, { fit: resize === 'stretch' ? 'fill' : 'cover', position: 'centre' })
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || data.length !== size * size * 3) throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** fn over items with at most `limit` in flight; results in input order whatever order they finish in. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const codePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
