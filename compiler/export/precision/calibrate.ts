/**
 * Activation ranges for int8: run the fp32 model in ORT on real inputs and record the range of
 * every tensor a quantized MatMul/Gemm reads. ORT only returns graph outputs, so a copy of the
 * model lists those tensors as extra outputs (type float, shape left to ORT's inference).
 *
 * `minmax` keeps the extremes. `percentile` (two passes: extremes, then a 2048-bin histogram)
 * clips the tails, which buys resolution where one outlier would stretch the scale (fc2 reads
 * GELU outputs: mostly small, a few large).
 * Pixels need no measuring: a MatMul fed (through layout ops) by the uint8 image gets [0, 255],
 * which quantizes with scale 1 and zero point 0, i.e. losslessly.
 */
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import type { GraphSpec } from '../../ops/onnx-proto.ts';
import { decodeGraph } from '../../ops/onnx-proto.ts';
import { CompilerError } from '../../ops/errors.ts';
import { quantSites, type Calibration, type TensorRange } from './int8.ts';

const { onnx } = onnxProto;
const LAYOUT_OPS = new Set(['Reshape', 'Transpose', 'Slice', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten']);
const BINS = 2048;

export interface CalibrateOptions {
  method?: 'minmax' | 'percentile';
  /** For `percentile`: keep this share of values inside the range (default 99.99, per tail). */
  percentile?: number;
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

export type Feeds = Record<string, ort.Tensor>;

/**
 * Feeds for the device contract (`image` uint8 [N, S, S, 3]) from H×W×3 samples, `batch` at a time.
 * Keep batches small at 224 px: every calibrated tensor of a batch comes back at once
 * (ViT-Ti at 224, batch 8: 48 tensors, about 100 MB).
 */
export function imageFeeds(images: readonly Uint8Array[], size: number, batch = 8): Feeds[] {
  const px = size * size * 3;
  const feeds: Feeds[] = [];
  for (let at = 0; at < images.length; at += batch) {
    const part = images.slice(at, at + batch);
    const data = new Uint8Array(part.length * px);
    part.forEach((im, i) => {
      if (im.length !== px) throw new CompilerError('INTERNAL', `calibration image ${at + i} has ${im.length} bytes, expected ${size}×${size}×3 = ${px}`);
      data.set(im, i * px);
    });
    feeds.push({ image: new ort.Tensor('uint8', data, [part.length, size, size, 3]) });
  }
  return feeds;
}

/** The input of a site that is the uint8 image cast to float and only rearranged: exact [0, 255]. */
export function pixelTensors(g: GraphSpec): Set<string> {
  const u8 = new Set(g.inputs.filter((v) => v.dtype === 'uint8').map((v) => v.name));
  const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const out = new Set<string>();
  for (const s of quantSites(g)) {
    let n = producer.get(s.activation);
    while (n && LAYOUT_OPS.has(n.op)) n = producer.get(n.inputs[0]!);
    if (n?.op === 'Cast' && u8.has(n.inputs[0]!)) out.add(s.activation);
  }
  return out;
}

export async function calibrate(model: Uint8Array, feeds: readonly Feeds[], opts: CalibrateOptions = {}): Promise<Calibration> {
  const method = opts.method ?? 'minmax';
  const p = opts.percentile ?? 99.99;
  if (feeds.length === 0) throw new CompilerError('INTERNAL', 'calibrate: no inputs given; pass a sample of training images');
  if (method === 'percentile' && !(p > 50 && p <= 100)) throw new CompilerError('INTERNAL', `calibrate: percentile must be in (50, 100], got ${p}`);
  const g = decodeGraph(model);
  const pixels = pixelTensors(g);
  const names = [...new Set(quantSites(g).map((s) => s.activation))].filter((n) => !pixels.has(n));

  const m = onnx.ModelProto.decode(model);
  const declared = new Set((m.graph!.output ?? []).map((o) => o.name));
  for (const n of names) if (!declared.has(n)) m.graph!.output!.push({ name: n, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(m).finish(), { logSeverityLevel: 3, ...opts.sessionOptions });

  let images = 0;
  const ranges: Record<string, TensorRange> = {};
  for (const n of names) ranges[n] = { min: Infinity, max: -Infinity };
  const pass = async (visit: (name: string, d: Float32Array) => void) => {
    for (const f of feeds) {
      const out = await session.run(f, names);
      for (const n of names) visit(n, out[n]!.data as Float32Array);
    }
  };
  try {
    await pass((n, d) => {
      const r = ranges[n]!;
      for (let i = 0; i < d.length; i++) {
        const v = d[i]!;
        if (v < r.min) r.min = v;
        if (v > r.max) r.max = v;
      }
    });
    images = feeds.reduce((s, f) => s + Number(f[g.inputs[0]!.name]?.dims[0] ?? 1), 0);
    if (method === 'percentile') {
      const hist = new Map(names.map((n) => [n, new Float64Array(BINS)]));
      await pass((n, d) => {
        const { min, max } = ranges[n]!;
        const h = hist.get(n)!;
        const k = max > min ? BINS / (max - min) : 0;
        for (let i = 0; i < d.length; i++) h[Math.min(BINS - 1, Math.floor((d[i]! - min) * k))]! += 1;
      });
      for (const n of names) ranges[n] = clip(ranges[n]!, hist.get(n)!, p);
    }
  } finally {
    await session.release();
  }
  for (const n of names) {
    const r = ranges[n]!;
    if (!Number.isFinite(r.min) || !Number.isFinite(r.max)) throw new CompilerError('INTERNAL', `calibrate: tensor "${n}" took non-finite values (${r.min}..${r.max}); the fp32 model is broken on these inputs`);
  }
  for (const n of pixels) ranges[n] = { min: 0, max: 255 };
  return { method, ...(method === 'percentile' ? { percentile: p } : {}), images, ranges };
}

/** Range holding `p` % of the histogram's mass on each side. */
function clip(r: TensorRange, h: Float64Array, p: number): TensorRange {
  const total = h.reduce((s, v) => s + v, 0);
  const tail = (total * (100 - p)) / 100;
  const width = (r.max - r.min) / BINS;
  let lo = 0;
  for (let acc = 0; lo < BINS - 1 && acc + h[lo]! <= tail; lo++) acc += h[lo]!;
  let hi = BINS - 1;
  for (let acc = 0; hi > 0 && acc + h[hi]! <= tail; hi--) acc += h[hi]!;
  return { min: r.min + lo * width, max: r.min + (hi + 1) * width };
}
