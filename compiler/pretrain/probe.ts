/**
 * A linear probe on frozen features, cheap enough to run after every pretraining epoch: the
 * backbone (timm tensors, no head) is exported through OnnxOps and run in onnxruntime to get the
 * pooled CLS features [N, D] of a held-out line's images, then a softmax regression is fitted on
 * the probe's training features (standardised, L2 1e-4, 300 full-batch Adam steps: deterministic)
 * and scored on its validation features: top-1 and AUROC of "defective" (1 − p(ok)) vs ok.
 */
import * as ort from 'onnxruntime-node';
import { exportVitBackbone } from '../export/backbone.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import { openSession } from '../train/ort-session.ts';
import type { Batch } from '../data/types.ts';

/** Pooled features [N, D] of every batch, in order. */
export async function extractFeatures(cfg: VitConfig, backbone: StateDict, batches: Iterable<Batch>): Promise<{ x: Float32Array; y: Int32Array }> {
  const c = { ...cfg, numClasses: 0 };
  const sd: StateDict = new Map([...backbone].filter(([k]) => !k.startsWith('head.') && !k.startsWith('heads.')));
  const { session } = await openSession(exportVitBackbone(c, sd), { ep: 'cpu' });
  try {
    const xs: Float32Array[] = [];
    const ys: number[] = [];
    for (const b of batches) {
      const n = b.y.length;
      const out = await session.run({ input: new ort.Tensor('float32', b.x, [n, 3, cfg.imgSize, cfg.imgSize]) });
      xs.push(Float32Array.from(out.features!.data as Float32Array));
      ys.push(...b.y);
    }
    const x = new Float32Array(xs.reduce((a, v) => a + v.length, 0));
    let o = 0;
    for (const v of xs) {
      x.set(v, o);
      o += v.length;
    }
    return { x, y: Int32Array.from(ys) };
  } finally {
    await session.release();
  }
}

export interface ProbeResult {
  top1: number;
  /** Defective (any class but `okClass`) against ok, scored by 1 − p(ok); NaN without both kinds. */
  auroc: number;
  perClass: number[];
}

/** Softmax regression on [n, D] features: fit on train, score val. */
export function linearProbe(train: { x: Float32Array; y: Int32Array }, val: { x: Float32Array; y: Int32Array }, numClasses: number, okClass: number, steps = 300): ProbeResult {
  const D = train.x.length / train.y.length;
  const mean = new Float64Array(D);
  const sd = new Float64Array(D);
  const n = train.y.length;
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) mean[d]! += train.x[i * D + d]! / n;
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) sd[d]! += (train.x[i * D + d]! - mean[d]!) ** 2 / n;
  for (let d = 0; d < D; d++) sd[d] = Math.sqrt(sd[d]!) + 1e-6;
  const norm = (x: Float32Array) => Float64Array.from(x, (v, j) => (v - mean[j % D]!) / sd[j % D]!);
  const xt = norm(train.x);
  const xv = norm(val.x);
  const C = numClasses;
  const P = C * (D + 1); // W [C, D] then b [C]
  const w = new Float64Array(P);
  const m = new Float64Array(P);
  const v = new Float64Array(P);
  const g = new Float64Array(P);
  const lr = 0.05;
  const l2 = 1e-4;
  const p = new Float64Array(C);
  for (let t = 1; t <= steps; t++) {
    g.fill(0);
    for (let i = 0; i < n; i++) {
      softmaxRow(w, xt, i, D, C, p);
      p[train.y[i]!]! -= 1;
      for (let c = 0; c < C; c++) {
        const e = p[c]! / n;
        for (let d = 0; d < D; d++) g[c * D + d]! += e * xt[i * D + d]!;
        g[C * D + c]! += e;
      }
    }
    for (let k = 0; k < P; k++) {
      const gk = g[k]! + (k < C * D ? l2 * w[k]! : 0);
      m[k] = 0.9 * m[k]! + 0.1 * gk;
      v[k] = 0.999 * v[k]! + 0.001 * gk * gk;
      w[k]! -= (lr * (m[k]! / (1 - 0.9 ** t))) / (Math.sqrt(v[k]! / (1 - 0.999 ** t)) + 1e-8);
    }
  }
  const nv = val.y.length;
  const hits = new Array<number>(C).fill(0);
  const counts = new Array<number>(C).fill(0);
  const score: number[] = [];
  const defect: boolean[] = [];
  for (let i = 0; i < nv; i++) {
    softmaxRow(w, xv, i, D, C, p);
    let best = 0;
    for (let c = 1; c < C; c++) if (p[c]! > p[best]!) best = c;
    const y = val.y[i]!;
    counts[y]!++;
    if (best === y) hits[y]!++;
    score.push(1 - p[okClass]!);
    defect.push(y !== okClass);
  }
  return { top1: hits.reduce((a, b) => a + b, 0) / nv, auroc: auroc(score, defect), perClass: hits.map((h, c) => (counts[c] ? h / counts[c]! : 0)) };
}

function softmaxRow(w: Float64Array, x: Float64Array, i: number, D: number, C: number, out: Float64Array): void {
  let max = -Infinity;
  for (let c = 0; c < C; c++) {
    let z = w[C * D + c]!;
    for (let d = 0; d < D; d++) z += w[c * D + d]! * x[i * D + d]!;
    out[c] = z;
    if (z > max) max = z;
  }
  let sum = 0;
  for (let c = 0; c < C; c++) sum += out[c] = Math.exp(out[c]! - max);
  for (let c = 0; c < C; c++) out[c]! /= sum;
}

/** Area under the ROC curve of `score` for positives vs negatives (Mann–Whitney U; ties count ½). */
export function auroc(score: readonly number[], positive: readonly boolean[]): number {
  const idx = score.map((_, i) => i).sort((a, b) => score[a]! - score[b]!);
  let rankSum = 0;
  let pos = 0;
  for (let k = 0; k < idx.length; ) {
    let e = k;
    while (e + 1 < idx.length && score[idx[e + 1]!] === score[idx[k]!]) e++;
    const rank = (k + e) / 2 + 1; // average rank of the tie group, 1-based
    for (let j = k; j <= e; j++) if (positive[idx[j]!]) {
      rankSum += rank;
      pos++;
    }
    k = e + 1;
  }
  const neg = idx.length - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}
