/**
 * SA2VP: Spatially Aligned-and-Adapted Visual Prompt (Pei, Xia et al., AAAI 2024), official
 * semantics (tommy-xq/SA2VP `vit_tinypara.py`; docs/spec/sa2vp.md):
 * - a 2-D prompt map ppt [1, T, r] (one slot per token, CLS included) lifted by ppt_proj r→D and
 *   given the image's own position embedding: P₀ = ppt_proj(ppt) + pos (the spatial alignment);
 * - two pathways through the *same* frozen blocks: base H (the image) and prompt P, never mixed
 *   inside self-attention; at every layer a cross-block lets one pathway read the other:
 *   b2p layers (default {0, L/3, 2L/3}; official {0, 4, 8} of 12): F = X_i(kv = H, q = P) is
 *   added to P (plus, except at layer 0, a deep prompt map Block_i(deep_proj(deep_ppt)) ⊙
 *   cross_conv); p2b layers (the rest): F = X_i(kv = P, q = H) is added to H; both scaled by a;
 * - X_i(kv, q) = Mlp_small(ffn_norm(q + CA(LN1_i(kv), LN1_i(q)))): no second residual; CA uses
 *   block i's frozen q/k/v/out projections per head; CLS queries every kv token, patch (r, c)
 *   only the 3×3 neighbourhood at (r, c) of the other map (4 keys at corners, 6 on edges, 9
 *   inside; missing neighbours are excluded from the softmax, as the official per-token code);
 * - encoder norm on both maps; logits = head(H[:, 0]), logits_p = head(P[:, 0]), the head shared;
 *   loss 0.8·CE(logits) + 0.2·CE(logits_p); evaluation and export use logits only.
 * The local attention is written as full scores [B, h, T, T] plus a constant additive mask
 * (−1e4 outside the window, exp underflows to exactly 0 in float32): static, gather-free, and
 * exact. Cost: at T = 65 (8×8 + CLS) the extra T² terms are ~T·D·T = 0.4 M MACs per map and
 * layer beside the 4·T·D² = 2.4 M of the projections; at ViT-B/16's 197 tokens 2·197²·768 = 60 M
 * against 465 M (+13 % per cross-block) where a gather would need 2.7 M.
 * Dropout (rate `dropout`, 0.1) sits where the method's own modules have it: on P₀, on the
 * cross-attention output and inside Mlp_small. The frozen backbone runs in eval mode (as our
 * VPT), so the official embedding/MLP dropout of the frozen ViT is left out.
 * Nothing folds into prefix K/V (P depends on the image from layer 0 on); the export form is
 * this forward with its weight-only parts (P₀, Block₀(P₀), its layer-0 queries, the deep-prompt
 * terms, per-head projection slices) folded into initializers by OnnxOps.
 */
import { z } from 'zod';
import { normal, type Rng } from '../../devices/rng.ts';
import type { ForwardContext, PromptMethod } from './method.ts';
import { adamwRecipe, headInit, uniform } from './method.ts';
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import { gridOf } from '../backbones/vit-variants.ts';
import { type BlockWeights, block, embed, forwardHead } from '../backbones/vit.ts';
import { softmaxCrossEntropy } from '../train/loss.ts';
import { CompilerError } from '../ops/errors.ts';

const sa2vpOptions = z.strictObject({
  interDim: z.number().int().positive().describe('inter-dim r of the prompt maps and Mlp_small (official 8/16/32/64)'),
  b2pLayers: z.array(z.number().int().nonnegative()).min(1).optional().describe('base→prompt layers (default: 0, L/3, 2L/3); deep prompt maps enter at all but 0'),
  addScale: z.number().describe('inter-weight a scaling every cross-block output (official 0.1; 1.5 for VTAB Specialized/Structured)'),
  dropout: z.number().min(0).max(1).describe('dropout on P₀, the cross-attention output and inside Mlp_small while training'),
  promptLossWeight: z.number().min(0).max(1).describe('weight of CE(logits_p); the base logits get 1 − this (official 0.2)'),
});
export type Sa2vpOptions = z.infer<typeof sa2vpOptions>;

/** Masked-out attention score: exp(−1e4 + s − max) is exactly 0 in float32 (and fp16) for any realistic s. */
const MASKED = -1e4;

