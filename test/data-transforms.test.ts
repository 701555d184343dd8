// Samples → normalised NCHW batches: exactness without augmentation, flips, crops, resizing.

import test from 'ava';
import { CompilerError } from '../compiler/ops/errors.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { mulberry32 } from '../devices/rng.ts';
import { preprocessFor, randomResizedCropBox, toBatch } from '../compiler/data/transforms.ts';
import type { Preprocess } from '../compiler/data/types.ts';
import { syntheticSet } from './helpers/images.ts';

const S = 8;
const set = syntheticSet({ a: 3, b: 2 }, S);
const pre: Preprocess = { imgSize: S, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize: 'center-crop' };

/** x[b, c, y, x] of an NCHW batch of side S. */
const at = (x: Float32Array, b: number, c: number, yy: number, xx: number, side = S): number => x[((b * 3 + c) * side + yy) * side + xx]!;
const expected = (v: number, c: number, p = pre): number => Math.fround((v / 255 - p.mean[c]!) / p.std[c]!);

test('no augmentation at the stored size: x = fround((pixel/255 − mean)/std) exactly, NCHW', (t) => {
  const batch = toBatch(set.samples, pre);
  t.is(batch.x.length, 5 * 3 * S * S);
  t.deepEqual([...batch.y], [0, 0, 0, 1, 1]);
  t.deepEqual(batch.sources, ['a/0', 'a/1', 'a/2', 'b/0', 'b/1']);
  let bad = 0;
  set.samples.forEach((s, b) => {
    for (let yy = 0; yy < S; yy++) for (let xx = 0; xx < S; xx++) for (let c = 0; c < 3; c++) {
      if (!Object.is(at(batch.x, b, c, yy, xx), expected(s.image[(yy * S + xx) * 3 + c]!, c))) bad++;
    }
  });
  t.is(bad, 0);
});

test('the backbone table gives the preprocessing: vit_micro_patch4_32 is 32 px, mean = std = 0.5', (t) => {
  const p = preprocessFor(vitConfig('vit_micro_patch4_32'));
  t.deepEqual(p, { imgSize: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: 'center-crop' });
  const white = { image: new Uint8Array(32 * 32 * 3).fill(255), label: 0, source: 'w' };
  const black = { image: new Uint8Array(32 * 32 * 3), label: 0, source: 'k' };
  const x = toBatch([white, black], p).x;
  t.is(x[0], 1);
  t.is(x[x.length - 1], -1);
});

test('hflip mirrors columns exactly; a full-size crop is the identity', (t) => {
  const flipped = toBatch(set.samples.slice(0, 1), pre, { augment: { hflip: true }, rng: () => 0 }).x; // 0 < 0.5: flip
  const kept = toBatch(set.samples.slice(0, 1), pre, { augment: { hflip: true }, rng: () => 0.9 }).x;
  const plain = toBatch(set.samples.slice(0, 1), pre).x;
  t.deepEqual(kept, plain);
  let bad = 0;
  for (let c = 0; c < 3; c++) for (let yy = 0; yy < S; yy++) for (let xx = 0; xx < S; xx++) if (at(flipped, 0, c, yy, xx) !== at(plain, 0, c, yy, S - 1 - xx)) bad++;
  t.is(bad, 0);
  const full = toBatch(set.samples, pre, { augment: { randomResizedCrop: { scale: [1, 1], ratio: [1, 1] } }, rng: mulberry32(1) }).x;
  t.deepEqual(full, toBatch(set.samples, pre).x);
});

test('random resized crop: boxes stay inside, area and ratio within range, like torchvision', (t) => {
  const r = mulberry32(5);
  for (let i = 0; i < 2000; i++) {
    const b = randomResizedCropBox(r, 32, 32, [0.35, 1], [3 / 4, 4 / 3]);
    if (b.x < 0 || b.y < 0 || b.x + b.w > 32 || b.y + b.h > 32) return t.fail(`box out of the image: ${JSON.stringify(b)}`);
    const area = (b.w * b.h) / 1024;
    if (area < 0.3 || area > 1) return t.fail(`area ${area}`);
  }
  // A ratio range the image cannot meet falls back to a centred crop of the nearest ratio.
  t.deepEqual(randomResizedCropBox(() => 0.999, 10, 40, [1, 1], [1, 1]), { x: 15, y: 0, w: 10, h: 10 });
  t.throws(() => randomResizedCropBox(r, 8, 8, [0, 1], [1, 1]), { instanceOf: CompilerError, message: /randomResizedCrop\.scale/ });
});

test('augmented batches depend only on the rng seed, and crops interpolate within the pixel range', (t) => {
  const aug = { randomResizedCrop: { scale: [0.3, 0.6] as const }, hflip: true };
  const a = toBatch(set.samples, pre, { augment: aug, rng: mulberry32(9) }).x;
  t.deepEqual(toBatch(set.samples, pre, { augment: aug, rng: mulberry32(9) }).x, a);
  t.notDeepEqual(toBatch(set.samples, pre, { augment: aug, rng: mulberry32(10) }).x, a);
  const lo = Math.min(...[0, 1, 2].map((c) => expected(0, c)));
  const hi = Math.max(...[0, 1, 2].map((c) => expected(255, c)));
  t.true(a.every((v) => v >= lo - 1e-6 && v <= hi + 1e-6));
});

test('a stored size twice the model size is resized by 2×2 averaging (bilinear, half-pixel centres)', (t) => {
  const big = syntheticSet({ a: 1 }, 16).samples[0]!;
  const x = toBatch([big], pre).x;
  const px = (xx: number, yy: number, c: number): number => big.image[(yy * 16 + xx) * 3 + c]!;
  let worst = 0;
  for (let c = 0; c < 3; c++) for (let yy = 0; yy < S; yy++) for (let xx = 0; xx < S; xx++) {
    const mean = (px(2 * xx, 2 * yy, c) + px(2 * xx + 1, 2 * yy, c) + px(2 * xx, 2 * yy + 1, c) + px(2 * xx + 1, 2 * yy + 1, c)) / 4;
    worst = Math.max(worst, Math.abs(at(x, 0, c, yy, xx) - (mean / 255 - pre.mean[c]!) / pre.std[c]!));
  }
  t.true(worst < 1e-5, `max error ${worst}`);
});

test('bad input is an error naming the field or the sample', (t) => {
  t.throws(() => toBatch(set.samples, pre, { augment: { hflip: true } }), { instanceOf: CompilerError, message: /augment needs options\.rng/ });
  t.throws(() => toBatch([], pre), { instanceOf: CompilerError, message: /no samples/ });
  t.throws(() => toBatch(set.samples, { ...pre, std: [0.2, 0, 0.2] }), { instanceOf: CompilerError, message: /preprocess\.std\[1\]: expected a positive number, got 0/ });
  t.throws(() => toBatch([{ image: new Uint8Array(10), label: 0, source: 'odd.png' }], pre), { instanceOf: CompilerError, message: /odd\.png: image has 10 bytes/ });
});
