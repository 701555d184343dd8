/**
 * Output centring and scaling of a backbone, folded into its final LayerNorm.
 *
 * A backbone pretrained here from scratch puts a large component common to every image into its
 * pooled feature (the final norm's bias and the mean of what it normalises), with the differences
 * between images small around it (docs/bench/feature-stats.md). A linear head trained by SGD on
 * such features mostly fights the common part: on the benchmark line the trainer's linear head
 * scored 44.8 % on the raw features and 58.2 % once they were centred (docs/bench/pretrain.md).
 * MAE's linear probe puts a BatchNorm without affine before its head for the same reason.
 *
 * The output is centred per feature (mean μ_d over images the backbone was trained on) and divided
 * by ONE scale s, the root-mean-square of the per-feature standard deviations, so the features
 * have mean 0 and an average variance of 1. Not per-feature standardisation: dividing each feature
 * by its own σ_d (0.08 … 1.6 on the shipped backbone) multiplies the directions the pretraining
 * images hardly use by up to 12, and VPT-deep's prompts, which move the features exactly there,
 * then trained to chance on the benchmark line in a trial of that variant.
 *
 * Nothing is added to the graph: the final norm `γ ⊙ n + β` becomes `(γ ⊙ n + β − μ) / s`, and
 * every linear layer that reads that output (`head`, each source's `heads.*`) gets `W' = s·W`,
 * `b' = b + W μ`, so the published classifiers compute exactly what they computed before. Only the
 * coordinates a new head learns in change.
 */
import type { StateDict } from '../backbones/safetensors.ts';
import type { HostTensor } from '../ops/host-tensor.ts';

export interface FeatureStats {
  mean: Float32Array;
  /** Per-feature standard deviation (the fold divides by their root-mean-square, {@link outputScale}). */
  std: Float32Array;
  /** Images the statistics were taken over. */
  images: number;
}

/** Mean and standard deviation of each column of row-major features [n, D] (float64 sums). */
export function featureStats(x: Float32Array, D: number): FeatureStats {
  const n = x.length / D;
  if (!Number.isInteger(n) || n < 2) throw new Error(`internal: featureStats needs at least 2 rows of ${D} features (got ${x.length} values)`);
  const mean = new Float64Array(D);
  const sq = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) mean[d]! += x[i * D + d]!;
  for (let d = 0; d < D; d++) mean[d]! /= n;
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) sq[d]! += (x[i * D + d]! - mean[d]!) ** 2;
  const std = Float32Array.from(sq, (v) => Math.sqrt(v / n));
  return { mean: Float32Array.from(mean), std, images: n };
}

/** The one scale the output is divided by: √(mean of σ_d²), so the average feature variance becomes 1. */
export function outputScale(s: FeatureStats): number {
  const rms = Math.sqrt(s.std.reduce((a, v) => a + v * v, 0) / s.std.length);
  return rms > 1e-6 ? rms : 1; // features that never vary: centre them, do not blow them up by 1/ε
}

/** Linear layers [C, D] (+ bias [C]) that read the final norm's output: timm's `head`, the pretraining heads. */
function readers(sd: StateDict, D: number): string[] {
  return [...sd.keys()]
    .filter((k) => (k === 'head.weight' || (k.startsWith('heads.') && k.endsWith('.weight'))) && sd.get(k)!.shape.length === 2 && sd.get(k)!.shape[1] === D)
    .map((k) => k.slice(0, -'.weight'.length));
}

/**
 * The same network with centred, scaled outputs: `norm.*` rescaled and every reader of the output
 * compensated (see the module comment). Returns a new state dict; `sd` is not changed.
 */
export function foldStandardisation(sd: StateDict, s: FeatureStats): StateDict {
  const D = s.mean.length;
  const k = outputScale(s);
  const gamma = sd.get('norm.weight');
  const beta = sd.get('norm.bias');
  if (!gamma || !beta || gamma.data.length !== D || beta.data.length !== D) throw new Error(`internal: foldStandardisation needs norm.weight and norm.bias of width ${D}`);
  const out: StateDict = new Map(sd);
  out.set('norm.weight', { shape: [D], data: Float32Array.from(gamma.data, (g) => g / k) });
  out.set('norm.bias', { shape: [D], data: Float32Array.from(beta.data, (b, d) => (b - s.mean[d]!) / k) });
  for (const p of readers(sd, D)) {
    const w = sd.get(`${p}.weight`)!;
    const b = sd.get(`${p}.bias`);
    const C = w.shape[0]!;
    const w2 = new Float32Array(C * D);
    const b2 = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      let shift = b ? b.data[c]! : 0;
      for (let d = 0; d < D; d++) {
        const wcd = w.data[c * D + d]!;
        w2[c * D + d] = wcd * k;
        shift += wcd * s.mean[d]!;
      }
      b2[c] = shift;
    }
    out.set(`${p}.weight`, { shape: [C, D], data: w2 } satisfies HostTensor);
    out.set(`${p}.bias`, { shape: [C], data: b2 } satisfies HostTensor);
  }
  return out;
}