/** The base→prompt layers: the configured ones, or the official {0, 4, 8} of 12 scaled to depth L. */
export function b2pLayersOf(o: Sa2vpOptions, L: number): number[] {
  const layers = o.b2pLayers ?? [...new Set([0, Math.round(L / 3), Math.round((2 * L) / 3)])].filter((i) => i < L);
  const sorted = [...layers].sort((a, b) => a - b);
  if (sorted.some((i, k) => i >= L || (k > 0 && i === sorted[k - 1]))) {
    throw new CompilerError('CONFIG_INVALID', `method.options.b2pLayers ${JSON.stringify(o.b2pLayers)}: expected distinct layer indices in [0, ${L}) for a ${L}-block backbone`);
  }
  return sorted;
}

/** Layers where a deep prompt map is injected: the b2p layers except 0. */
const deepLayersOf = (b2p: number[]) => b2p.filter((i) => i > 0);

/**
 * Trainable values without the head, by formula (docs/spec/sa2vp.md: 372,912 for ViT-B/16 at r = 16):
 * ppt T·r, ppt_proj r·D + D, deep maps k·(T·r + r·D + D), cross_conv k·D, and per layer ffn_norm
 * 2D plus Mlp_small (D·r + r) + (r·D + D).
 */
export function sa2vpParamCount(s: { tokens: number; dim: number; depth: number; interDim: number; deepMaps: number }): number {
  const { tokens: T, dim: D, depth: L, interDim: r, deepMaps: k } = s;
  const lift = r * D + D;
  return T * r + lift + k * (T * r + lift) + k * D + L * (2 * D + (D * r + r) + lift);
}

/**
 * The additive local-attention mask [T, T] for a g×g grid plus CLS at index 0: row 0 (CLS query)
 * is all 0; patch query (r, c) gets 0 for patch keys within one row and column of (r, c) and
 * MASKED elsewhere, CLS key included (the official kv lists hold patches only).
 */
export function neighbourhoodMask(g: number): HostTensor {
  const T = g * g + 1;
  const data = new Float32Array(T * T);
  for (let q = 1; q < T; q++) {
    const [qr, qc] = [Math.floor((q - 1) / g), (q - 1) % g];
    for (let k = 0; k < T; k++) {
      const near = k > 0 && Math.abs(Math.floor((k - 1) / g) - qr) <= 1 && Math.abs(((k - 1) % g) - qc) <= 1;
      data[q * T + k] = near ? 0 : MASKED;
    }
  }
  return { shape: [T, T], data };
}

/** timm's trunc_normal_(std): N(0, std²) redrawn outside [−2, 2] (absolute bounds, so at std 0.02 it never triggers). */
function truncNormal(shape: number[], std: number, rng: Rng): HostTensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = std * normal(rng);
    while (Math.abs(v) > 2) v = std * normal(rng);
    data[i] = v;
  }
  return { shape, data };
}

const gaussian = (shape: number[], std: number, rng: Rng): HostTensor => {
  const n = shape.reduce((p, d) => p * d, 1);
  return { shape, data: Float32Array.from({ length: n }, () => std * normal(rng)) };
};

/** Linear(in→out) as the official `_init_weights`: Xavier-uniform weight [out, in], bias N(0, 1e-6²). */
function xavierLinear(m: Map<string, HostTensor>, name: string, inDim: number, outDim: number, rng: Rng): void {
  m.set(`${name}.weight`, uniform([outDim, inDim], Math.sqrt(6 / (inDim + outDim)), rng));
  m.set(`${name}.bias`, gaussian([outDim], 1e-6, rng));
}

export interface Sa2vpOutputs<T> { logits: T; logitsP: T | null }

/**
 * The dual-pathway forward. `needPrompt`: also return logits_p (training loss). Exporting logits
 * only, the last layer computes just what the base CLS needs: the prompt map's last update is
 * dead, and the base's last block and cross-block need only the CLS query row. (Training and
 * evaluation graphs keep the full last layer: the ort engine requires every trainable tensor to
 * be an input its graphs use, and a b2p last layer's cross-block would otherwise vanish.)
 */
