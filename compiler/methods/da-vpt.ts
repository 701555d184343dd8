/**
 * DA-VPT: Distribution-Aware Visual Prompt Tuning (Ren, Chen, Wang, Hua, CVPR 2025;
 * docs/spec/da-vpt.md, from Noahsark/DA-VPT 1a5ac60).
 *
 * Prompts (spec "Tensors", "Forward"): deep-VPT replacement at every block (the previous
 * block's prompt outputs are dropped, fresh ones inserted after CLS, no position embedding),
 * in two groups:
 * - proxy prompts `proxy_prompt_tokens` [p_depth, p_len, D] at blocks proxyStart…proxyEnd
 *   (inclusive, 0-based; default the last block), p_len = min(proxyPrompts, C), one per class
 *   cluster; optional `vptNorm: l2` normalises them before they enter the block;
 * - other prompts `other_prompt_tokens` [L − p_depth, N, D] at the remaining blocks, in order.
 * Init (spec "Init"): xavier_uniform on each 3-D tensor, bound √(6 / (D·len + D·depth)), ÷8 with
 * `initDivideBy8`; head trunc_normal(0.02) (plainly normal at that std), bias 0.
 *
 * Loss (spec "Loss"): CE + (1/p_depth) Σ_ℓ [w_vpt·L_PA(s) + w_cls·L_PA(t)] with, at proxy block ℓ
 * and its input sequence _x = [CLS, P_ℓ, image tokens]: z_b = normalize(mean of _x's image tokens),
 * c_b = normalize(W_q·LN1(_x_cls) + b_q), proxies p_j = 5·normalize(P_ℓ[j]) (raw prompts, not
 * vpt-normed), s = z·pᵀ, t = c·pᵀ, and Proxy-Anchor over the batch per proxy with α = 32, δ = 0.1;
 * both terms divide by all P proxies. Positives come from the class→proxy mapping, fed per batch as
 * the one-hot `proxy_mask` [N, P].
 *
 * Mapping (spec "Class → proxy mapping", method state): class means of the final normed CLS feature
 * over a per-class sample (10 images), LayerNorm without affine, cosine k-means (k = p_len, 20
 * iterations, tol 1e-4); C ≤ p_len is the identity. `initState` uses the frozen prompt-free
 * backbone, as the official code does. DEVIATION: the official code re-clusters at every epoch end
 * from running class means accumulated by the training forward; we recompute the class means with
 * the current prompted model on the same per-class sample at epoch end (warm-started from the
 * previous centres). This keeps the engines' step functions free of side outputs; the means are of
 * the current model rather than averaged over the epoch's changing models.
 *
 * Variants: `da-vpt` trains prompts and head only. `da-vpt-bias` is the released configs'
 * (`learnable_list`): also cls_token, LN1 weight/bias, and the biases of k, v, proj, fc2 and
 * norm2 in every block. timm fuses q, k, v biases into one `attn.qkv.bias` [3D], so we tune all
 * of it: b_q is tuned too (D per block more than the official split, which keeps b_q frozen;
 * b_k is a no-op either way because softmax ignores a per-query constant).
 *
 * Export (spec "Export"): every prompt entering a block is a constant whose outputs are
 * discarded, so the fused form is per-block constant prefix K/V of p_len or N rows (vpt_norm applied first).
 * Fusion cost of `da-vpt-bias`: none in the graph. Tuned biases, LN1 and cls_token are
 * constants that substitute for the frozen values (the prefix K/V are computed with the tuned
 * LN1 and qkv bias), so it exports as the same fused prefix-K/V graph; the cost is that the
 * artifact no longer shares the pretrained backbone bit-for-bit (no `shared` export form: a
 * task update ships the whole model rather than a prompt pack).
 *
 * Recipe (spec "Recipe"): AdamW; prompts and cls_token decay by `weightDecay`, head.weight by
 * `headWeightDecay` (wd_head), biases/LN/head.bias not at all; warmup then cosine per step;
 * batch 32.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { ForwardContext, LossContext, MethodState, PromptMethod, StateContext } from './method.ts';
import { adamwRecipe, headInit, uniform } from './method.ts';
import { cosineKmeans } from './kmeans.ts';
import { bindVit, forwardFeatures, forwardHead, insertTokens, prefixKV, preLogits } from '../backbones/vit.ts';
import { gridOf, type VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { TfOps } from '../ops/tf-ops.ts';
import { CompilerError } from '../ops/errors.ts';
import { softmaxCrossEntropy } from '../train/loss.ts';

const daVptOptions = z.strictObject({
  proxyPrompts: z.number().int().positive().describe('proxy prompts per proxy block (p_len; min(p_len, C) are made)'),
  proxyStart: z.number().int().min(0).optional().describe('first proxy block, 0-based (default: the last block)'),
  proxyEnd: z.number().int().min(0).optional().describe('last proxy block, inclusive (default: the last block)'),
  prompts: z.number().int().positive().describe('prompts per other block (N)'),
  vptNorm: z.enum(['none', 'l2']).describe('l2: proxy prompts are unit-normalised before entering their block'),
  initDivideBy8: z.boolean().describe('divide the xavier-uniform prompt init by 8 (init_divide_by8)'),
  dropout: z.number().min(0).lt(1).describe('dropout on inserted prompts while training (official default 0)'),
  vptLossWeight: z.number().min(0).describe('w_vpt: weight of the patch-mean ↔ proxy Proxy-Anchor term'),
  clsLossWeight: z.number().min(0).describe('w_cls: weight of the CLS-query ↔ proxy Proxy-Anchor term'),
  samplePerClass: z.number().int().positive().describe('images per class behind the class means (init_sample_per_class)'),
  kmeansIterations: z.number().int().positive().describe('cosine k-means iterations at most'),
  kmeansTolerance: z.number().min(0).describe('cosine k-means stops when the centres move less than this (Frobenius norm)'),
  headWeightDecay: z.number().min(0).describe('AdamW weight decay of head.weight (wd_head)'),
});
export type DaVptOptions = z.infer<typeof daVptOptions>;

/** Proxy-Anchor constants (docs/spec/da-vpt.md#loss): α± = 32, δ± = ±0.1, proxy scale 5. */
const PA_ALPHA = 32;
const PA_DELTA = 0.1;
const PROXY_SCALE = 5;

