/**
 * Vision Transformer, written once against `Ops` (timm `VisionTransformer` semantics):
 * conv patch embedding, CLS token, learned absolute position embedding, pre-LN blocks
 * (`x + attn(norm1(x))`, `x + mlp(norm2(x))`, exact GELU, eps 1e-6), final norm, head on CLS.
 *
 * The same definition is CLIP's image tower (timm's `vit_*_clip_224` layout): a bias-free patch
 * conv (`patchBias: false`), `norm_pre` (CLIP's `ln_pre`) over the embedded sequence,
 * QuickGELU by weight source, eps 1e-5; and its blocks, with a causal `mask`, are the text
 * tower's (compiler/backbones/clip.ts; docs/spec/clip.md).
 *
 * `forwardFeatures` is apart from `forwardHead`; prompt methods change the trunk only through
 * `VitHooks` (extra tokens, per-layer prefix keys/values), never by editing this file.
 */
import type { Ops } from '../ops/ops.ts';
import type { StateDict } from './safetensors.ts';
import { type VitConfig, gridOf } from './vit-variants.ts';

export interface Affine<T> { w: T; b: T }
export interface BlockWeights<T> {
  norm1: Affine<T>;
  qkv: Affine<T>;
  proj: Affine<T>;
  norm2: Affine<T>;
  fc1: Affine<T>;
  fc2: Affine<T>;
  /** Read-outs for analysis tools (compiler/explain); absent in training and export. */
  taps?: BlockTaps<T>;
}

/**
 * Taps ride on the weights because every method passes `ctx.w` (or a spread of it) to the
 * trunk, including methods that call `block` directly (SA2VP): no method has to forward them.
 */
export interface BlockTaps<T> {
  /** The block's input tokens [B, T, D]; returns them, or them plus a zero probe (a gradient target). */
  input?(x: T): T;
  /** Attention probabilities [B, H, Tq, N + T] (N prefix keys first) each time the block attends. */
  attention?(probs: T): void;
}
export interface VitWeights<T> {
  /** Patch projection as a linear layer: weight [D, C·p·p] (the conv kernel flattened in C, kh, kw order); no bias for CLIP. */
  patch: { w: T; b?: T };
  cls: T; // [1, 1, D]
  pos: T; // [1, 1 + G², D]
  /** CLIP's `ln_pre` over [CLS, patches] before block 0 (`cfg.preNorm`). */
  normPre?: Affine<T>;
  blocks: BlockWeights<T>[];
  norm: Affine<T>;
  head?: Affine<T>;
  /** Sees the pixels the patch embedding reads ([B, C, H, W] normalised, or uint8 NHWC), prompts included. */
  pixelTap?(x: T): void;
}

/** Keys of the prefix keys/values one block attends to in addition to its own tokens. */
export interface PrefixKV<T> {
  k: T; // [H, N, dh] (shared by the batch) or [B, H, N, dh]
  v: T; // same shape as k
}

export interface VitHooks<T> {
  /** After CLS + patches + position embedding, before block 0: e.g. insert prompt tokens. */
  afterEmbed?(h: T): T;
  /** Before block i > 0: e.g. replace the previous layer's deep prompts. */
  beforeBlock?(i: number, h: T): T;
  /** Constant keys/values block i attends to in addition to its tokens (fused deep prompts). */
  prefix?(i: number): PrefixKV<T> | undefined;
  /** The head reads CLS only, so the last block may compute just that row. */
  clsOnlyLastBlock?: boolean;
  /** The input is [B, H, W, 3] uint8 RGB; normalisation folds into the patch projection. */
  uint8Nhwc?: boolean;
}

/**
 * Bind a validated timm state dict to an interpreter. Every tensor keeps its timm key; keys for
 * which `trainable` says yes become parameters (full fine-tuning), the rest frozen weights.
 */