export function sa2vpForward<T>(ctx: ForwardContext<T>, x: T, o: Sa2vpOptions, needPrompt: boolean): Sa2vpOutputs<T> {
  const { ops, cfg, w } = ctx;
  const L = cfg.depth;
  const D = cfg.embedDim;
  const g = gridOf(cfg);
  const T1 = g * g + 1;
  const b2p = new Set(b2pLayersOf(o, L));
  const deepLayers = deepLayersOf([...b2p]);
  const train = ctx.mode === 'train';
  const drop = (t: T) => (train && o.dropout > 0 ? ops.dropout(t, o.dropout) : t);
  const a = o.addScale;
  const lin = (t: T, name: string) => ops.linear(t, ctx.param(`${name}.weight`), ctx.param(`${name}.bias`));

  const ppt = ctx.param('ppt');
  if (ops.shape(ppt)[1] !== T1) throw new CompilerError('CHECKPOINT_MISMATCH', `sa2vp: ppt has ${String(ops.shape(ppt)[1])} slots, the ${cfg.name} token map has ${T1}`);
  const deepPpt = deepLayers.length > 0 ? ctx.param('deep_ppt') : null; // [k, 1, T, r]
  if (deepPpt && ops.shape(deepPpt)[0] !== deepLayers.length) {
    throw new CompilerError('CHECKPOINT_MISMATCH', `sa2vp: deep_ppt holds ${String(ops.shape(deepPpt)[0])} maps, b2p layers ${[...b2p].join(',')} need ${deepLayers.length}`);
  }
  const mask = ops.constant(neighbourhoodMask(g));

  let h = embed(ops, cfg, w, x, ctx.uint8Nhwc === true); // [B, T, D]
  // P₀ depends on weights only: [1, T, D], broadcast against the batch until it meets H (at
  // layer 0), so export folds it and Block₀(P₀). Training draws per-image dropout masks, as the
  // official expand-then-dropout does, so there it is expanded first.
  const p0 = ops.label(ops.add(lin(ppt, 'ppt_proj'), w.pos), 'sa2vp.prompt_map'); // a label names its shared-pack tensors
  let p = train && o.dropout > 0 ? drop(ops.expandBatch(p0, h)) : p0;

  for (let i = 0; i < L; i++) {
    const bw = w.blocks[i]!;
    const cw = (t: T) => crossMlp(ops, cfg, ctx, i, t, drop);
    const lastOnly = i === L - 1 && !needPrompt && ctx.mode === 'export'; // P's last update is never read
    if (b2p.has(i)) {
      if (!lastOnly) {
        const f = cw(crossAttention(ops, cfg, bw, h, p, mask, false, drop));
        p = ops.add(block(ops, cfg, bw, p), ops.scale(f, a));
        const j = deepLayers.indexOf(i);
        if (j >= 0) {
          const dp = ops.reshape(ops.slice(deepPpt!, 0, j, j + 1), [1, T1, -1]); // [1, T, r]
          const gate = ops.reshape(ops.slice(ctx.param('cross_conv'), 0, j, j + 1), [D]);
          p = ops.add(p, ops.mul(block(ops, cfg, bw, ops.label(lin(dp, `deep_proj.${j}`), `sa2vp.deep_prompt_map.${j}`)), gate));
        }
      }
      h = block(ops, cfg, bw, h, undefined, lastOnly);
    } else {
      const f = cw(crossAttention(ops, cfg, bw, p, h, mask, lastOnly, drop));
      if (!lastOnly) p = block(ops, cfg, bw, p);
      h = ops.add(block(ops, cfg, bw, h, undefined, lastOnly), ops.scale(f, a));
    }
  }
  const norm = (t: T) => ops.layerNorm(t, w.norm.w, w.norm.b, cfg.eps);
  return { logits: forwardHead(ops, cfg, w, norm(h)), logitsP: needPrompt ? forwardHead(ops, cfg, w, norm(p)) : null };
}

/**
 * u = q + drop(CA(LN1(kv), LN1(q))) with block i's frozen attention, per head: [1|B, Tq, D]
 * (Tq = 1 with `clsOnly`: just the CLS query row, which attends to every kv token unmasked).
 */
