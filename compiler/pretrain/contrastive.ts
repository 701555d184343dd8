/**
 * The contrastive (CLIP) pretraining objective: symmetric InfoNCE between the image tower's
 * embedding and a text tower's embedding of each image's caption, with a learnable temperature
 * (`logit_scale`, CLIP's ln(1/0.07) start). Its tensors are a whole CLIP text tower and both
 * projections, under the names the CLIP loader reads (compiler/backbones/clip-weights.ts, "ours"):
 * `text.token_embedding.weight` [V, W], `text.pos_embed` [L, W], `text.blocks.{i}.…`,
 * `text.norm.*`, `text.proj.weight` [E, W], `image_proj.weight` [E, D], `logit_scale` [1].
 *
 * Token embedding inside the graph: the CLIP compile path looks tokens up on the host (clip.ts),
 * but here the table trains, so a batch's captions enter as one-hot rows [B, L, V] and the
 * lookup is a MatMul with the table — its gradient is an ordinary MatMul gradient, which both
 * engines (ort's derived backward graph, tfjs) already have; no Gather or scatter-add needed.
 * The pooled row (first EOT) is picked with a one-hot [B, 1, L] input, as clip.ts does with a
 * constant.
 *
 * Many images share a caption key (every scratched steel plate), so the targets are not the
 * identity: image i's positives are all texts j of the same key, T[i,j] = 1/n_i (n_i = rows of
 * i's key in the batch); T is symmetric. Loss = −(Σ T⊙log_softmax_rows(Z) + Σ T⊙log_softmax_rows(Zᵀ))
 * / (2B), Z = exp(s)·norm(img)·norm(txt)ᵀ + M, where M masks (−1e9) rows and columns of other
 * sources' images, whose targets are zero (so a mixed batch counts only caption rows; with the
 * identity T for distinct captions this is CLIP's loss exactly).
 */
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { normal, type Rng } from '../../devices/rng.ts';
import { block, type BlockWeights } from '../backbones/vit.ts';
import { causalMask, l2normalize } from '../backbones/clip.ts';
import { textBlockConfig, type ClipConfig } from '../backbones/clip-variants.ts';
import type { Objective, SourceHead } from './objective-types.ts';

const MASKED = -1e9;

/** A caption source's text side, tokenized once when the job is prepared. */
export interface CaptionTable {
  clip: ClipConfig;
  /** ids[key][template]: SOT … EOT padded with 0 to the context length L. */
  ids: Int32Array[][];
  /** eot[key][template]: position of the first EOT. */
  eot: number[][];
  /** 1 + the last EOT position of any caption: the text tower runs on these positions only (exact under the causal mask). */
  length: number;
}

export type ContrastiveHead = SourceHead & { captions: CaptionTable };

const tableOf = (h: SourceHead): CaptionTable => {
  const t = (h as Partial<ContrastiveHead>).captions;
  if (!t) throw new Error(`internal: source ${h.source} has the contrastive objective but no caption table`);
  return t;
};

export const CLIP_KEYS = { tokens: 'clip.tokens', eot: 'clip.eot', targets: 'clip.targets', mask: 'clip.mask' };

/** Which template a row's caption uses: a pure function of the batch's labels and the row. */
export function templateOf(y: Int32Array, b: number, n: number): number {
  let h = 0x811c9dc5;
  for (const v of y) h = Math.imul(h ^ v, 0x01000193) >>> 0;
  h = Math.imul(h ^ b, 0x01000193) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  return (h >>> 8) % n;
}

/** Text tower weights bound through `param` (every tensor trains). */
function textWeights<T>(c: ClipConfig, param: (name: string) => T) {
  const affine = (p: string) => ({ w: param(`${p}.weight`), b: param(`${p}.bias`) });
  const blocks: BlockWeights<T>[] = [];
  for (let i = 0; i < c.text.depth; i++) {
    const p = `text.blocks.${i}`;
    blocks.push({ norm1: affine(`${p}.norm1`), qkv: affine(`${p}.attn.qkv`), proj: affine(`${p}.attn.proj`), norm2: affine(`${p}.norm2`), fc1: affine(`${p}.mlp.fc1`), fc2: affine(`${p}.mlp.fc2`) });
  }
  return { table: param('text.token_embedding.weight'), pos: param('text.pos_embed'), blocks, norm: affine('text.norm'), proj: param('text.proj.weight') };
}