export function bindVit<T>(ops: Ops<T>, cfg: VitConfig, sd: StateDict, trainable: (key: string) => boolean = () => false): VitWeights<T> {
  const get = (k: string) => {
    const t = sd.get(k);
    if (!t) throw new Error(`internal: state dict lacks ${k} (validate it with loadVitWeights first)`);
    return t;
  };
  const w = (k: string) => (trainable(k) ? ops.param(k, get(k)) : ops.weight(k, get(k)));
  const affine = (p: string): Affine<T> => ({ w: w(`${p}.weight`), b: w(`${p}.bias`) });
  const pw = get('patch_embed.proj.weight');
  const D = cfg.embedDim;
  const blocks: BlockWeights<T>[] = [];
  for (let i = 0; i < cfg.depth; i++) {
    const p = `blocks.${i}`;
    blocks.push({
      norm1: affine(`${p}.norm1`),
      qkv: affine(`${p}.attn.qkv`),
      proj: affine(`${p}.attn.proj`),
      norm2: affine(`${p}.norm2`),
      fc1: affine(`${p}.mlp.fc1`),
      fc2: affine(`${p}.mlp.fc2`),
    });
  }
  // The conv kernel [D, C, p, p] as a linear weight [D, C·p·p]: the same bytes, another shape.
  const patchW = (trainable('patch_embed.proj.weight') ? ops.param.bind(ops) : ops.weight.bind(ops))('patch_embed.proj.weight', { shape: [D, pw.shape[1]! * pw.shape[2]! * pw.shape[3]!], data: pw.data });
  return {
    patch: cfg.patchBias === false ? { w: patchW } : { w: patchW, b: w('patch_embed.proj.bias') },
    cls: w('cls_token'),
    pos: w('pos_embed'),
    ...(cfg.preNorm ? { normPre: affine('norm_pre') } : {}),
    blocks,
    norm: affine('norm'),
    ...(cfg.numClasses > 0 && sd.has('head.weight') ? { head: affine('head') } : {}),
  };
}

/** [B, C, H, W] float → [B, G², D]: the stride-p conv as patchify + one matMul. */
export function patchEmbed<T>(ops: Ops<T>, cfg: VitConfig, w: VitWeights<T>, x: T): T {
  const g = gridOf(cfg);
  const p = cfg.patchSize;
  const C = cfg.inChans;
  const patches = ops.reshape(ops.transpose(ops.reshape(x, [0, C, g, p, g, p]), [0, 2, 4, 1, 3, 5]), [0, g * g, C * p * p]);
  return ops.linear(patches, w.patch.w, w.patch.b);
}

/**
 * [B, H, W, 3] uint8 RGB (what a camera delivers) → [B, G², D], with `(x/255 − mean)/std` and
 * the NHWC layout folded into the patch projection: W'[d, (kh,kw,c)] = W[d, c, kh, kw] / (255·std_c),
 * b' = b − Σ W[d, c, kh, kw]·mean_c/std_c. The device does no per-pixel work outside the graph.
 */
function patchEmbedUint8<T>(ops: Ops<T>, cfg: VitConfig, w: VitWeights<T>, x: T): T {
  const { w: wf, b } = uint8PatchProjection(ops, cfg, w);
  return ops.linear(uint8Patches(ops, cfg, x), wf, b);
}

/** [B, H, W, C] uint8 → [B, G², p·p·C] float patches in (kh, kw, c) order. */
function uint8Patches<T>(ops: Ops<T>, cfg: VitConfig, x: T): T {
  const g = gridOf(cfg);
  const p = cfg.patchSize;
  const C = cfg.inChans;
  return ops.reshape(ops.transpose(ops.reshape(ops.toFloat(x), [0, g, p, g, p, C]), [0, 1, 3, 2, 4, 5]), [0, g * g, p * p * C]);
}

/** The patch projection with normalisation and the NHWC layout folded in: W' [D, p·p·C], b' [D]. */
function uint8PatchProjection<T>(ops: Ops<T>, cfg: VitConfig, w: VitWeights<T>): { w: T; b: T } {
  const p = cfg.patchSize;
  const C = cfg.inChans;
  const D = cfg.embedDim;
  const cols = p * p * C;
  const scale = new Float32Array(cols);
  const shift = new Float32Array(cols);
  for (let i = 0; i < cols; i++) {
    const c = i % C;
    scale[i] = 1 / (255 * cfg.std[c]!);
    shift[i] = cfg.mean[c]! / cfg.std[c]!;
  }
  const wNhwc = ops.reshape(ops.transpose(ops.reshape(w.patch.w, [D, C, p, p]), [0, 2, 3, 1]), [D, cols]);
  const wFolded = ops.mul(wNhwc, ops.constant({ shape: [cols], data: scale }));
  const meanTerm = ops.reduceSum(ops.mul(wNhwc, ops.constant({ shape: [cols], data: shift })), [1], false); // [D]
  return { w: wFolded, b: w.patch.b ? ops.sub(w.patch.b, meanTerm) : ops.scale(meanTerm, -1) };
}

