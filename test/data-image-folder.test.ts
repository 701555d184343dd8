// Image-folder datasets from real PNG/JPEG/WebP files written by sharp.

import test from 'ava';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CompilerError } from '../compiler/ops/errors.ts';
import { DataError } from '../compiler/data/errors.ts';
import { decodeImage, loadImageFolder } from '../compiler/data/image-folder.ts';
import { decodeImage as decodeFrame } from '../devices/cameras/folder.ts';
import { classCounts } from '../compiler/data/sampling.ts';
import { bands, pattern, pixelAt, pixels, tempDir, writeImage } from './helpers/images.ts';

const RED = [220, 30, 30] as const;
const GREEN = [30, 200, 60] as const;
const BLUE = [20, 40, 230] as const;

let root = '';
let cleanup = async (): Promise<void> => {};

test.before(async () => {
  ({ dir: root, cleanup } = await tempDir('ep-imgfolder-'));
  const good = join(root, 'good');
  // Classes arrive unsorted on disk; labels must follow code-point order: Zebra < ant < bee.
  await writeImage(join(good, 'bee', 'b1.png'), 16, 16, pattern(1));
  await writeImage(join(good, 'bee', 'b0.webp'), 16, 16, pattern(2));
  await writeImage(join(good, 'bee', 'nested', 'b2.jpg'), 16, 16, GREEN);
  await writeImage(join(good, 'ant', 'a0.png'), 16, 16, pattern(3), 1); // grey
  await writeImage(join(good, 'ant', 'a1.PNG'), 16, 16, pattern(4), 4); // RGBA
  await writeImage(join(good, 'Zebra', 'z.jpeg'), 20, 12, RED);
  await writeFile(join(good, 'bee', 'notes.txt'), 'not an image');
  await writeFile(join(good, 'bee', '.hidden.png'), 'editor swap file');
  await mkdir(join(good, '.cache'));
  await writeFile(join(good, 'README.md'), 'files in the root are not a class');

  const wide = join(root, 'wide');
  await writeImage(join(wide, 'x', 'w.png'), 64, 16, bands(64, RED, GREEN, BLUE));

  const split = join(root, 'split');
  for (const [part, n] of [['train', 3], ['val', 2]] as const) {
    for (const cls of ['ok', 'ng']) for (let i = 0; i < n; i++) await writeImage(join(split, part, cls, `${i}.png`), 8, 8, pattern(i));
  }
  const frac = join(root, 'frac');
  for (const [cls, n] of [['a', 10], ['b', 4]] as const) for (let i = 0; i < n; i++) await writeImage(join(frac, cls, `${i}.png`), 8, 8, pattern(i));
});
test.after.always(() => cleanup());

test('png, webp, jpg and nested files load as size×size×3 with sorted classes, paths as sources', async (t) => {
  const set = await loadImageFolder(join(root, 'good'), { size: 16 });
  t.deepEqual(set.classes, ['Zebra', 'ant', 'bee']);
  t.is(set.size, 16);
  t.deepEqual(classCounts(set), { Zebra: 1, ant: 2, bee: 3 });
  t.deepEqual(
    set.samples.map((s) => [s.label, s.source.slice(root.length + 1)]),
    [[0, 'good/Zebra/z.jpeg'], [1, 'good/ant/a0.png'], [1, 'good/ant/a1.PNG'], [2, 'good/bee/b0.webp'], [2, 'good/bee/b1.png'], [2, 'good/bee/nested/b2.jpg']],
  );
  for (const s of set.samples) t.is(s.image.length, 16 * 16 * 3, s.source);
  // Lossless formats at their stored size keep every pixel.
  t.deepEqual(set.samples[4]!.image, pixels(16, 16, pattern(1)));
  t.deepEqual(set.samples[3]!.image, pixels(16, 16, pattern(2)));
  // Grey becomes R = G = B; RGBA drops alpha without blending.
  const grey = set.samples[1]!.image;
  t.deepEqual(pixelAt(grey, 16, 5, 3), [pattern(3)(5, 3)[0], pattern(3)(5, 3)[0], pattern(3)(5, 3)[0]]);
  t.deepEqual(set.samples[2]!.image, pixels(16, 16, pattern(4)));
  // JPEG: close, not exact.
  const jpg = pixelAt(set.samples[5]!.image, 16, 8, 8);
  t.true(jpg.every((v, c) => Math.abs(v - GREEN[c]!) <= 4), `${jpg}`);
});

