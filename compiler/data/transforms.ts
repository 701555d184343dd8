/**
 * Samples → a normalised NCHW float32 batch, with the recipes' augmentations (random resized crop,
 * horizontal flip) done by the JS bilinear resampler. Without augmentation, a sample already at the
 * model's size becomes exactly fround((pixel/255 − mean)/std); at another size it is resized
 * (square to square, so 'stretch' and 'center-crop' agree; the resize contract matters when
 * images are loaded, see image-folder.ts).
 */
import { CompilerError } from '../ops/errors.ts';
import { bilinearTaps } from './resample.ts';
import { randInt, uniform, type Rng } from '../../devices/rng.ts';
import type { Augment, Batch, Preprocess, ResizeMode, Sample } from './types.ts';

export interface ToBatchOptions {
  augment?: Augment;
  /** Required with augment; draws are taken sample by sample, crop then flip. */
  rng?: Rng;
}

/** Crop box in source pixels. */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The backbone's preprocessing (vit-variants.ts carries imgSize, mean and std). */
export function preprocessFor(arch: { imgSize: number; mean: readonly number[]; std: readonly number[] }, resize: ResizeMode = 'center-crop'): Preprocess {
  const [m0, m1, m2] = arch.mean;
  const [s0, s1, s2] = arch.std;
  return checkPreprocess({ imgSize: arch.imgSize, mean: [m0!, m1!, m2!], std: [s0!, s1!, s2!], resize });
}

/** Fixed-size batches of samples in order, no augmentation (evaluation, feature extraction). */
export function toBatches(samples: readonly Sample[], pre: Preprocess, size: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < samples.length; i += size) out.push(toBatch(samples.slice(i, i + size), pre));
  return out;
}

export function toBatch(samples: readonly Sample[], pre: Preprocess, options: ToBatchOptions = {}): Batch {
  checkPreprocess(pre);
  const { augment, rng } = options;
  if (samples.length === 0) throw new CompilerError('INTERNAL', 'toBatch: no samples');
  if (augment && (augment.randomResizedCrop || augment.hflip) && !rng) throw new CompilerError('INTERNAL', 'toBatch: augment needs options.rng (a seeded Rng from devices/rng.ts)');
  const S = pre.imgSize;
  const plane = S * S;
  const x = new Float32Array(samples.length * 3 * plane);
  const y = new Int32Array(samples.length);
  const lut = normaliseLut(pre);
  samples.forEach((s, b) => {
    const side = sideOf(s);
    const rrc = augment?.randomResizedCrop;
    const box = rrc ? randomResizedCropBox(rng!, side, side, rrc.scale, rrc.ratio ?? [3 / 4, 4 / 3]) : { x: 0, y: 0, w: side, h: side };
    const flip = augment?.hflip ? rng!() < 0.5 : false;
    const off = b * 3 * plane;
    if (box.w === S && box.h === S) copyExact(s.image, side, box, flip, lut, x, off, S);
    else resampleInto(s.image, side, box, flip, pre, x, off, S);
    y[b] = s.label;
  });
  return { x, y, sources: samples.map((s) => s.source) };
}

/** torchvision's RandomResizedCrop.get_params: 10 tries at a random area and log-uniform ratio, then a centre fallback. */
export function randomResizedCropBox(r: Rng, h: number, w: number, scale: readonly [number, number], ratio: readonly [number, number]): Box {
  if (!(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1)) throw new CompilerError('INTERNAL', `randomResizedCrop.scale: expected 0 < lo ≤ hi ≤ 1, got [${scale.join(', ')}]`);
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1])) throw new CompilerError('INTERNAL', `randomResizedCrop.ratio: expected 0 < lo ≤ hi, got [${ratio.join(', ')}]`);
  const area = h * w;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * uniform(r, scale[0], scale[1]);
    const aspect = Math.exp(uniform(r, logLo, logHi));
    const cw = Math.round(Math.sqrt(target * aspect));
    const ch = Math.round(Math.sqrt(target / aspect));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) return { y: randInt(r, 0, h - ch + 1), x: randInt(r, 0, w - cw + 1), w: cw, h: ch };
  }
  const inRatio = w / h;
  let cw = w;
  let ch = h;
  if (inRatio < ratio[0]) ch = Math.round(cw / ratio[0]);
  else if (inRatio > ratio[1]) cw = Math.round(ch * ratio[1]);
  return { x: Math.floor((w - cw) / 2), y: Math.floor((h - ch) / 2), w: cw, h: ch };
}