/** [B, C, H, W] float (or [B, H, W, 3] uint8 with `uint8Nhwc`) → [B, 1 + G², D]: CLS and patch tokens with position embedding (and `ln_pre` for CLIP). */
export function embed<T>(ops: Ops<T>, cfg: VitConfig, w: VitWeights<T>, x: T, uint8Nhwc = false): T {
  const T1 = gridOf(cfg) ** 2 + 1;
  w.pixelTap?.(x);
  let patches: T;
  if (uint8Nhwc && !w.patch.b) {
    // Bias-free conv (CLIP): the folded normalisation's constant −Σ W·μ/σ joins pos[1:] instead
    // of a bias, one constant [G², D] and one Add (docs/spec/clip.md#what-folds).
    const { w: wf, b: shift } = uint8PatchProjection(ops, cfg, w);
    patches = ops.add(ops.linear(uint8Patches(ops, cfg, x), wf), ops.add(ops.slice(w.pos, 1, 1, T1), shift));
  } else {
    patches = ops.add((uint8Nhwc ? patchEmbedUint8 : patchEmbed)(ops, cfg, w, x), ops.slice(w.pos, 1, 1, T1));
  }
  // cls + pos[0] depends on weights only: one constant after folding; with `ln_pre` (per token)
  // normalising it apart from the patches keeps it one constant row.
  let cls = ops.add(w.cls, ops.slice(w.pos, 1, 0, 1));
  if (w.normPre) {
    cls = ops.layerNorm(cls, w.normPre.w, w.normPre.b, cfg.eps);
    patches = ops.layerNorm(patches, w.normPre.w, w.normPre.b, cfg.eps);
  }
  return ops.concat([ops.expandBatch(cls, patches), patches], 1);
}

/**
 * Multi-head self-attention of normalised tokens x [B, T, D] → [B, Tq, D]. `mask` [T, T] is added
 * to the attention logits (CLIP's text tower: 0 on and below the diagonal, −1e9 above).
 */
export function attention<T>(ops: Ops<T>, cfg: VitConfig, bw: BlockWeights<T>, x: T, prefix?: PrefixKV<T>, clsOnly = false, mask?: T): T {
  const D = cfg.embedDim;
  const H = cfg.numHeads;
  const dh = D / H;
  const T = ops.shape(x)[1] as number;
  const Tq = clsOnly ? 1 : T;
  // timm's layout: [B,T,3D] → [B,T,3,H,dh] → [3,B,H,T,dh], one transpose for q, k and v.
  const qkv = ops.transpose(ops.reshape(ops.linear(x, bw.qkv.w, bw.qkv.b), [0, T, 3, H, dh]), [2, 0, 3, 1, 4]);
  const [q0, k0, v] = ops.split(qkv, 0, [1, 1, 1]).map((t) => ops.reshape(t, [-1, H, T, dh])) as [T, T, T]; // [B,H,T,dh]
  const q = ops.scale(clsOnly ? ops.slice(q0, 2, 0, 1) : q0, dh ** -0.5); // [B,H,Tq,dh]
  let k = k0;
  let vAll = v;
  if (mask && (prefix || clsOnly)) throw new Error('internal: an attention mask goes with neither prefix keys nor a CLS-only block');
  if (prefix) {
    // Prefix keys/values join the tokens' own along the key axis (order is irrelevant: no
    // positional bias), so attention stays two MatMuls and one softmax; expanding the constant
    // [1,H,N,dh] to the batch copies N·D values per layer, far less than extra score products.
    const batched = (t: T) => (ops.shape(t).length === 3 ? ops.expandBatch(ops.reshape(t, [1, H, -1, dh]), k0) : t);
    k = ops.concat([batched(prefix.k), k0], 2);
    vAll = ops.concat([batched(prefix.v), v], 2);
  }
  const kT = ops.transpose(k, [0, 1, 3, 2]); // [B,H,dh,N+T]: ORT fuses this into the MatMul (transB)
  const scores = ops.matMul(q, kT); // [B,H,Tq,N+T]
  const probs = ops.softmax(mask ? ops.add(scores, mask) : scores);
  bw.taps?.attention?.(probs);
  const out = ops.matMul(probs, vAll); // [B,H,Tq,dh]
  return ops.linear(ops.reshape(ops.transpose(out, [0, 2, 1, 3]), [0, Tq, D]), bw.proj.w, bw.proj.b);
}