/** Keeps DA-VPT's per-class image draw apart from other methods' samples. */
const DAVPT_STREAM = 0x64617670; // 'davp'
const FEATURE_BATCH = 64;

/** Proxy blocks [start, end] for this backbone, checked. */
function proxyRange(cfg: VitConfig, o: DaVptOptions): { start: number; end: number } {
  const L = cfg.depth;
  const start = o.proxyStart ?? L - 1;
  const end = o.proxyEnd ?? Math.max(start, L - 1);
  if (start > end || end >= L) {
    throw new CompilerError('CONFIG_INVALID', `da-vpt: proxyStart ${start} … proxyEnd ${end} must satisfy 0 ≤ proxyStart ≤ proxyEnd < depth ${L} (${cfg.name})`);
  }
  return { start, end };
}

/** p_len actually made: one proxy per class when there are fewer classes than proxies. */
const proxyCount = (o: DaVptOptions, numClasses: number) => Math.min(o.proxyPrompts, numClasses);

/** xavier_uniform_ bound of a (depth, len, D) tensor: fan_in = len·D, fan_out = depth·D. */
export const xavierBound = (depth: number, len: number, D: number) => Math.sqrt(6 / (D * len + D * depth));

/** x / ‖x‖ along the last axis (F.normalize, eps 1e-12 on the norm → 1e-24 on its square), with rsqrt as exp(−½·log). */
function l2Normalize<T>(ops: Ops<T>, x: T): T {
  const sq = ops.reduceSum(ops.mul(x, x), [-1], true);
  const eps = ops.constant({ shape: [], data: Float32Array.of(1e-24) });
  return ops.mul(x, ops.exp(ops.scale(ops.log(ops.add(sq, eps)), -0.5)));
}

