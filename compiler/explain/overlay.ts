/**
 * Maps over images: a G×G map in [0, 1] is upsampled bilinearly (half-pixel centres, edges
 * clamped) to the display size, coloured with the jet colormap and blended half and half over
 * the image, which is enlarged with nearest-neighbour so its pixels stay visible. Encoded as PNG
 * by sharp; everything before the encoder is plain arithmetic, so equal inputs give equal bytes.
 */
import sharp from 'sharp';

export type Rgb = [number, number, number];

/** Jet: dark blue → blue → cyan → yellow → red → dark red, piecewise linear. */
const JET: readonly [number, Rgb][] = [
  [0, [0, 0, 128]],
  [0.125, [0, 0, 255]],
  [0.375, [0, 255, 255]],
  [0.625, [255, 255, 0]],
  [0.875, [255, 0, 0]],
  [1, [128, 0, 0]],
];

export function jet(v: number): Rgb {
  const t = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
  let i = 1;
  while (i < JET.length - 1 && JET[i]![0] < t) i++;
  const [t0, c0] = JET[i - 1]!;
  const [t1, c1] = JET[i]!;
  const f = (t - t0) / (t1 - t0);
  return [0, 1, 2].map((k) => Math.round(c0[k]! + f * (c1[k]! - c0[k]!))) as Rgb;
}

/** The colormap as a CSS gradient, for the report's legend. */
export const JET_CSS = `linear-gradient(to right, ${JET.map(([t, c]) => `rgb(${c.join(',')}) ${t * 100}%`).join(', ')})`;

/** A g×g map → size×size by bilinear interpolation with half-pixel centres. */
export function upsample(map: ArrayLike<number>, g: number, size: number): Float32Array {
  if (map.length !== g * g) throw new RangeError(`upsample: map has ${map.length} values, a ${g}×${g} grid needs ${g * g}`);
  const out = new Float32Array(size * size);
  const src = (i: number) => Math.min(g - 1, Math.max(0, ((i + 0.5) * g) / size - 0.5));
  for (let y = 0; y < size; y++) {
    const sy = src(y);
    const y0 = Math.floor(sy);
    const y1 = Math.min(g - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < size; x++) {
      const sx = src(x);
      const x0 = Math.floor(sx);
      const x1 = Math.min(g - 1, x0 + 1);
      const fx = sx - x0;
      const top = map[y0 * g + x0]! * (1 - fx) + map[y0 * g + x1]! * fx;
      const bottom = map[y1 * g + x0]! * (1 - fx) + map[y1 * g + x1]! * fx;
      out[y * size + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** An S×S×3 image → size×size×3, nearest neighbour. */
function enlarge(rgb: Uint8Array, S: number, size: number): Uint8Array {
  if (rgb.length !== S * S * 3) throw new RangeError(`enlarge: ${rgb.length} bytes is not a ${S}×${S} RGB image`);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const sy = Math.min(S - 1, Math.floor(((y + 0.5) * S) / size));
    for (let x = 0; x < size; x++) {
      const sx = Math.min(S - 1, Math.floor(((x + 0.5) * S) / size));
      out.set(rgb.subarray((sy * S + sx) * 3, (sy * S + sx) * 3 + 3), (y * size + x) * 3);
    }
  }
  return out;
}

/** The image with a g×g map in [0, 1] blended over it (alpha 0.5), size×size RGB. */
export function blend(rgb: Uint8Array, S: number, map: ArrayLike<number>, g: number, size: number, alpha = 0.5): Uint8Array {
  const base = enlarge(rgb, S, size);
  const m = upsample(map, g, size);
  for (let i = 0; i < m.length; i++) {
    const c = jet(m[i]!);
    for (let k = 0; k < 3; k++) base[i * 3 + k] = Math.round((1 - alpha) * base[i * 3 + k]! + alpha * c[k]!);
  }
  return base;
}

export function png(rgb: Uint8Array, size: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).png({ compressionLevel: 9 }).toBuffer();
}

/** The overlay as PNG bytes. */
export function overlayPng(rgb: Uint8Array, S: number, map: ArrayLike<number>, g: number, size: number): Promise<Buffer> {
  return png(blend(rgb, S, map, g, size), size);
}

/** The image alone, enlarged, as PNG bytes. */
export function imagePng(rgb: Uint8Array, S: number, size: number): Promise<Buffer> {
  return png(enlarge(rgb, S, size), size);
}

/** Divide by the maximum (all zeros stay zeros): rollout shares → [0, 1] for the colormap. */
export function byMax(v: ArrayLike<number>): Float32Array {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, v[i]!);
  return Float32Array.from(v as ArrayLike<number>, (x) => (m > 0 ? x / m : 0));
}