/**
 * The keys/values constant tokens P [1, N, D] would contribute in block `bw`, as [H, N, dh]:
 * LN1(P)·W_k + b_k and LN1(P)·W_v + b_v. LayerNorm is per token, so when P does not depend on
 * the image these fold into initializers (docs/spec/folding.md).
 */
export function prefixKV<T>(ops: Ops<T>, cfg: VitConfig, bw: BlockWeights<T>, P: T): PrefixKV<T> {
  const D = cfg.embedDim;
  const H = cfg.numHeads;
  const N = ops.shape(P)[1] as number;
  const [, k, v] = ops.split(ops.linear(ops.layerNorm(P, bw.norm1.w, bw.norm1.b, cfg.eps), bw.qkv.w, bw.qkv.b), -1, [D, D, D]) as [T, T, T];
  const heads = (t: T) => ops.transpose(ops.reshape(t, [N, H, D / H]), [1, 0, 2]);
  return { k: heads(k), v: heads(v) };
}

/** The MLP's activation: exact GELU unless the weights were trained with QuickGELU (OpenAI CLIP). */
export function activation<T>(ops: Ops<T>, cfg: Pick<VitConfig, 'act'>, x: T): T {
  return cfg.act === 'quick_gelu' ? ops.quickGelu(x) : ops.gelu(x);
}

export function block<T>(ops: Ops<T>, cfg: VitConfig, bw: BlockWeights<T>, x0: T, prefix?: PrefixKV<T>, clsOnly = false, mask?: T): T {
  const x = bw.taps?.input ? bw.taps.input(x0) : x0;
  const a = attention(ops, cfg, bw, ops.layerNorm(x, bw.norm1.w, bw.norm1.b, cfg.eps), prefix, clsOnly, mask);
  const h = ops.add(clsOnly ? ops.slice(x, 1, 0, 1) : x, a);
  const m = ops.linear(activation(ops, cfg, ops.linear(ops.layerNorm(h, bw.norm2.w, bw.norm2.b, cfg.eps), bw.fc1.w, bw.fc1.b)), bw.fc2.w, bw.fc2.b);
  return ops.add(h, m);
}

/** Insert tokens [1 | B, N, D] into h [B, T, D] before index `at` (VPT puts prompts after CLS, at 1). */
export function insertTokens<T>(ops: Ops<T>, h: T, tokens: T, at = 1): T {
  const T0 = ops.shape(h)[1] as number;
  const t = ops.shape(tokens)[0] === 1 ? ops.expandBatch(tokens, h) : tokens;
  const parts = [ops.slice(h, 1, 0, at), t];
  if (at < T0) parts.push(ops.slice(h, 1, at, T0));
  return ops.concat(parts, 1);
}

/** [B, C, H, W] → normalised tokens [B, T, D] ([B, 1, D] when the last block is trimmed to CLS). */
export function forwardFeatures<T>(ops: Ops<T>, cfg: VitConfig, w: VitWeights<T>, x: T, hooks: VitHooks<T> = {}): T {
  let h = embed(ops, cfg, w, x, hooks.uint8Nhwc === true);
  if (hooks.afterEmbed) h = hooks.afterEmbed(h);
  w.blocks.forEach((bw, i) => {
    if (i > 0 && hooks.beforeBlock) h = hooks.beforeBlock(i, h);
    const last = i === w.blocks.length - 1;
    h = block(ops, cfg, bw, h, hooks.prefix?.(i), last && hooks.clsOnlyLastBlock === true);
  });
  return ops.layerNorm(h, w.norm.w, w.norm.b, cfg.eps);
}

/** The pooled feature the head reads: the CLS token, [B, D]. */
export function preLogits<T>(ops: Ops<T>, cfg: VitConfig, feats: T): T {
  return ops.reshape(ops.slice(feats, 1, 0, 1), [0, cfg.embedDim]);
}

export function forwardHead<T>(ops: Ops<T>, cfg: VitConfig, w: VitWeights<T>, feats: T): T {
  if (!w.head) throw new Error(`${cfg.name}: no head (numClasses 0); use preLogits for features`);
  return ops.linear(preLogits(ops, cfg, feats), w.head.w, w.head.b);
}

export function forward<T>(ops: Ops<T>, cfg: VitConfig, w: VitWeights<T>, x: T, hooks: VitHooks<T> = {}): T {
  return forwardHead(ops, cfg, w, forwardFeatures(ops, cfg, w, x, hooks));
}