/**
 * log(1 + Σ_b m[b,j]·exp(a[b,j])) for every column j of a [B, P] (m a 0/1 mask) → [P], stable for
 * |a| ≤ α·(5 + δ) = 163.2, far past float32's exp range. The usual shift by the maximum needs a
 * max op; any shift is exact (LSE(a) = s + log Σ exp(a − s)), so we shift by a soft upper bound
 * of max(0, max_b a): s = log(1 + Σ_b exp(β·a))/β with β = 1/4, which stays within exp's range
 * (β·163.2 ≈ 41) and lies within log(B + 1)/β of the maximum, so the largest term keeps at least
 * exp(−4·log(B + 1)) and nothing overflows. Masked-out entries are pushed to −10⁴ before either
 * exp so a large unmasked-out value can neither overflow nor leak a gradient. The gradient
 * through s cancels analytically (the result does not depend on s).
 */
function maskedLog1pSumExp<T>(ops: Ops<T>, a: T, m: T): T {
  const one = ops.constant({ shape: [], data: Float32Array.of(1) });
  const am = ops.add(ops.mul(a, m), ops.scale(ops.sub(m, one), 1e4));
  const beta = 0.25;
  const s = ops.scale(ops.log(ops.add(one, ops.reduceSum(ops.exp(ops.scale(am, beta)), [0], true))), 1 / beta); // [1, P]
  const sum = ops.add(ops.exp(ops.scale(s, -1)), ops.reduceSum(ops.mul(m, ops.exp(ops.sub(am, s))), [0], true));
  return ops.reshape(ops.add(ops.log(sum), s), [-1]);
}

/**
 * Proxy-Anchor (criterion='proxyanchor') for similarities S [B, P] and positives pos [B, P]:
 * 1/P Σ_j log(1 + Σ_{b∈pos_j} e^{−α(S−δ)}) + 1/P Σ_j log(1 + Σ_{b∉pos_j} e^{α(S+δ)}).
 */
export function proxyAnchorLoss<T>(ops: Ops<T>, S: T, pos: T): T {
  const one = ops.constant({ shape: [], data: Float32Array.of(1) });
  const ad = ops.constant({ shape: [], data: Float32Array.of(PA_ALPHA * PA_DELTA) });
  const neg = ops.sub(one, pos);
  const positive = maskedLog1pSumExp(ops, ops.add(ops.scale(S, -PA_ALPHA), ad), pos);
  const negative = maskedLog1pSumExp(ops, ops.add(ops.scale(S, PA_ALPHA), ad), neg);
  return ops.add(ops.reduceMean(positive, [0], false), ops.reduceMean(negative, [0], false));
}

/** The input of one proxy block, as the loss reads it. */
interface ProxyTap<T> {
  /** Index of the block. */
  layer: number;
  /** Index into proxy_prompt_tokens. */
  k: number;
  /** [B, 1 + p_len + G², D]: CLS, the (normed) proxies, the image tokens entering the block. */
  x: T;
}

/**
 * DA-VPT's trunk: normed tokens ([B, 1, D], the last block trimmed to CLS). In 'export' mode
 * every block's prompts become constant prefix K/V; otherwise they run as tokens and `tap`
 * sees the input of every proxy block.
 */
