/**
 * Bilinear resampling in JS, shared by Fashion-MNIST resizing and the random-resized-crop
 * augmentation. Half-pixel centres (torch's align_corners=False), no antialias, edges clamped to
 * the source box: a box the size of the output maps every pixel onto itself with weight 0, so the
 * identity is exact.
 */

/** For each of `outLen` output positions: the two source indices and the weight of the second. */
export interface Taps {
  i0: Int32Array;
  i1: Int32Array;
  w: Float32Array;
}

/** Taps sampling the source span [start, start + len) (pixel units) onto outLen pixels. */
export function bilinearTaps(outLen: number, start: number, len: number): Taps {
  const i0 = new Int32Array(outLen);
  const i1 = new Int32Array(outLen);
  const w = new Float32Array(outLen);
  const scale = len / outLen;
  const lo = start;
  const hi = start + len - 1;
  for (let d = 0; d < outLen; d++) {
    const s = Math.min(hi, Math.max(lo, start + (d + 0.5) * scale - 0.5));
    const a = Math.floor(s);
    i0[d] = a;
    i1[d] = Math.min(a + 1, hi);
    w[d] = s - a;
  }
  return { i0, i1, w };
}

/** H×W×C uint8 → oh×ow×C uint8 (rounded), whole image. */
export function resizeBilinearU8(src: Uint8Array, h: number, w: number, c: number, oh: number, ow: number): Uint8Array {
  const ty = bilinearTaps(oh, 0, h);
  const tx = bilinearTaps(ow, 0, w);
  const out = new Uint8Array(oh * ow * c);
  for (let y = 0; y < oh; y++) {
    const r0 = ty.i0[y]! * w;
    const r1 = ty.i1[y]! * w;
    const wy = ty.w[y]!;
    for (let x = 0; x < ow; x++) {
      const c0 = tx.i0[x]!;
      const c1 = tx.i1[x]!;
      const wx = tx.w[x]!;
      for (let k = 0; k < c; k++) {
        const top = src[(r0 + c0) * c + k]! * (1 - wx) + src[(r0 + c1) * c + k]! * wx;
        const bot = src[(r1 + c0) * c + k]! * (1 - wx) + src[(r1 + c1) * c + k]! * wx;
        out[(y * ow + x) * c + k] = Math.round(top * (1 - wy) + bot * wy);
      }
    }
  }
  return out;
}
