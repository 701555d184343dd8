/**
 * Pretraining objectives: what one source's rows of a mixed batch teach the backbone. Each source
 * names one objective; the pretraining loss is the sum of every source's term, and a term only
 * reads its own rows (the others carry zero weight in its per-batch input), so a batch can mix
 * sources freely and the loss equals the mean over the whole batch.
 *
 * `classify` is supervised classification with its own linear head per source (timm's
 * `head` layout under `heads.<source>.`). A contrastive image–text objective (issue 16, CLIP) fits
 * the same interface: its tensors (a projection), its per-batch inputs (caption embeddings and a
 * row mask) and its loss over the pooled features [B, D].
 */
import { normal } from '../../devices/rng.ts';
import { softmaxCrossEntropy, smoothedTargets } from '../train/loss.ts';
import { contrastive } from './contrastive.ts';
import type { Objective, ObjectiveName } from './objective-types.ts';

export const headKeys = (source: string) => ({
  w: `heads.${source}.weight`,
  b: `heads.${source}.bias`,
  targets: `targets.${source}`,
  pw: `heads.${source}.patches.weight`,
  pb: `heads.${source}.patches.bias`,
  patchTargets: `patch_targets.${source}`,
});

/**
 * Softmax cross-entropy with label smoothing on the source's own head. Its `targets.<s>` input is
 * the smoothed one-hot for the source's rows and all zeros for other rows, so
 * −Σ_b Σ_c t[b,c]·log_softmax(z)[b,c] / B counts only this source's rows.
 *
 * With a patch-level term (weight λ = h.patches), a second linear head classifies every patch
 * token [B, G², D] → [B, G², C] as the defect class it shows or `ok`; its `patch_targets.<s>`
 * input [B, G², C] is one-hot for this source's rows (zero elsewhere) and the term is
 * −λ Σ_b Σ_p Σ_c t·log_softmax(z) / (B·G²). Dense labels teach local defect features in far
 * fewer images than one label per image (docs/bench/pretrain.md).
 */
export const classify: Objective = {
  name: 'classify',
  init(h, width, rng) {
    const k = headKeys(h.source);
    const C = h.classes.length;
    const linear = (): Float32Array => Float32Array.from({ length: C * width }, () => 0.02 * normal(rng)); // timm trunc_normal(std .02), bias 0
    const out = new Map([
      [k.w, { shape: [C, width], data: linear() }],
      [k.b, { shape: [C], data: new Float32Array(C) }],
    ]);
    if (h.patches > 0) {
      out.set(k.pw, { shape: [C, width], data: linear() });
      out.set(k.pb, { shape: [C], data: new Float32Array(C) });
    }
    return out;
  },
  inputShapes: (h) => ({
    [headKeys(h.source).targets]: ['N', h.classes.length],
    ...(h.patches > 0 ? { [headKeys(h.source).patchTargets]: ['N', h.patchTokens, h.classes.length] } : {}),
  }),
  inputs(h, y) {
    const C = h.classes.length;
    const t = new Float32Array(y.length * C);
    const mine = Int32Array.from(y, (v) => (v >= h.offset && v < h.offset + C ? v - h.offset : 0));
    const smoothed = smoothedTargets(mine, C, h.labelSmoothing);
    y.forEach((v, b) => {
      if (v >= h.offset && v < h.offset + C) t.set(smoothed.subarray(b * C, (b + 1) * C), b * C);
    });
    return new Map([[headKeys(h.source).targets, { shape: [y.length, C], data: t }]]);
  },
  loss(ops, h, feats, param, input) {
    const k = headKeys(h.source);
    // softmaxCrossEntropy divides by B (every row), so rows with zero targets add nothing.
    const image = softmaxCrossEntropy(ops, this.scores(ops, h, feats.pooled, param), input(k.targets));
    if (h.patches <= 0) return image;
    if (!feats.tokens) throw new Error(`internal: source ${h.source} has a patch-level term but the forward kept only CLS`);
    const patches = ops.slice(feats.tokens, 1, 1, 1 + h.patchTokens); // [B, G², D]
    const z = ops.linear(patches, param(k.pw), param(k.pb)); // [B, G², C]
    const perPatch = ops.reduceSum(ops.mul(input(k.patchTargets), ops.logSoftmax(z)), [-1], false); // [B, G²]
    return ops.add(image, ops.scale(ops.reduceMean(perPatch, [0, 1], false), -h.patches));
  },
  scores(ops, h, pooled, param) {
    const k = headKeys(h.source);
    return ops.linear(pooled, param(k.w), param(k.b));
  },
};

export function objectiveByName(name: ObjectiveName): Objective {
  return { classify, contrastive }[name];
}