function crossAttention<T>(ops: Ops<T>, cfg: VitConfig, bw: BlockWeights<T>, kv: T, q: T, mask: T, clsOnly: boolean, drop: (t: T) => T): T {
  const D = cfg.embedDim;
  const H = cfg.numHeads;
  const dh = D / H;
  const T1 = ops.shape(kv)[1] as number;
  const Tq = clsOnly ? 1 : T1;
  const qIn = clsOnly ? ops.slice(q, 1, 0, 1) : q;
  const ln = (t: T) => ops.layerNorm(t, bw.norm1.w, bw.norm1.b, cfg.eps);
  // The packed qkv weight [3D, D] holds to_q, to_k, to_v in that order (timm layout).
  const [wq, wk, wv] = ops.split(bw.qkv.w, 0, [D, D, D]) as [T, T, T];
  const [bq, bk, bv] = ops.split(bw.qkv.b, 0, [D, D, D]) as [T, T, T];
  const heads = (t: T, n: number) => ops.transpose(ops.reshape(t, [0, n, H, dh]), [0, 2, 1, 3]); // [·, H, n, dh]
  const lkv = ln(kv);
  const qh = ops.scale(heads(ops.linear(ln(qIn), wq, bq), Tq), dh ** -0.5);
  const kh = heads(ops.linear(lkv, wk, bk), T1);
  const vh = heads(ops.linear(lkv, wv, bv), T1);
  let scores = ops.matMul(qh, ops.transpose(kh, [0, 1, 3, 2])); // [B, H, Tq, T]
  if (!clsOnly) scores = ops.add(scores, mask);
  const out = ops.matMul(ops.softmax(scores), vh); // [B, H, Tq, dh]
  const o = ops.linear(ops.reshape(ops.transpose(out, [0, 2, 1, 3]), [0, Tq, D]), bw.proj.w, bw.proj.b);
  return ops.add(qIn, drop(o));
}

/** Mlp_small(ffn_norm(u)): D→r, GELU, dropout, r→D, dropout. */
function crossMlp<T>(ops: Ops<T>, cfg: VitConfig, ctx: ForwardContext<T>, i: number, u: T, drop: (t: T) => T): T {
  const p = (n: string) => ctx.param(`cross_attn.${i}.${n}`);
  const z = ops.layerNorm(u, p('ffn_norm.weight'), p('ffn_norm.bias'), cfg.eps);
  return drop(ops.linear(drop(ops.gelu(ops.linear(z, p('ffn.fc1.weight'), p('ffn.fc1.bias')))), p('ffn.fc2.weight'), p('ffn.fc2.bias')));
}

export const sa2vp: PromptMethod<Sa2vpOptions> = {
  name: 'sa2vp',
  resolveOptions: (raw) => sa2vpOptions.parse({ interDim: 8, addScale: 0.1, dropout: 0.1, promptLossWeight: 0.2, ...raw }),
  optionsSchema: sa2vpOptions,
  init(ctx, o) {
    const { cfg } = ctx;
    const D = cfg.embedDim;
    const r = o.interDim;
    const T1 = gridOf(cfg) ** 2 + 1;
    const deep = deepLayersOf(b2pLayersOf(o, cfg.depth));
    const m = new Map<string, HostTensor>();
    m.set('ppt', truncNormal([1, T1, r], 0.02, ctx.rng));
    xavierLinear(m, 'ppt_proj', r, D, ctx.rng);
    if (deep.length > 0) {
      m.set('deep_ppt', truncNormal([deep.length, 1, T1, r], 0.02, ctx.rng));
      deep.forEach((_, j) => xavierLinear(m, `deep_proj.${j}`, r, D, ctx.rng));
      m.set('cross_conv', gaussian([deep.length, D], 0.02, ctx.rng));
    }
    for (let i = 0; i < cfg.depth; i++) {
      m.set(`cross_attn.${i}.ffn_norm.weight`, { shape: [D], data: new Float32Array(D).fill(1) });
      m.set(`cross_attn.${i}.ffn_norm.bias`, { shape: [D], data: new Float32Array(D) });
      xavierLinear(m, `cross_attn.${i}.ffn.fc1`, D, r, ctx.rng);
      xavierLinear(m, `cross_attn.${i}.ffn.fc2`, r, D, ctx.rng);
    }
    // Head trunc_normal(0.02), bias 0 (the ±2 truncation is moot at this std).
    for (const [k, t] of headInit(ctx, 0.02)) m.set(k, t);
    return m;
  },
  trainsBackbone: () => false,
  forward: (ctx, x, o) => sa2vpForward(ctx, x, o, false).logits,
  loss(ctx, x, o) {
    const { ops } = ctx;
    const { logits, logitsP } = sa2vpForward(ctx, x, o, true);
    const ce = (z: typeof logits) => softmaxCrossEntropy(ops, z, ctx.targets);
    return { loss: ops.add(ops.scale(ce(logits), 1 - o.promptLossWeight), ops.scale(ce(logitsP!), o.promptLossWeight)), logits };
  },
  // BEiT optim_factory: no weight decay on 1-D tensors (LN, cross_conv rows are 2-D) or biases.
  decays: (n) => !(n.endsWith('.bias') || n.endsWith('ffn_norm.weight')),
  recipe: () => adamwRecipe({ lr: 1e-3, weightDecay: 1e-4, batchSize: 64 }),
};