test("'center-crop' keeps the middle of a wide image, 'stretch' keeps all of it (the runtime's contract)", async (t) => {
  const crop = (await loadImageFolder(join(root, 'wide'), { size: 8, resize: 'center-crop' })).samples[0]!.image;
  const stretch = (await loadImageFolder(join(root, 'wide'), { size: 8, resize: 'stretch' })).samples[0]!.image;
  for (const x of [0, 7]) t.deepEqual(pixelAt(crop, 8, x, 4), GREEN, `crop x=${x}`);
  // sharp's lanczos3 rings a few levels next to the band edges.
  const near = (a: readonly number[], b: readonly number[]): boolean => a.every((v, c) => Math.abs(v - b[c]!) <= 8);
  t.true(near(pixelAt(stretch, 8, 0, 4), RED), `${pixelAt(stretch, 8, 0, 4)}`);
  t.true(near(pixelAt(stretch, 8, 7, 4), BLUE), `${pixelAt(stretch, 8, 7, 4)}`);
});

test('training sees the pixels the runtime folder camera decodes, in both resize modes', async (t) => {
  const files = ['good/Zebra/z.jpeg', 'good/ant/a0.png', 'good/ant/a1.PNG', 'good/bee/b0.webp', 'wide/x/w.png'].map((f) => join(root, f));
  for (const file of files) {
    for (const mode of ['stretch', 'center-crop'] as const) {
      const frame = await decodeFrame(file, { width: 12, height: 12, channels: 3 }, mode);
      t.deepEqual(await decodeImage(file, 12, mode), new Uint8Array(frame), `${file} ${mode}`);
    }
  }
});

test('decoding order does not depend on concurrency', async (t) => {
  const one = await loadImageFolder(join(root, 'good'), { size: 12, concurrency: 1 });
  const many = await loadImageFolder(join(root, 'good'), { size: 12, concurrency: 8 });
  t.deepEqual(many, one);
});

test('split by folder reads train/ and val/; by fraction it is stratified and seeded', async (t) => {
  const s = await loadImageFolder(join(root, 'split'), { size: 8, split: { val: 'folder' } });
  t.deepEqual(s.train.classes, ['ng', 'ok']);
  t.deepEqual(classCounts(s.train), { ng: 3, ok: 3 });
  t.deepEqual(classCounts(s.val), { ng: 2, ok: 2 });
  t.true(s.val.samples.every((x) => x.source.includes('/val/')));

  const f = await loadImageFolder(join(root, 'frac'), { size: 8, split: { val: 0.25, seed: 3 } });
  t.deepEqual(classCounts(f.val), { a: 3, b: 1 }); // round(2.5) = 3, round(1) = 1
  t.deepEqual(classCounts(f.train), { a: 7, b: 3 });
  const all = [...f.train.samples, ...f.val.samples].map((x) => x.source).sort();
  t.is(new Set(all).size, 14);
  const again = await loadImageFolder(join(root, 'frac'), { size: 8, split: { val: 0.25, seed: 3 } });
  t.deepEqual(again.val.samples.map((x) => x.source), f.val.samples.map((x) => x.source));
  const other = await loadImageFolder(join(root, 'frac'), { size: 8, split: { val: 0.25, seed: 4 } });
  t.notDeepEqual(other.val.samples.map((x) => x.source), f.val.samples.map((x) => x.source));
});

test('a corrupt or truncated image is an error naming every such file', async (t) => {
  const dir = join(root, 'corrupt');
  await writeImage(join(dir, 'ok', 'fine.png'), 8, 8, RED);
  await writeFile(join(dir, 'ok', 'broken.png'), 'not a png at all');
  const jpg = await readFile(await writeImage(join(dir, 'ng', 'full.jpg'), 32, 32, pattern(5)));
  await writeFile(join(dir, 'ng', 'cut.jpg'), jpg.subarray(0, jpg.length >> 1));
  const e = await t.throwsAsync(loadImageFolder(dir, { size: 8 }), { instanceOf: CompilerError });
  t.is(e.code, 'BAD_FILE');
  t.regex(e.message, /2 unreadable image\(s\)/);
  t.true(e.message.includes(join(dir, 'ok', 'broken.png')), e.message);
  t.true(e.message.includes(join(dir, 'ng', 'cut.jpg')), e.message);
  t.false(e.message.includes('fine.png'));
});