function daVptFeatures<T>(ctx: ForwardContext<T>, x: T, o: DaVptOptions, tap?: (t: ProxyTap<T>) => void): T {
  const { ops, cfg } = ctx;
  const L = cfg.depth;
  const { start, end } = proxyRange(cfg, o);
  const proxies = ctx.param('proxy_prompt_tokens');
  const others = end - start + 1 < L ? ctx.param('other_prompt_tokens') : null;
  const prompt = (i: number): T => {
    if (i >= start && i <= end) {
      const p = ops.slice(proxies, 0, i - start, i - start + 1); // [1, p_len, D]
      return o.vptNorm === 'l2' ? l2Normalize(ops, p) : p;
    }
    const j = i < start ? i : i - (end - start + 1);
    return ops.slice(others!, 0, j, j + 1); // [1, N, D]
  };
  const u8 = ctx.uint8Nhwc ? { uint8Nhwc: true } : {};
  if (ctx.mode === 'export') {
    // Constant prompts whose outputs are discarded: only their keys/values matter (docs/spec/folding.md).
    const kv = ctx.w.blocks.map((bw, i) => {
      const { k, v } = prefixKV(ops, cfg, bw, prompt(i));
      return { k: ops.label(k, `blocks.${i}.attn.prompt_k`), v: ops.label(v, `blocks.${i}.attn.prompt_v`) };
    });
    return forwardFeatures(ops, cfg, ctx.w, x, { prefix: (i) => kv[i], clsOnlyLastBlock: true, ...u8 });
  }
  const drop = (t: T) => (ctx.mode === 'train' && o.dropout > 0 ? ops.dropout(t, o.dropout) : t);
  const counts = Array.from({ length: L }, (_, i) => (i >= start && i <= end ? (ops.shape(proxies)[1] as number) : (ops.shape(others!)[1] as number)));
  const seen = (i: number, h: T) => {
    if (tap && i >= start && i <= end) tap({ layer: i, k: i - start, x: h });
    return h;
  };
  return forwardFeatures(ops, cfg, ctx.w, x, {
    afterEmbed: (h) => seen(0, insertTokens(ops, h, drop(prompt(0)))),
    beforeBlock: (i, h) => {
      const T = ops.shape(h)[1] as number;
      // [CLS | P_i | patches]: the previous block's prompt outputs (counts[i − 1] rows) are discarded.
      return seen(i, ops.concat([ops.slice(h, 1, 0, 1), ops.expandBatch(drop(prompt(i)), h), ops.slice(h, 1, 1 + counts[i - 1]!, T)], 1));
    },
    clsOnlyLastBlock: true,
    ...u8,
  });
}

/** The metric term of one proxy block: w_vpt·L_PA(s) + w_cls·L_PA(t) (docs/spec/da-vpt.md#loss). */
function proxyBlockLoss<T>(ctx: LossContext<T>, o: DaVptOptions, t: ProxyTap<T>, pos: T): T {
  const { ops, cfg } = ctx;
  const D = cfg.embedDim;
  const G2 = gridOf(cfg) ** 2;
  const T = ops.shape(t.x)[1] as number;
  const pLen = ops.shape(ctx.param('proxy_prompt_tokens'))[1] as number;
  const raw = ops.reshape(ops.slice(ctx.param('proxy_prompt_tokens'), 0, t.k, t.k + 1), [pLen, D]); // raw prompts, not vpt-normed
  const proxiesT = ops.transpose(ops.scale(l2Normalize(ops, raw), PROXY_SCALE), [1, 0]); // [D, P]
  const z = l2Normalize(ops, ops.reduceMean(ops.slice(t.x, 1, T - G2, T), [1], false)); // [B, D]
  const bw = ctx.w.blocks[t.layer]!;
  const cls = ops.reshape(ops.slice(t.x, 1, 0, 1), [0, D]);
  const q = ops.linear(ops.layerNorm(cls, bw.norm1.w, bw.norm1.b, cfg.eps), ops.slice(bw.qkv.w, 0, 0, D), ops.slice(bw.qkv.b, 0, 0, D));
  const c = l2Normalize(ops, q); // [B, D]
  const terms: T[] = [];
  if (o.vptLossWeight > 0) terms.push(ops.scale(proxyAnchorLoss(ops, ops.matMul(z, proxiesT), pos), o.vptLossWeight));
  if (o.clsLossWeight > 0) terms.push(ops.scale(proxyAnchorLoss(ops, ops.matMul(c, proxiesT), pos), o.clsLossWeight));
  return terms.reduce((a, b) => ops.add(a, b));
}

// ── class → proxy mapping ──────────────────────────────────────────────────────────────

/** LayerNorm without affine over each D-row (torch F.layer_norm, eps 1e-5). */
function layerNormRows(X: Float32Array, D: number): Float32Array {
  const out = new Float32Array(X.length);
  for (let r = 0; r < X.length / D; r++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += X[r * D + d]!;
    mean /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (X[r * D + d]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / D + 1e-5);
    for (let d = 0; d < D; d++) out[r * D + d] = (X[r * D + d]! - mean) * inv;
  }
  return out;
}

