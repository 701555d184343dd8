/**
 * Colour augmentation for pretraining: each image gets one random linear colour transform, so a
 * backbone cannot tell defects apart by the finishes of the lines it was pretrained on (a new line
 * brings a new finish; issue 15's benchmark line is a finish no source draws).
 *
 * The transform is brightness × saturation × hue rotation, as one 3×3 matrix on RGB:
 * - hue: a rotation of the colour cube about its grey axis (r = g = b) by an angle in ±180°·s;
 *   a rotation by 120° permutes the channels cyclically;
 * - saturation: a blend toward the pixel's luma (Rec. 601 weights) by a factor in [1 − s, 1 + s];
 * - brightness: a gain in [1 − 0.4 s, 1 + 0.4 s].
 * Each factor keeps grey grey (every row of the hue and saturation matrices sums to 1), so a
 * grey image (Fashion-MNIST) only changes brightness. s = 0 is the identity.
 */
import { uniform, type Rng } from '../../devices/rng.ts';

export interface ColourDraw {
  /** radians */
  hue: number;
  saturation: number;
  brightness: number;
}

const LUMA = [0.299, 0.587, 0.114] as const;

/** One image's factors at strength s ∈ [0, 1] (three draws from the rng, always, so streams stay aligned). */
export function drawColour(rng: Rng, s: number): ColourDraw {
  const hue = uniform(rng, -Math.PI, Math.PI) * s;
  const saturation = Math.max(0, uniform(rng, 1 - s, 1 + s));
  const brightness = uniform(rng, 1 - 0.4 * s, 1 + 0.4 * s);
  return { hue, saturation, brightness };
}

/** Row-major 3×3 matrix of the transform: out = M · rgb. */
export function colourMatrix(d: ColourDraw): Float64Array {
  const c = Math.cos(d.hue);
  const sn = Math.sin(d.hue) / Math.sqrt(3);
  const t = (1 - c) / 3;
  // Rodrigues' rotation about the unit grey axis (1, 1, 1)/√3.
  const hue = [c + t, t - sn, t + sn, t + sn, c + t, t - sn, t - sn, t + sn, c + t];
  const m = new Float64Array(9);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++) {
      let v = 0;
      // saturation row i: (1 − sat)·LUMA + sat·e_i
      for (let k = 0; k < 3; k++) v += ((1 - d.saturation) * LUMA[k]! + (i === k ? d.saturation : 0)) * hue[k * 3 + j]!;
      m[i * 3 + j] = d.brightness * v;
    }
  return m;
}

/** A new interleaved RGB image with the transform applied, rounded and clamped to bytes. */
export function applyColour(image: Uint8Array, m: Float64Array): Uint8Array {
  const out = new Uint8Array(image.length);
  for (let p = 0; p < image.length; p += 3) {
    const r = image[p]!;
    const g = image[p + 1]!;
    const b = image[p + 2]!;
    // Uint8Array assignment clamps only through Uint8ClampedArray; clamp explicitly.
    for (let i = 0; i < 3; i++) {
      const v = Math.round(m[i * 3]! * r + m[i * 3 + 1]! * g + m[i * 3 + 2]! * b);
      out[p + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}