test('an empty class folder, or one with no images, is an error naming that folder', async (t) => {
  const dir = join(root, 'empty-class');
  await writeImage(join(dir, 'ok', 'a.png'), 8, 8, RED);
  await mkdir(join(dir, 'scratch'), { recursive: true });
  const e = await t.throwsAsync(loadImageFolder(dir, { size: 8 }), { instanceOf: DataError });
  t.is(e.reason, 'EMPTY_CLASS');
  t.true(e.message.startsWith(`${join(dir, 'scratch')}: class "scratch" has no`), e.message);

  const txt = join(root, 'txt-class');
  await writeImage(join(txt, 'ok', 'a.png'), 8, 8, RED);
  await mkdir(join(txt, 'notes'));
  await writeFile(join(txt, 'notes', 'readme.txt'), 'x');
  t.is((await t.throwsAsync(loadImageFolder(txt, { size: 8 }), { instanceOf: DataError })).reason, 'EMPTY_CLASS');
});

test('a root without class folders, a missing root and a file as root are errors naming the root', async (t) => {
  const flat = join(root, 'flat');
  await writeImage(join(flat, 'a.png'), 8, 8, RED);
  const e = await t.throwsAsync(loadImageFolder(flat, { size: 8 }), { instanceOf: DataError });
  t.is(e.reason, 'NO_CLASSES');
  t.true(e.message.startsWith(`${flat}: no class folders`), e.message);

  const missing = join(root, 'nope');
  const m = await t.throwsAsync(loadImageFolder(missing, { size: 8 }), { instanceOf: CompilerError });
  t.is(m.code, 'FILE_NOT_FOUND');
  t.true(m.message.startsWith(`${missing}: no such folder`));

  const file = join(flat, 'a.png');
  t.is((await t.throwsAsync(loadImageFolder(file, { size: 8 }), { instanceOf: CompilerError })).code, 'BAD_FILE');
  t.is((await t.throwsAsync(loadImageFolder(join(root, 'good'), { size: 0 }), { instanceOf: CompilerError })).code, 'CONFIG_INVALID');
});

test('split by folder: a missing val/ or different classes in val/ are errors naming the folder', async (t) => {
  const noVal = join(root, 'no-val');
  await writeImage(join(noVal, 'train', 'ok', 'a.png'), 8, 8, RED);
  const e = await t.throwsAsync(loadImageFolder(noVal, { size: 8, split: { val: 'folder' } }), { instanceOf: CompilerError });
  t.is(e.code, 'FILE_NOT_FOUND');
  t.true(e.message.startsWith(join(noVal, 'val')), e.message);

  const odd = join(root, 'odd-val');
  await writeImage(join(odd, 'train', 'ok', 'a.png'), 8, 8, RED);
  await writeImage(join(odd, 'train', 'ng', 'a.png'), 8, 8, RED);
  await writeImage(join(odd, 'val', 'ok', 'a.png'), 8, 8, RED);
  const c = await t.throwsAsync(loadImageFolder(odd, { size: 8, split: { val: 'folder' } }), { instanceOf: DataError });
  t.is(c.reason, 'CLASS_MISMATCH');
  t.true(c.message.startsWith(`${join(odd, 'val')}: classes [ok] differ`), c.message);

  const few = join(root, 'few');
  await writeImage(join(few, 'ok', 'a.png'), 8, 8, RED);
  await writeImage(join(few, 'ok', 'b.png'), 8, 8, RED);
  await writeImage(join(few, 'ng', 'a.png'), 8, 8, RED);
  const f = await t.throwsAsync(loadImageFolder(few, { size: 8, split: { val: 0.5 } }), { instanceOf: DataError });
  t.is(f.reason, 'TOO_FEW_SAMPLES');
  t.regex(f.message, /class "ng" has 1 sample/);
});
