/**
 * Resampling a learned absolute position embedding to another grid, as timm's
 * `resample_abs_pos_embed` does when a checkpoint meets a different input size:
 * keep the CLS row, treat the rest as a D-channel G×G image, resize it bicubically.
 *
 * Upsampling matches PyTorch `F.interpolate(mode='bicubic', align_corners=False)`:
 * cubic convolution with A = -0.75, source index (dst + 0.5)·scale − 0.5, edge-clamped taps.
 * Downsampling uses the antialiased filter (timm passes antialias=True): PyTorch's AA bicubic
 * with A = -0.5, support widened by the scale, weights normalised per output pixel.
 */
import type { HostTensor } from '../ops/host-tensor.ts';
import { CompilerError } from '../ops/errors.ts';

function cubic(x: number, A: number): number {
  const ax = Math.abs(x);
  if (ax <= 1) return ((A + 2) * ax - (A + 3)) * ax * ax + 1;
  if (ax < 2) return ((A * ax - 5 * A) * ax + 8 * A) * ax - 4 * A;
  return 0;
}

interface Taps { idx: Int32Array; w: Float32Array; n: number }

/** Per output index: input indices and weights along one axis. */
function taps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  if (scale <= 1) {
    const idx = new Int32Array(outSize * 4);
    const w = new Float32Array(outSize * 4);
    for (let o = 0; o < outSize; o++) {
      const real = (o + 0.5) * scale - 0.5;
      const i0 = Math.floor(real);
      const t = real - i0;
      const ws = [cubic(t + 1, -0.75), cubic(t, -0.75), cubic(1 - t, -0.75), cubic(2 - t, -0.75)];
      for (let k = 0; k < 4; k++) {
        idx[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
        w[o * 4 + k] = ws[k]!;
      }
    }
    return { idx, w, n: 4 };
  }
  const support = 2 * scale;
  const n = Math.ceil(support) * 2 + 1;
  const idx = new Int32Array(outSize * n);
  const w = new Float32Array(outSize * n);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let j = lo; j < hi; j++) total += cubic((j - center + 0.5) / scale, -0.5);
    for (let j = lo, k = 0; j < hi; j++, k++) {
      idx[o * n + k] = j;
      w[o * n + k] = total ? cubic((j - center + 0.5) / scale, -0.5) / total : 0;
    }
  }
  return { idx, w, n };
}

/** Resize a [C, H, W] map (row-major) to [C, oh, ow]: along W first, then H, as PyTorch does. */
function resizeBicubic(src: Float32Array, C: number, H: number, W: number, oh: number, ow: number): Float32Array {
  const tw = taps(W, ow);
  const th = taps(H, oh);
  const mid = new Float32Array(C * H * ow);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < ow; x++) {
        let s = 0;
        for (let k = 0; k < tw.n; k++) s += tw.w[x * tw.n + k]! * src[(c * H + y) * W + tw.idx[x * tw.n + k]!]!;
        mid[(c * H + y) * ow + x] = s;
      }
  const out = new Float32Array(C * oh * ow);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++) {
        let s = 0;
        for (let k = 0; k < th.n; k++) s += th.w[y * th.n + k]! * mid[(c * H + th.idx[y * th.n + k]!) * ow + x]!;
        out[(c * oh + y) * ow + x] = s;
      }
  return out;
}

/** pos [1, prefix + G², D] → [1, prefix + G'², D]. */
export function resamplePosEmbed(pos: HostTensor, newGrid: number, numPrefix = 1): HostTensor {
  const [, T, D] = pos.shape as [number, number, number];
  const g = Math.round(Math.sqrt(T - numPrefix));
  if (g * g !== T - numPrefix) throw new CompilerError('WEIGHTS_MISMATCH', `pos_embed has ${T - numPrefix} grid tokens, not a square`);
  if (g === newGrid) return pos;
  // [G², D] → [D, G, G]
  const chw = new Float32Array(D * g * g);
  for (let t = 0; t < g * g; t++) for (let d = 0; d < D; d++) chw[d * g * g + t] = pos.data[(numPrefix + t) * D + d]!;
  const r = resizeBicubic(chw, D, g, g, newGrid, newGrid);
  const T2 = numPrefix + newGrid * newGrid;
  const out = new Float32Array(T2 * D);
  out.set(pos.data.subarray(0, numPrefix * D));
  for (let t = 0; t < newGrid * newGrid; t++) for (let d = 0; d < D; d++) out[(numPrefix + t) * D + d] = r[d * newGrid * newGrid + t]!;
  return { shape: [1, T2, D], data: out };
}
