/**
 * CLIP, written once against `Ops` (docs/spec/clip.md): the image tower is the ViT definition
 * (vit.ts) in CLIP's layout, the text tower reuses its blocks with a causal mask, and both project
 * into one embedding of width E where logits are `exp(logit_scale) · norm(img) · norm(txt)ᵀ`.
 *
 * Text tower: token ids are known when a task is compiled (class names × templates, or a learned
 * context around them), so the token-embedding lookup happens on the host and the graph starts
 * from the embeddings [C, L, W]: no Gather, and a learned context is a plain Concat. Under the
 * causal mask nothing after a sequence's first EOT reaches that EOT row, so the tower runs on the
 * first `1 + max_c eot_c` positions only (exact; ≈3× less text compute for DAPT's prompts).
 */
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { StateDict } from './safetensors.ts';
import { bindVit, block, preLogits, type Affine, type BlockWeights, type VitWeights } from './vit.ts';
import { type ClipConfig, textBlockConfig } from './clip-variants.ts';
import { CompilerError } from '../ops/errors.ts';

/** Masked attention logits: far enough below any real score that softmax gives exactly 0. */
const MASKED = -1e9;

export interface ClipTextWeights<T> {
  /** [V, W] on the host: looked up there, so it never enters a graph. */
  tokenEmbedding: HostTensor;
  pos: T; // [L, W]
  blocks: BlockWeights<T>[];
  norm: Affine<T>; // ln_final
  proj: T; // [E, W]
}

export interface ClipImageWeights<T> {
  vision: VitWeights<T>;
  proj: T; // [E, D]
}

function getter(sd: StateDict) {
  return (k: string): HostTensor => {
    const t = sd.get(k);
    if (!t) throw new CompilerError('MISSING_TENSOR', `CLIP state dict lacks "${k}" (load it with loadClipWeights)`);
    return t;
  };
}

export function bindClipImage<T>(ops: Ops<T>, cfg: ClipConfig, sd: StateDict, trainable: (key: string) => boolean = () => false): ClipImageWeights<T> {
  const get = getter(sd);
  return { vision: bindVit(ops, cfg.vision, sd, trainable), proj: ops.weight('image_proj.weight', get('image_proj.weight')) };
}

export function bindClipText<T>(ops: Ops<T>, cfg: ClipConfig, sd: StateDict): ClipTextWeights<T> {
  const get = getter(sd);
  const w = (k: string) => ops.weight(k, get(k));
  const affine = (p: string): Affine<T> => ({ w: w(`${p}.weight`), b: w(`${p}.bias`) });
  const blocks: BlockWeights<T>[] = [];
  for (let i = 0; i < cfg.text.depth; i++) {
    const p = `text.blocks.${i}`;
    blocks.push({ norm1: affine(`${p}.norm1`), qkv: affine(`${p}.attn.qkv`), proj: affine(`${p}.attn.proj`), norm2: affine(`${p}.norm2`), fc1: affine(`${p}.mlp.fc1`), fc2: affine(`${p}.mlp.fc2`) });
  }
  return { tokenEmbedding: get('text.token_embedding.weight'), pos: w('text.pos_embed'), blocks, norm: affine('text.norm'), proj: w('text.proj.weight') };
}

/** exp(logit_scale), clamped at 100 as CLIP clamps it in training. */
export function logitScaleOf(sd: StateDict): number {
  const t = getter(sd)('logit_scale');
  return Math.min(100, Math.exp(t.data[0]!));
}

/** [L, L] additive causal mask: 0 on and below the diagonal, masked above. */
export function causalMask(L: number): HostTensor {
  const data = new Float32Array(L * L);
  for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) data[i * L + j] = MASKED;
  return { shape: [L, L], data };
}

/** Rows of the host embedding table for each sequence's first `L` ids: [C, L, W]. */
export function embedTokens(table: HostTensor, ids: readonly ArrayLike<number>[], L: number): HostTensor {
  const [V, W] = table.shape as [number, number];
  const data = new Float32Array(ids.length * L * W);
  ids.forEach((seq, c) => {
    for (let t = 0; t < L; t++) {
      const id = seq[t]!;
      if (!(id >= 0 && id < V)) throw new CompilerError('CONFIG_INVALID', `token id ${id} is outside the text tower's vocabulary of ${V} (is the tokenizer.json the one these weights were trained with?)`);
      data.set(table.data.subarray(id * W, (id + 1) * W), (c * L + t) * W);
    }
  });
  return { shape: [ids.length, L, W], data };
}