/** fround((v/255 − mean_c)/std_c) for every byte value v and channel c: [3][256]. */
function normaliseLut(pre: Preprocess): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - pre.mean[c]!) / pre.std[c]!;
  return lut;
}

/** The box is output-sized: pixels are copied (optionally mirrored) through the LUT, no interpolation. */
function copyExact(img: Uint8Array, side: number, box: Box, flip: boolean, lut: Float32Array, out: Float32Array, off: number, S: number): void {
  for (let yy = 0; yy < S; yy++) {
    for (let xx = 0; xx < S; xx++) {
      const sx = box.x + (flip ? S - 1 - xx : xx);
      const i = ((box.y + yy) * side + sx) * 3;
      const o = off + yy * S + xx;
      out[o] = lut[img[i]!]!;
      out[o + S * S] = lut[256 + img[i + 1]!]!;
      out[o + 2 * S * S] = lut[512 + img[i + 2]!]!;
    }
  }
}

function resampleInto(img: Uint8Array, side: number, box: Box, flip: boolean, pre: Preprocess, out: Float32Array, off: number, S: number): void {
  const ty = bilinearTaps(S, box.y, box.h);
  const tx = bilinearTaps(S, box.x, box.w);
  const plane = S * S;
  for (let yy = 0; yy < S; yy++) {
    const r0 = ty.i0[yy]! * side;
    const r1 = ty.i1[yy]! * side;
    const wy = ty.w[yy]!;
    for (let xx = 0; xx < S; xx++) {
      const t = flip ? S - 1 - xx : xx;
      const c0 = tx.i0[t]!;
      const c1 = tx.i1[t]!;
      const wx = tx.w[t]!;
      for (let c = 0; c < 3; c++) {
        const top = img[(r0 + c0) * 3 + c]! * (1 - wx) + img[(r0 + c1) * 3 + c]! * wx;
        const bot = img[(r1 + c0) * 3 + c]! * (1 - wx) + img[(r1 + c1) * 3 + c]! * wx;
        out[off + c * plane + yy * S + xx] = ((top * (1 - wy) + bot * wy) / 255 - pre.mean[c]!) / pre.std[c]!;
      }
    }
  }
}

function sideOf(s: Sample): number {
  const side = Math.round(Math.sqrt(s.image.length / 3));
  if (side * side * 3 !== s.image.length || side === 0) throw new CompilerError('DATA_INVALID', `${s.source}: image has ${s.image.length} bytes, not a square H×W×3 RGB image`);
  return side;
}

function checkPreprocess(pre: Preprocess): Preprocess {
  if (!Number.isInteger(pre.imgSize) || pre.imgSize < 1) throw new CompilerError('INTERNAL', `preprocess.imgSize: expected a positive integer, got ${pre.imgSize}`);
  for (let c = 0; c < 3; c++) {
    if (!Number.isFinite(pre.mean[c])) throw new CompilerError('INTERNAL', `preprocess.mean[${c}]: expected a number, got ${pre.mean[c]}`);
    if (!(Number.isFinite(pre.std[c]) && pre.std[c]! > 0)) throw new CompilerError('INTERNAL', `preprocess.std[${c}]: expected a positive number, got ${pre.std[c]}`);
  }
  if (pre.resize !== 'stretch' && pre.resize !== 'center-crop') throw new CompilerError('INTERNAL', `preprocess.resize: expected 'stretch' or 'center-crop', got ${JSON.stringify(pre.resize)}`);
  return pre;
}
