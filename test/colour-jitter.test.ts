/**
 * Pretraining's colour augmentation (compiler/data/colour-jitter.ts) and its place in the mixture:
 * strength 0 is the identity, grey stays grey, a 120° hue rotation permutes the channels, the
 * mixture's batches are a pure function of (seed, epoch, batch) with it on, and it changes colour
 * images but leaves the labels and the patch targets alone.
 */
import test from 'ava';
import fc from 'fast-check';
import { applyColour, colourMatrix, drawColour } from '../compiler/data/colour-jitter.ts';
import { mulberry32 } from '../devices/rng.ts';
import { mixture } from '../compiler/pretrain/mixture.ts';
import { preprocessFor } from '../compiler/data/transforms.ts';
import type { LoadedSource } from '../compiler/pretrain/sources.ts';
import type { LabeledSet } from '../compiler/data/types.ts';

const rgb = (n: number) => fc.uint8Array({ minLength: 3 * n, maxLength: 3 * n });

test('strength 0 leaves every image byte for byte as it was', (t) => {
  fc.assert(
    fc.property(rgb(16), fc.integer(), (img, seed) => {
      const m = colourMatrix(drawColour(mulberry32(seed), 0));
      t.deepEqual(applyColour(img, m), img);
    }),
  );
});

test('a grey pixel stays grey at any strength (only its brightness changes), and bytes stay bytes', (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 32 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer(), (greys, s, seed) => {
      const img = Uint8Array.from(greys.flatMap((v) => [v, v, v]));
      const out = applyColour(img, colourMatrix(drawColour(mulberry32(seed), s)));
      for (let p = 0; p < out.length; p += 3) {
        // Rounding each channel separately can split a grey by one level at most.
        t.true(Math.abs(out[p]! - out[p + 1]!) <= 1 && Math.abs(out[p + 1]! - out[p + 2]!) <= 1, `pixel ${p / 3}: ${out.slice(p, p + 3).join(',')}`);
      }
    }),
  );
});

test('a hue rotation by 120° (saturation and brightness 1) permutes the channels cyclically', (t) => {
  fc.assert(
    fc.property(rgb(8), (img) => {
      const out = applyColour(img, colourMatrix({ hue: (2 * Math.PI) / 3, saturation: 1, brightness: 1 }));
      for (let p = 0; p < img.length; p += 3) {
        // r → g → b → r: the new green is the old red.
        t.deepEqual([out[p], out[p + 1], out[p + 2]], [img[p + 2], img[p], img[p + 1]]);
      }
    }),
  );
});

test('saturation 0 turns a colour image into its luma', (t) => {
  const img = Uint8Array.from([200, 30, 10, 0, 0, 255, 90, 180, 40]);
  const out = applyColour(img, colourMatrix({ hue: 0, saturation: 0, brightness: 1 }));
  for (let p = 0; p < img.length; p += 3) {
    const y = Math.round(0.299 * img[p]! + 0.587 * img[p + 1]! + 0.114 * img[p + 2]!);
    t.deepEqual([out[p], out[p + 1], out[p + 2]], [y, y, y]);
  }
});

/** A tiny colour source: 8 images of 8×8 per class, two classes, each with defect cells for the patch term. */
function source(): LoadedSource {
  const rng = mulberry32(5);
  const set = (tag: string): LabeledSet => ({
    name: `parts:${tag}`,
    classes: ['ok', 'dent'],
    size: 8,
    samples: Array.from({ length: 16 }, (_, i) => {
      const cells = new Uint8Array(256);
      if (i % 2) cells[i * 7] = 1;
      return { image: Uint8Array.from({ length: 8 * 8 * 3 }, () => Math.floor(rng() * 256)), label: i % 2, source: `${tag}:${i}`, cells };
    }),
  });
  return { name: 'parts', kind: 'parts', weight: 1, objective: 'classify', patches: 1, classes: ['ok', 'dent'], train: set('train'), val: set('val'), describe: {} };
}

const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
};

test('in the mixture: the same batches for (seed, epoch), colour images changed, labels and patch targets as without it', async (t) => {
  const pre = preprocessFor({ imgSize: 8, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, 'stretch');
  const o = { samplesPerEpoch: 16, seed: 3, pre, grid: 4, hflip: true };
  const src = source();
  const plain = await collect(mixture([src], o).trainBatches(0, 8));
  const a = await collect(mixture([src], { ...o, colour: 0.8 }).trainBatches(0, 8));
  const b = await collect(mixture([src], { ...o, colour: 0.8 }).trainBatches(0, 8));
  t.is(a.length, 2);
  const targets = (x: unknown) => (x as { inputs: Map<string, { data: Float32Array }> }).inputs.get('patch_targets.parts')!.data;
  for (let i = 0; i < a.length; i++) {
    t.deepEqual(a[i]!.x, b[i]!.x, 'deterministic');
    t.deepEqual(a[i]!.y, plain[i]!.y, 'labels');
    t.deepEqual(targets(a[i]), targets(plain[i]), 'patch targets');
    t.notDeepEqual(a[i]!.x, plain[i]!.x, 'colours changed');
  }
});