/** Per-class means [C·D] of features [n·D] with labels y; a class without images stays zero. */
function classMeans(feats: Float32Array, y: Int32Array, C: number, D: number): Float32Array {
  const sum = new Float64Array(C * D);
  const cnt = new Array<number>(C).fill(0);
  y.forEach((c, i) => {
    cnt[c]!++;
    for (let d = 0; d < D; d++) sum[c * D + d]! += feats[i * D + d]!;
  });
  return Float32Array.from(sum, (v, j) => (cnt[Math.floor(j / D)]! ? v / cnt[Math.floor(j / D)]! : 0));
}

/**
 * Final normed CLS features [n·D] of images x through TfOps: the frozen prompt-free backbone
 * when `params` is absent, else DA-VPT's trunk with those tensors (backbone keys substituted).
 */
function clsFeatures(cfg: VitConfig, backbone: StateDict, x: HostTensor, o: DaVptOptions, params?: Map<string, HostTensor>): Float32Array {
  const [n, C, S, S2] = x.shape as [number, number, number, number];
  const D = cfg.embedDim;
  const out = new Float32Array(n * D);
  const ops = new TfOps();
  try {
    const sd: StateDict = new Map(backbone);
    for (const [k, v] of params ?? []) if (sd.has(k)) sd.set(k, v);
    const w = bindVit(ops, cfg, sd);
    const param = (name: string) => {
      const v = params?.get(name);
      if (!v) throw new CompilerError('MISSING_TENSOR', `da-vpt: tensor "${name}" has no value`);
      return ops.weight(name, v);
    };
    const per = C * S * S2;
    for (let b0 = 0; b0 < n; b0 += FEATURE_BATCH) {
      const m = Math.min(FEATURE_BATCH, n - b0);
      const f = tf.tidy(() => {
        const xb = tf.tensor(x.data.subarray(b0 * per, (b0 + m) * per), [m, C, S, S2]);
        const feats = params ? daVptFeatures({ ops, cfg, w, param, mode: 'eval' }, xb, o) : forwardFeatures(ops, cfg, w, xb, { clsOnlyLastBlock: true });
        return preLogits(ops, cfg, feats);
      });
      out.set(f.dataSync() as Float32Array, b0 * D);
      f.dispose();
    }
    return out;
  } finally {
    ops.dispose();
  }
}

/** The method state: proxies per block, class → proxy, and the k-means centres (null: identity). */
export interface DaVptState extends MethodState {
  pLen: number;
  mapping: number[];
  centres: number[] | null;
  kmeansIterations: number;
}

async function mappingState(ctx: StateContext, o: DaVptOptions, prompted: boolean, prev?: DaVptState): Promise<DaVptState> {
  const C = ctx.numClasses;
  const pLen = proxyCount(o, C);
  if (C <= o.proxyPrompts) return { pLen, mapping: Array.from({ length: C }, (_, c) => c), centres: null, kmeansIterations: 0 }; // all_classes
  if (!ctx.sample) throw new CompilerError('UNSUPPORTED', 'da-vpt: the class→proxy mapping needs training images (InitContext.sample), which this context lacks');
  const s = await ctx.sample({ perClass: o.samplePerClass, stream: DAVPT_STREAM });
  const D = ctx.cfg.embedDim;
  const feats = clsFeatures(ctx.cfg, ctx.backbone, s.x, o, prompted ? ctx.params : undefined);
  const X = classMeans(feats, s.y, C, D);
  // LayerNorm (kmeans_norm='layer') on the present classes; absent ones stay zero → random cluster.
  const normed = layerNormRows(X, D);
  for (let c = 0; c < C; c++) if (X.subarray(c * D, (c + 1) * D).every((v) => v === 0)) normed.fill(0, c * D, (c + 1) * D);
  const r = cosineKmeans(normed, D, pLen, { iterations: o.kmeansIterations, tol: o.kmeansTolerance, rng: ctx.rng, ...(prev?.centres ? { init: Float32Array.from(prev.centres) } : {}) });
  return { pLen, mapping: Array.from(r.assign), centres: [...r.centres], kmeansIterations: r.iterations };
}

