// Fashion-MNIST from the Debian idx files, plus broken copies of them.

import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CompilerError } from '../compiler/ops/errors.ts';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadFashionMnist } from '../compiler/data/fashion-mnist.ts';
import { classCounts } from '../compiler/data/sampling.ts';
import { pixelAt, tempDir } from './helpers/images.ts';

const have = existsSync(join(FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'));
const fm = have ? test : test.skip;

/** Image i of the t10k file, read here independently of the loader. */
let t10k: Uint8Array | undefined;
async function rawTestImage(i: number): Promise<Uint8Array> {
  t10k ??= gunzipSync(await readFile(join(FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz')));
  return t10k.subarray(16 + i * 784, 16 + (i + 1) * 784);
}

fm('classes 5–9 of the test split: relabelled 0–4, names kept, limit per class, 28 padded to 32 exactly', async (t) => {
  const set = loadFashionMnist({ split: 'test', classes: [5, 6, 7, 8, 9], limit: 20 });
  t.deepEqual(set.classes, ['sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']);
  t.is(set.size, 32);
  t.deepEqual(classCounts(set), { sandal: 20, shirt: 20, sneaker: 20, bag: 20, 'ankle boot': 20 });
  // The first test image is an ankle boot (original class 9 → label 4).
  t.is(set.samples[0]!.source, 'fashion-mnist:test:0');
  t.is(set.samples[0]!.label, 4);
  let compared = 0;
  for (const s of set.samples.slice(0, 5)) {
    const i = Number(s.source.split(':')[2]);
    const raw = await rawTestImage(i);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const inner = x >= 2 && x < 30 && y >= 2 && y < 30;
        const v = inner ? raw[(y - 2) * 28 + (x - 2)]! : 0;
        const p = pixelAt(s.image, 32, x, y);
        if (p[0] !== v || p[1] !== v || p[2] !== v) return t.fail(`${s.source} (${x},${y}): got ${p}, expected grey ${v}`);
        compared++;
      }
    }
  }
  t.is(compared, 5 * 32 * 32, 'every pixel of the first five images matched the idx file');
});

fm('the whole test split, all classes: 1000 per class, file order', (t) => {
  const set = loadFashionMnist({ split: 'test', size: 28 });
  t.is(set.samples.length, 10_000);
  t.deepEqual(set.classes, [...FASHION_MNIST_CLASSES]);
  t.true(Object.values(classCounts(set)).every((n) => n === 1000));
  t.deepEqual(set.samples.slice(0, 3).map((s) => s.source), ['fashion-mnist:test:0', 'fashion-mnist:test:1', 'fashion-mnist:test:2']);
});

fm('train split with a per-class limit; other sizes pad evenly or resize bilinearly', async (t) => {
  const train = loadFashionMnist({ split: 'train', limit: 3 });
  t.is(train.samples.length, 30);
  t.is(train.samples[0]!.source, 'fashion-mnist:train:0');
  t.is(train.classes[train.samples[0]!.label], 'ankle boot');

  const s28 = loadFashionMnist({ split: 'test', size: 28, limit: 1, classes: [9] }).samples[0]!;
  const s40 = loadFashionMnist({ split: 'test', size: 40, fit: 'pad', limit: 1, classes: [9] }).samples[0]!;
  const raw = await rawTestImage(0);
  t.deepEqual(pixelAt(s28.image, 28, 14, 20), [raw[20 * 28 + 14]!, raw[20 * 28 + 14]!, raw[20 * 28 + 14]!]);
  t.deepEqual(pixelAt(s40.image, 40, 6 + 14, 6 + 20), pixelAt(s28.image, 28, 14, 20));
  t.deepEqual(pixelAt(s40.image, 40, 5, 20), [0, 0, 0]);

  // Above 32 px the default keeps the 32-px framing (2 px margin), scaled: 4 px of black at 64.
  const s64 = loadFashionMnist({ split: 'test', size: 64, limit: 1, classes: [9] }).samples[0]!;
  const s32 = loadFashionMnist({ split: 'test', size: 32, limit: 1, classes: [9] }).samples[0]!;
  for (const [x, y] of [[1, 30], [30, 2], [62, 40], [3, 3]] as const) t.deepEqual(pixelAt(s64.image, 64, x, y), [0, 0, 0]);
  const sum = (a: Uint8Array) => a.reduce((p, v) => p + v, 0);
  t.true(Math.abs(sum(s64.image) / (4 * sum(s32.image)) - 1) < 0.03, 'the same picture at four times the area');
  const bil = loadFashionMnist({ split: 'test', size: 32, fit: 'bilinear', limit: 1, classes: [9] }).samples[0]!;
  const pad = loadFashionMnist({ split: 'test', size: 32, limit: 1, classes: [9] }).samples[0]!;
  t.notDeepEqual(bil.image, pad.image);
  // A stretch of the whole 28 to 32 reaches the border; padding leaves it black.
  t.true(Math.max(...bil.image) > 200);
  const odd = loadFashionMnist({ split: 'test', size: 31, limit: 1, classes: [0] });
  t.is(odd.samples[0]!.image.length, 31 * 31 * 3);
  t.throws(() => loadFashionMnist({ split: 'test', size: 31, fit: 'pad' }), { instanceOf: CompilerError, message: /cannot pad 28×28 to 31×31/ });
});

test('bad arguments name the field', (t) => {
  t.throws(() => loadFashionMnist({ split: 'test', classes: [5, 10] }), { instanceOf: CompilerError, message: /classes: 10 is not a class index 0–9/ });
  t.throws(() => loadFashionMnist({ split: 'test', classes: [5, 5] }), { instanceOf: CompilerError, message: /names a class twice/ });
  t.throws(() => loadFashionMnist({ split: 'val' as 'test' }), { instanceOf: CompilerError, message: /split must be 'train' or 'test', got "val"/ });
  t.throws(() => loadFashionMnist({ split: 'test', limit: 0 }), { instanceOf: CompilerError, message: /limit: expected an integer ≥ 1, got 0/ });
});

test('missing and broken idx files are errors naming the file', async (t) => {
  const { dir, cleanup } = await tempDir('ep-fmnist-');
  t.teardown(cleanup);
  const missing = t.throws(() => loadFashionMnist({ split: 'test', dir }), { instanceOf: CompilerError });
  t.is(missing.code, 'FILE_NOT_FOUND');
  t.true(missing.message.startsWith(`${join(dir, 't10k-images-idx3-ubyte.gz')}: no such file`), missing.message);

  // A tiny valid pair (3 images of 28×28), unpacked, to break one way at a time.
  const header = (magic: number, dims: number[]): Buffer => {
    const b = Buffer.alloc(4 + 4 * dims.length);
    b.writeUInt32BE(magic, 0);
    dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
    return b;
  };
  const images = Buffer.concat([header(2051, [3, 28, 28]), Buffer.alloc(3 * 784, 7)]);
  const labels = Buffer.concat([header(2049, [3]), Buffer.from([0, 5, 9])]);
  const img = join(dir, 't10k-images-idx3-ubyte');
  const lab = join(dir, 't10k-labels-idx1-ubyte');
  await writeFile(img, images);
  await writeFile(lab, labels);
  const ok = loadFashionMnist({ split: 'test', dir });
  t.deepEqual(ok.samples.map((s) => s.label), [0, 5, 9]);

  const cases: [string, Buffer, Buffer, string, RegExp][] = [
    ['labels given as images', labels, labels, img, /not an idx images \(magic 2051\) file \(magic 2049\)/],
    ['truncated images', images.subarray(0, 1000), labels, img, /header says 3×28×28 = 2352 bytes of data, file has 984/],
    ['count mismatch', images, Buffer.concat([header(2049, [2]), Buffer.from([0, 1])]), lab, /2 labels but .* has 3 images/],
    ['label out of range', images, Buffer.concat([header(2049, [3]), Buffer.from([0, 1, 12])]), lab, /label 12 at index 2 is not a class 0–9/],
  ];
  for (const [what, i, l, file, re] of cases) {
    await writeFile(img, i);
    await writeFile(lab, l);
    const e = t.throws(() => loadFashionMnist({ split: 'test', dir }), { instanceOf: CompilerError }, what);
    t.is(e.code, 'BAD_FILE', what);
    t.true(e.message.startsWith(`${file}:`), `${what}: ${e.message}`);
    t.regex(e.message, re, what);
  }

  // A .gz is preferred over the unpacked file; a truncated gzip names the .gz.
  await writeFile(img, images);
  await writeFile(lab, labels);
  const gz = gzipSync(images);
  await writeFile(`${img}.gz`, gz.subarray(0, gz.length - 20));
  const e = t.throws(() => loadFashionMnist({ split: 'test', dir }), { instanceOf: CompilerError });
  t.is(e.code, 'BAD_FILE');
  t.true(e.message.startsWith(`${img}.gz: not a readable gzip file`), e.message);
});
