// The encoders a kept frame travels in (runtime/keep/): our JPEG is read back by libjpeg-turbo
// (through sharp) with the PSNR a baseline JPEG of that quality should have, at every size
// including ones that are not multiples of 8; the adaptive-filter PNG decodes to the exact pixels
// and is smaller than the unfiltered one on a real parts image.

import test from 'ava';
import fc from 'fast-check';
import sharp from 'sharp';
import { renderPart } from '../compiler/data/parts.ts';
import { encodeJpeg } from '../runtime/keep/jpeg.ts';
import { encodeImage } from '../runtime/keep/image.ts';
import { encodePng } from '../runtime/pipeline/png.ts';
import { pattern, pixels } from './helpers/images.ts';

async function decode(buf: Buffer): Promise<{ data: Buffer; width: number; height: number; format: string }> {
  const meta = await sharp(buf).metadata();
  const { data, info } = await sharp(buf).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, format: meta.format ?? '?' };
}

function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

test('JPEG of a parts image decodes in libjpeg-turbo with the quality asked for', async (t) => {
  const img = await renderPart(7, 'scratch', 3, 64);
  let last = -Infinity;
  for (const q of [50, 75, 90, 95]) {
    const jpg = encodeJpeg(img, 64, 64, 3, q);
    const d = await decode(jpg);
    t.is(d.format, 'jpeg');
    t.deepEqual([d.width, d.height], [64, 64]);
    const p = psnr(img, d.data);
    // The same image through libjpeg-turbo at the same quality (4:4:4): ours must be as faithful, within 1 dB.
    const ref = await decode(await sharp(img, { raw: { width: 64, height: 64, channels: 3 } }).jpeg({ quality: q, chromaSubsampling: '4:4:4' }).toBuffer());
    const pRef = psnr(img, ref.data);
    t.log(`q${q}: ${jpg.length} B, PSNR ${p.toFixed(2)} dB (libjpeg-turbo ${pRef.toFixed(2)} dB)`);
    t.true(p > pRef - 1, `q${q}: PSNR ${p.toFixed(2)} dB against ${pRef.toFixed(2)} dB`);
    t.true(p > last, 'higher quality, higher PSNR');
    last = p;
  }
});

test('JPEG: any size, RGB or RGBA, decodes to that size (edge blocks repeat the border)', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 1000 }), fc.boolean(), async (w, h, seed, rgba) => {
      const rgb = pixels(w, h, pattern(seed));
      const src = rgba ? Uint8Array.from({ length: w * h * 4 }, (_, i) => (i % 4 === 3 ? 255 : rgb[(i >> 2) * 3 + (i % 4)]!)) : rgb;
      const d = await decode(encodeJpeg(src, w, h, rgba ? 4 : 3, 95));
      return d.width === w && d.height === h && psnr(rgb, d.data) > 20;
    }),
    { numRuns: 40 },
  );
  t.pass();
});

test('JPEG: a flat image and a one-pixel image are valid files', async (t) => {
  const flat = new Uint8Array(16 * 16 * 3).fill(200);
  t.true(psnr(flat, (await decode(encodeJpeg(flat, 16, 16, 3, 90))).data) > 45);
  const one = Uint8Array.from([10, 200, 30]);
  const d = await decode(encodeJpeg(one, 1, 1, 3, 100));
  t.true(Math.abs(d.data[1]! - 200) <= 3, `green ${d.data[1]}`);
  t.throws(() => encodeJpeg(one, 2, 2, 3), { instanceOf: RangeError, message: /2x2x3/ });
});

test('PNG with adaptive filters: exact pixels, smaller than unfiltered on a parts image', async (t) => {
  const img = await renderPart(7, 'dent', 1, 64);
  const none = encodePng(img, 64, 64, 3);
  const adaptive = encodePng(img, 64, 64, 3, { filter: 'adaptive' });
  t.deepEqual((await decode(adaptive)).data, Buffer.from(img));
  t.log(`raw ${img.length} B, PNG unfiltered ${none.length} B, adaptive ${adaptive.length} B`);
  t.true(adaptive.length < none.length);
  const rgba = Uint8Array.from({ length: 5 * 3 * 4 }, (_, i) => (i * 37) % 256);
  const back = await sharp(encodePng(rgba, 5, 3, 4, { filter: 'adaptive' })).raw().toBuffer();
  t.deepEqual(back, Buffer.from(rgba), 'RGBA round trip');
});

test('encodeImage picks the format and says its content type', async (t) => {
  const img = await renderPart(1, 'ok', 0, 32);
  const png = await encodeImage(img, 32, 32, 3, { format: 'png', quality: 90 });
  const jpg = await encodeImage(img, 32, 32, 3, { format: 'jpeg', quality: 90 });
  t.is(png.contentType, 'image/png');
  t.is(jpg.contentType, 'image/jpeg');
  t.is((await sharp(png.data).metadata()).format, 'png');
  t.is((await sharp(jpg.data).metadata()).format, 'jpeg');
});