/** Text embeddings [N, E] (not normalised) of one-hot captions [N, L, V] pooled at eot [N, 1, L]. */
export function encodeCaptions<T>(ops: Ops<T>, c: ClipConfig, param: (name: string) => T, onehot: T, eot: T): T {
  const tw = textWeights(c, param);
  const bc = textBlockConfig(c);
  const L = ops.shape(onehot)[1] as number; // ≤ the context length
  let h = ops.add(ops.matMul(onehot, tw.table), ops.slice(tw.pos, 0, 0, L)); // [N, L, W]
  const mask = ops.constant(causalMask(L));
  for (const bw of tw.blocks) h = block(ops, bc, bw, h, undefined, false, mask);
  const pooled = ops.reshape(ops.matMul(eot, h), [-1, c.text.width]); // [N, W]
  return ops.linear(ops.layerNorm(pooled, tw.norm.w, tw.norm.b, bc.eps), tw.proj);
}

/** One-hot tokens [N, L, V] and EOT picks [N, 1, L] for rows given as (key, template). */
export function captionInputs(t: CaptionTable, rows: readonly (readonly [number, number] | null)[]): { tokens: HostTensor; eot: HostTensor } {
  const { vocabSize: V } = t.clip.text;
  const L = t.length;
  const N = rows.length;
  const tokens = new Float32Array(N * L * V);
  const eot = new Float32Array(N * L);
  rows.forEach((r, b) => {
    if (!r) return;
    const ids = t.ids[r[0]]![r[1]]!;
    for (let p = 0; p < L; p++) tokens[(b * L + p) * V + ids[p]!] = 1;
    eot[b * L + t.eot[r[0]]![r[1]]!] = 1;
  });
  return { tokens: { shape: [N, L, V], data: tokens }, eot: { shape: [N, 1, L], data: eot } };
}

/** timm-like init for the text tower and projections: N(0, 0.02²) matrices, zero biases, unit norms. */
function initText(c: ClipConfig, D: number, rng: Rng): Map<string, HostTensor> {
  const { vocabSize: V, contextLength: L, width: W, depth } = c.text;
  const E = c.embedDim;
  const out = new Map<string, HostTensor>();
  const randn = (shape: number[], std = 0.02) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => std * normal(rng)) });
  const zeros = (n: number) => ({ shape: [n], data: new Float32Array(n) });
  const ones = (n: number) => ({ shape: [n], data: new Float32Array(n).fill(1) });
  out.set('text.token_embedding.weight', randn([V, W]));
  out.set('text.pos_embed', randn([L, W], 0.01));
  for (let i = 0; i < depth; i++) {
    const p = `text.blocks.${i}`;
    out.set(`${p}.norm1.weight`, ones(W));
    out.set(`${p}.norm1.bias`, zeros(W));
    out.set(`${p}.attn.qkv.weight`, randn([3 * W, W]));
    out.set(`${p}.attn.qkv.bias`, zeros(3 * W));
    out.set(`${p}.attn.proj.weight`, randn([W, W]));
    out.set(`${p}.attn.proj.bias`, zeros(W));
    out.set(`${p}.norm2.weight`, ones(W));
    out.set(`${p}.norm2.bias`, zeros(W));
    out.set(`${p}.mlp.fc1.weight`, randn([4 * W, W]));
    out.set(`${p}.mlp.fc1.bias`, zeros(4 * W));
    out.set(`${p}.mlp.fc2.weight`, randn([W, 4 * W]));
    out.set(`${p}.mlp.fc2.bias`, zeros(W));
  }
  out.set('text.norm.weight', ones(W));
  out.set('text.norm.bias', zeros(W));
  out.set('text.proj.weight', randn([E, W], W ** -0.5));
  out.set('image_proj.weight', randn([E, D], D ** -0.5));
  out.set('logit_scale', { shape: [1], data: Float32Array.of(Math.log(1 / 0.07)) });
  return out;
}