/**
 * Text features [C, E] (not normalised) from token embeddings x [C, L, W] whose first EOT sits at
 * `eot[c]` (< L). ln_final is per token, so it runs on the pooled rows only.
 */
export function encodeText<T>(ops: Ops<T>, cfg: ClipConfig, tw: ClipTextWeights<T>, x: T, eot: readonly number[]): T {
  const [C, L] = ops.shape(x) as [number, number];
  if (eot.length !== C) throw new Error(`internal: ${eot.length} EOT positions for ${C} sequences`);
  if (L > cfg.text.contextLength) throw new CompilerError('INTERNAL', `text of ${L} tokens exceeds the context of ${cfg.text.contextLength}`);
  const bc = textBlockConfig(cfg);
  const mask = ops.constant(causalMask(L));
  let h = ops.add(x, ops.slice(tw.pos, 0, 0, L)); // [C, L, W]
  for (const bw of tw.blocks) h = block(ops, bc, bw, h, undefined, false, mask);
  // The first EOT row of each sequence, as a one-hot [C, 1, L] product (no Gather): [C, W].
  const pick = new Float32Array(C * L);
  eot.forEach((e, c) => {
    if (!(e >= 0 && e < L)) throw new Error(`internal: EOT position ${e} outside [0, ${L})`);
    pick[c * L + e] = 1;
  });
  const pooled = ops.reshape(ops.matMul(ops.constant({ shape: [C, 1, L], data: pick }), h), [C, cfg.text.width]);
  return ops.linear(ops.layerNorm(pooled, tw.norm.w, tw.norm.b, bc.eps), tw.proj);
}

/** x / ‖x‖₂ over the last axis. */
export function l2normalize<T>(ops: Ops<T>, x: T): T {
  return ops.div(x, ops.sqrt(ops.reduceSum(ops.mul(x, x), [-1], true)));
}

/**
 * The image embedding [B, E] (not normalised) from the tower's normed tokens (forwardFeatures):
 * ln_post(CLS) · Pᵀ. With `foldLnPost` the caller ran forwardFeatures with an affine-free
 * final norm and `proj` carries γ and β (foldLnPostAffine).
 */
export function encodeImage<T>(ops: Ops<T>, cfg: ClipConfig, proj: Affine<T> | T, feats: T): T {
  const p = proj as Partial<Affine<T>>;
  const cls = preLogits(ops, cfg.vision, feats);
  return p.w !== undefined && p.b !== undefined ? ops.linear(cls, p.w, p.b) : ops.linear(cls, proj as T);
}

/**
 * ln_post's affine folded into the projection: LN(x)·γ + β then ·Pᵀ equals x̂·(P∘γ)ᵀ + P·β.
 * Returns the tower weights with an identity final norm and the folded projection (constants at export).
 */
export function foldLnPostAffine<T>(ops: Ops<T>, cfg: ClipConfig, iw: ClipImageWeights<T>): { vision: VitWeights<T>; proj: Affine<T> } {
  const D = cfg.vision.embedDim;
  const g = iw.vision.norm.w;
  const b = iw.vision.norm.b;
  const proj = { w: ops.mul(iw.proj, ops.reshape(g, [1, D])), b: ops.reshape(ops.linear(ops.reshape(b, [1, D]), iw.proj), [cfg.embedDim]) };
  const ones = ops.constant({ shape: [D], data: new Float32Array(D).fill(1) });
  const zeros = ops.constant({ shape: [D], data: new Float32Array(D) });
  return { vision: { ...iw.vision, norm: { w: ones, b: zeros } }, proj };
}

/** Logits [B, C] = scale · norm(img) · classesᵀ for class embeddings [C, E] that are already unit length. */
export function clipLogits<T>(ops: Ops<T>, img: T, classes: T, scale: number): T {
  return ops.linear(l2normalize(ops, img), ops.scale(classes, scale));
}