/** One-hot of mapping[y] as [B, p_len] (the Proxy-Anchor positives). */
function proxyMask(y: Int32Array, state: MethodState): HostTensor {
  const { pLen, mapping } = state as DaVptState;
  if (!Array.isArray(mapping) || typeof pLen !== 'number') throw new CompilerError('INTERNAL', 'da-vpt: method state lacks the class→proxy mapping (mapping, pLen)');
  const m = new Float32Array(y.length * pLen);
  y.forEach((c, b) => {
    const j = mapping[c];
    if (j === undefined || j < 0 || j >= pLen) throw new CompilerError('INTERNAL', `da-vpt: label ${c} of image ${b} has no proxy in the mapping (${mapping.length} classes, ${pLen} proxies)`);
    m[b * pLen + j] = 1;
  });
  return { shape: [y.length, pLen], data: m };
}

const BIAS_KEYS = /^(cls_token|blocks\.\d+\.(norm1\.weight|norm1\.bias|attn\.qkv\.bias|attn\.proj\.bias|mlp\.fc2\.bias|norm2\.bias))$/;

function make(name: 'da-vpt' | 'da-vpt-bias'): PromptMethod<DaVptOptions> {
  const withBias = name === 'da-vpt-bias';
  return {
    name,
    optionsSchema: daVptOptions,
    resolveOptions: (raw) =>
      daVptOptions.parse({
        proxyPrompts: 10, prompts: 10, vptNorm: 'none', initDivideBy8: true, dropout: 0, vptLossWeight: 0.1, clsLossWeight: 0.05,
        samplePerClass: 10, kmeansIterations: 20, kmeansTolerance: 1e-4, headWeightDecay: 0, ...raw,
      }),
    init(ctx, o) {
      const D = ctx.cfg.embedDim;
      const { start, end } = proxyRange(ctx.cfg, o);
      const pDepth = end - start + 1;
      const pLen = proxyCount(o, ctx.numClasses);
      const div = o.initDivideBy8 ? 8 : 1;
      const m = new Map([['proxy_prompt_tokens', uniform([pDepth, pLen, D], xavierBound(pDepth, pLen, D) / div, ctx.rng)]]);
      const rest = ctx.cfg.depth - pDepth;
      if (rest > 0) m.set('other_prompt_tokens', uniform([rest, o.prompts, D], xavierBound(rest, o.prompts, D) / div, ctx.rng));
      for (const [k, t] of headInit(ctx, 0.02)) m.set(k, t);
      return m;
    },
    trainsBackbone: (key) => withBias && BIAS_KEYS.test(key),
    forward: (ctx, x, o) => forwardHead(ctx.ops, ctx.cfg, ctx.w, daVptFeatures(ctx, x, o)),
    loss(ctx, x, o) {
      const { ops } = ctx;
      const taps: ProxyTap<typeof x>[] = [];
      const logits = forwardHead(ops, ctx.cfg, ctx.w, daVptFeatures(ctx, x, o, (t) => taps.push(t)));
      const ce = softmaxCrossEntropy(ops, logits, ctx.targets);
      if (o.vptLossWeight === 0 && o.clsLossWeight === 0) return { loss: ce, logits };
      const pos = ctx.input('proxy_mask');
      const da = taps.map((t) => proxyBlockLoss(ctx, o, t, pos)).reduce((a, b) => ops.add(a, b));
      return { loss: ops.add(ce, ops.scale(da, 1 / taps.length)), logits };
    },
    batchInputShapes: (o, numClasses) => ({ proxy_mask: ['N', proxyCount(o, numClasses)] }),
    batchInputs: (y, state) => new Map([['proxy_mask', proxyMask(y, state)]]),
    initState: (ctx, o) => mappingState(ctx, o, false),
    epochEnd: (ctx, state, _epoch, o) => mappingState(ctx, o, true, state as DaVptState),
    // timm param_groups_weight_decay: biases and 1-D tensors (LN) do not decay; prompts and cls_token do.
    decays: (n) => !(n.endsWith('.bias') || /norm\d?\.weight$/.test(n)),
    weightDecayFor: (n, o) => (n === 'head.weight' ? o.headWeightDecay : undefined),
    recipe: () => adamwRecipe({ lr: 5e-3, weightDecay: 0.05, batchSize: 32 }),
  };
}

export const daVpt = make('da-vpt');
export const daVptBias = make('da-vpt-bias');