/** Normalised image embeddings [B, E] from the tower's pooled feature [B, D]. */
function imageEmbedding<T>(ops: Ops<T>, pooled: T, param: (name: string) => T): T {
  return l2normalize(ops, ops.linear(pooled, param('image_proj.weight')));
}

export const contrastive: Objective = {
  name: 'contrastive',
  init(h, width, rng) {
    return initText(tableOf(h).clip, width, rng);
  },
  inputShapes(h) {
    const t = tableOf(h);
    const L = t.length;
    const V = t.clip.text.vocabSize;
    return { [CLIP_KEYS.tokens]: ['N', L, V], [CLIP_KEYS.eot]: ['N', 1, L], [CLIP_KEYS.targets]: ['N', 'N'], [CLIP_KEYS.mask]: ['N', 'N'] };
  },
  inputs(h, y) {
    const t = tableOf(h);
    const K = t.ids.length;
    const B = y.length;
    const key = Array.from(y, (v) => (v >= h.offset && v < h.offset + K ? v - h.offset : -1));
    const rows = key.map((k, b) => (k < 0 ? null : ([k, templateOf(y, b, t.ids[k]!.length)] as const)));
    const { tokens, eot } = captionInputs(t, rows);
    const targets = new Float32Array(B * B);
    const mask = new Float32Array(B * B);
    const count = new Map<number, number>();
    for (const k of key) if (k >= 0) count.set(k, (count.get(k) ?? 0) + 1);
    for (let i = 0; i < B; i++) {
      for (let j = 0; j < B; j++) {
        if (key[i]! < 0 || key[j]! < 0) mask[i * B + j] = MASKED;
        else if (key[i] === key[j]) targets[i * B + j] = 1 / count.get(key[i]!)!;
      }
    }
    return new Map([
      [CLIP_KEYS.tokens, tokens],
      [CLIP_KEYS.eot, eot],
      [CLIP_KEYS.targets, { shape: [B, B], data: targets }],
      [CLIP_KEYS.mask, { shape: [B, B], data: mask }],
    ]);
  },
  loss(ops, h, feats, param, input) {
    const c = tableOf(h).clip;
    const img = imageEmbedding(ops, feats.pooled, param); // [B, E]
    const txt = l2normalize(ops, encodeCaptions(ops, c, param, input(CLIP_KEYS.tokens), input(CLIP_KEYS.eot))); // [B, E]
    const z = ops.add(ops.mul(ops.matMul(img, ops.transpose(txt, [1, 0])), ops.exp(param('logit_scale'))), input(CLIP_KEYS.mask)); // [B, B]
    const t = input(CLIP_KEYS.targets);
    // Σ_j per row, then the mean over all B rows (rows of other sources add 0): Σ / B.
    const i2t = ops.reduceMean(ops.reduceSum(ops.mul(t, ops.logSoftmax(z)), [1], false), [0], false);
    const t2i = ops.reduceMean(ops.reduceSum(ops.mul(t, ops.logSoftmax(ops.transpose(z, [1, 0]))), [1], false), [0], false);
    return ops.scale(ops.add(i2t, t2i), -0.5);
  },
  scores(ops, h, pooled, param) {
    // Zero-shot logits against every key's first-template caption [B, K].
    const t = tableOf(h);
    const rows = t.ids.map((_, k) => [k, 0] as const);
    const { tokens, eot } = captionInputs(t, rows);
    const txt = l2normalize(ops, encodeCaptions(ops, t.clip, param, ops.constant(tokens), ops.constant(eot)));
    return ops.mul(ops.matMul(imageEmbedding(ops, pooled, param), ops.transpose(txt, [1, 0])), ops.exp(param('logit_scale')));
  },
  // The temperature, and the CLIP image tower's ln_pre gain (timm's no-decay rule only knows norm, norm1, norm2).
  noDecay: (name) => name === 'logit_scale' || name === 'norm_pre.weight',
};
