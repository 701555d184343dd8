/**
 * VP: pixel padding prompts (Bahng et al. 2022, `PadPrompter`; docs/spec/vp.md) on a ViT with a
 * linear head, in two variants:
 * - `vp-inner` (official VP): a learnable frame of width p added to the border of the
 *   normalised image the backbone sees, x' = x + P, P zero in the (S−2p)² centre;
 * - `vp-outer` (EVP-style, the prompt outside the image; docs/spec/vp.md "Forward"): the
 *   image is first shrunk to (S−2p)² and centred on a zero canvas, so the frame never covers
 *   content: x' = M·x·Mᵀ + P. M [S, S] is the shrink as a constant linear map: rows p..S−p−1
 *   hold the bilinear resize S → S−2p, the frame rows are zero. Shrinking commutes with the
 *   per-channel normalisation (every resize row sums to 1), so it may run on normalised input.
 *
 * Parameters (timm-style names of the official module): `pad_up`, `pad_down` [1, 3, p, S] and
 * `pad_left`, `pad_right` [1, 3, S−2p, p], 3·(S² − (S−2p)²) values (69,840 at 224, p 30), plus
 * the head. p defaults to round(30·S/224), at least 1 (VP's 30 px at 224; 4 at 32).
 *
 * Resize convention (outer): bilinear, half-pixel centres (align_corners=False). With
 * `antialias` (default) the taps are PIL's/torch's antialiased triangle filter widened by the
 * downscale factor (torch `F.interpolate(mode='bilinear', align_corners=False, antialias=True)`,
 * PIL `Image.BILINEAR`); without, torch's plain two-tap bilinear. EVP itself resizes bicubically
 * (a departure, docs/spec/vp.md).
 * tools/reference/method_vp.py checks both against torch.
 *
 * Export (`mode === 'export'`): the patch embedding is linear, so
 * patchEmbed(x + P) = patchEmbed(x) + conv(P) without bias, a constant [1, G², D] folded into
 * pos_embed: the fused inner model IS the bare backbone with another position embedding. Outer
 * keeps its two small shrink MatMuls, run on the raw uint8→float input with the normalisation
 * folded into the patch projection; the zero frame of the raw shrink is (0 − μ)/σ after that
 * normalisation where training had 0, so P + (μ/σ)·frame is what folds into pos_embed.
 */
import { z } from 'zod';
import type { ForwardContext, InitContext, PromptMethod, Recipe } from './method.ts';
import { normal } from '../../devices/rng.ts';
import { headInit } from './method.ts';
import { forward as vitForward, patchEmbed, type Affine, type VitHooks, type VitWeights } from '../backbones/vit.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { CompilerError } from '../ops/errors.ts';

const common = {
  padSize: z.number().int().positive().optional().describe('frame width in pixels (default round(30·S/224), at least 1)'),
  init: z.enum(['normal', 'zeros', 'black']).describe("'normal': N(0, 1) in normalised-pixel units (VP's torch.randn); 'zeros'; 'black': the normalised value of a black pixel, (0 − μ)/σ (EVP's zero padding with a zero-initialised δ)"),
};
const vpInnerOptions = z.strictObject(common);
const vpOuterOptions = z.strictObject({ ...common, antialias: z.boolean().describe('antialiased bilinear shrink (PIL, torch antialias=True); false: plain two-tap bilinear') });
export type VpOptions = z.infer<typeof vpInnerOptions> & { antialias?: boolean };

export const PAD_NAMES = ['pad_up', 'pad_down', 'pad_left', 'pad_right'] as const;

/** Frame width for an input side: the option, else VP's 30 px at 224 scaled to S. */
export function padOf(method: string, cfg: Pick<VitConfig, 'imgSize'>, o: VpOptions): number {
  const S = cfg.imgSize;
  const p = o.padSize ?? Math.max(1, Math.round((30 * S) / 224));
  if (2 * p >= S) throw new CompilerError('CONFIG_INVALID', `${method}: method.options.padSize ${p} leaves no image inside a ${S}×${S} input; use at most ${Math.ceil(S / 2) - 1}`);
  return p;
}

/** Shapes of the four strips for side S and width p. */
function padShapes(S: number, p: number): Record<(typeof PAD_NAMES)[number], number[]> {
  return { pad_up: [1, 3, p, S], pad_down: [1, 3, p, S], pad_left: [1, 3, S - 2 * p, p], pad_right: [1, 3, S - 2 * p, p] };
}

/**
 * Row weights [outLen, inLen] of a 1-D bilinear resize with half-pixel centres. Antialiased
 * (PIL's algorithm, which torch's antialias=True follows): support = max(1, scale), centre
 * scale·(i + ½), taps j with weight tent((j − centre + ½)/max(1, scale)), normalised to sum 1.
 * Plain: source scale·(i + ½) − ½ clamped at 0, taps floor and floor + 1 (clamped at the end).
 */
export function resizeWeights(outLen: number, inLen: number, antialias: boolean): Float32Array {
  const m = new Float64Array(outLen * inLen);
  const scale = inLen / outLen;
  for (let i = 0; i < outLen; i++) {
    const row = i * inLen;
    if (antialias) {
      const support = scale >= 1 ? scale : 1;
      const inv = scale >= 1 ? 1 / scale : 1;
      const centre = scale * (i + 0.5);
      const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
      const hi = Math.min(Math.trunc(centre + support + 0.5), inLen);
      let total = 0;
      for (let j = lo; j < hi; j++) {
        const w = Math.max(0, 1 - Math.abs((j - centre + 0.5) * inv));
        m[row + j] = w;
        total += w;
      }
      for (let j = lo; j < hi; j++) m[row + j]! /= total;
    } else {
      const src = Math.max(0, scale * (i + 0.5) - 0.5);
      const j0 = Math.min(Math.floor(src), inLen - 1);
      const j1 = Math.min(j0 + 1, inLen - 1);
      const l = src - j0;
      m[row + j0]! += 1 - l;
      m[row + j1]! += l;
    }
  }
  return Float32Array.from(m);
}

/** The outer shrink-and-centre map M [S, S]: frame rows zero, rows p..S−p−1 resize S → S−2p. */
export function shrinkMatrix(S: number, p: number, antialias: boolean): HostTensor {
  const inner = resizeWeights(S - 2 * p, S, antialias);
  const data = new Float32Array(S * S);
  data.set(inner, p * S);
  return { shape: [S, S], data };
}

/**
 * P [1, 3, S, S] from the four strips (up, down, left, right): `PadPrompter`'s
 * cat([left, 0, right], W) then cat([up, ·, down], H). Shapes are checked against S and p.
 */
export function padFrame<T>(ops: Ops<T>, strips: readonly T[], S: number, p: number): T {
  const s = S - 2 * p;
  const shapes = padShapes(S, p);
  PAD_NAMES.forEach((n, i) => {
    const got = ops.shape(strips[i]!);
    if (got.join() !== shapes[n].join()) throw new CompilerError('BAD_SHAPE', `${n} is [${got.join(', ')}] but a ${S}×${S} input with padSize ${p} needs [${shapes[n].join(', ')}]`);
  });
  const [up, down, left, right] = strips as [T, T, T, T];
  const centre = ops.constant({ shape: [1, 3, s, s], data: new Float32Array(3 * s * s) });
  return ops.concat([up, ops.concat([left, centre, right], 3), down], 2);
}

/** 1 on the frame, 0 inside, scaled per channel: [1, 3, S, S]. */
function frameConst(S: number, p: number, perChannel: readonly number[]): HostTensor {
  const data = new Float32Array(3 * S * S);
  for (let c = 0; c < 3; c++)
    for (let h = 0; h < S; h++)
      for (let w = 0; w < S; w++) if (h < p || h >= S - p || w < p || w >= S - p) data[(c * S + h) * S + w] = perChannel[c]!;
  return { shape: [1, 3, S, S], data };
}

/** M·x·Mᵀ over the two spatial axes: [B, C, S, S] (or [B, S, S, C] with `nhwc`) → [B, C, S, S]. */
export function shrinkImage<T>(ops: Ops<T>, x: T, m: HostTensor, nhwc: boolean): T {
  const M = ops.label(ops.constant(m), 'vp.shrink'); // [S_out, S_in]: `linear` contracts the last axis
  // NCHW: resize W, swap to [B,C,W',H], resize H, swap back. NHWC: the first swap goes straight
  // to [B,C,W,H], so the layout change costs no extra pass and the result is NCHW.
  if (nhwc) return ops.linear(ops.transpose(ops.linear(ops.transpose(x, [0, 3, 2, 1]), M), [0, 1, 3, 2]), M);
  return ops.transpose(ops.linear(ops.transpose(ops.linear(x, M), [0, 1, 3, 2]), M), [0, 1, 3, 2]);
}

/** uint8 [B, H, W, 3] → normalised float [B, 3, H, W], spelled out (the unfused 'naive' export). */
function normalisedNchw<T>(ops: Ops<T>, cfg: VitConfig, x: T): T {
  const scale = ops.constant({ shape: [1, 3, 1, 1], data: Float32Array.from(cfg.std, (s) => 1 / (255 * s)) });
  const shift = ops.constant({ shape: [1, 3, 1, 1], data: Float32Array.from(cfg.mean, (m, c) => m / cfg.std[c]!) });
  return ops.sub(ops.mul(ops.transpose(ops.toFloat(x), [0, 3, 1, 2]), scale), shift);
}

/** pos_embed + [0; conv(P) without bias]: a pixel prompt seen through the linear patch embedding. */
function promptInPos<T>(ops: Ops<T>, cfg: VitConfig, w: VitWeights<T>, P: T): T {
  const D = cfg.embedDim;
  const zero = ops.constant({ shape: [D], data: new Float32Array(D) });
  const tokens = patchEmbed(ops, cfg, { ...w, patch: { w: w.patch.w, b: zero } }, P); // [1, G², D]
  const cls = ops.constant({ shape: [1, 1, D], data: new Float32Array(D) });
  return ops.label(ops.add(w.pos, ops.concat([cls, tokens], 1)), 'vp.pos_embed');
}

/** The patch projection for raw 0..255 NCHW pixels: W/(255σ_c) and b − Σ W·μ_c/σ_c. */
function rawPixelPatch<T>(ops: Ops<T>, cfg: VitConfig, patch: VitWeights<T>['patch']): Affine<T> {
  const pp = cfg.patchSize * cfg.patchSize;
  const cols = cfg.inChans * pp;
  const scale = Float32Array.from({ length: cols }, (_, i) => 1 / (255 * cfg.std[Math.floor(i / pp)]!));
  const shift = Float32Array.from({ length: cols }, (_, i) => cfg.mean[Math.floor(i / pp)]! / cfg.std[Math.floor(i / pp)]!);
  const meanTerm = ops.reduceSum(ops.mul(patch.w, ops.constant({ shape: [cols], data: shift })), [1], false); // [D]
  return {
    w: ops.mul(patch.w, ops.constant({ shape: [cols], data: scale })),
    b: patch.b ? ops.sub(patch.b, meanTerm) : ops.scale(meanTerm, -1), // CLIP's conv has no bias
  };
}

const shrinkCache = new Map<string, HostTensor>();
function cachedShrink(S: number, p: number, antialias: boolean): HostTensor {
  const key = `${S},${p},${antialias}`;
  let m = shrinkCache.get(key);
  if (!m) shrinkCache.set(key, (m = shrinkMatrix(S, p, antialias)));
  return m;
}

/**
 * AdamW lr 0.3, not the official CLIP recipe (SGD lr 40, which assumes CLIP's logit scale and
 * 1000 epochs). On Fashion-MNIST 5–9 with 8 epochs, 3 seeds (`npm run bench:methods`,
 * docs/bench/methods-fmnist04.md, the first backbone): lr 1e-2 gave inner 56.4 / outer 53.8 % (below linear's 65.1); lr 0.3
 * gives inner 73.0, outer 74.6 with the black-frame init and 68.5 with N(0, 1). A pixel prompt
 * is a few thousand values read through one patch projection, so it wants large steps.
 */
const RECIPE: Recipe = {
  optimizer: { kind: 'adamw', lr: 0.3, scaleLrByBatch: false, momentum: 0.9, weightDecay: 0, betas: [0.9, 0.999] },
  epochs: 30,
  warmupEpochs: 1,
  batchSize: 64,
  schedulePer: 'step',
  labelSmoothing: 0,
  augment: { randomResizedCrop: false, hflip: false },
};

/** Runs the (prompted) tower: the ViT with its head, or CLIP's image tower with the text head (clip-vp.ts). */
export type VpRun<T> = (w: VitWeights<T>, x: T, hooks: VitHooks<T>) => T;

/**
 * VP's forward with the tower left to `run`: builds the frame P from the four strips and feeds
 * x + P (inner) or shrink(x) + P (outer), or in 'export' mode the folded forms described above.
 * Every `run` call states `uint8Nhwc` explicitly: some export branches convert the input first.
 */
export function vpForward<T>(ctx: ForwardContext<T>, x: T, o: VpOptions, name: string, outer: boolean, run: VpRun<T>): T {
  const { ops, cfg } = ctx;
  const S = cfg.imgSize;
  const p = padOf(name, cfg, o);
  const M = outer ? cachedShrink(S, p, o.antialias !== false) : null;
  const P = padFrame(ops, PAD_NAMES.map((n) => ctx.param(n)), S, p);
  const hooks = { clsOnlyLastBlock: true, uint8Nhwc: false };
  if (ctx.mode === 'export') {
    if (!M) return run({ ...ctx.w, pos: promptInPos(ops, cfg, ctx.w, P) }, x, { ...hooks, uint8Nhwc: ctx.uint8Nhwc === true });
    if (!ctx.uint8Nhwc) return run({ ...ctx.w, pos: promptInPos(ops, cfg, ctx.w, P) }, shrinkImage(ops, x, M, false), hooks);
    // Raw pixels shrunk (frame 0), normalisation in the patch projection, P + (μ/σ)·frame in pos_embed.
    const fix = ops.constant(frameConst(S, p, cfg.mean.map((m, c) => m / cfg.std[c]!)));
    const w: VitWeights<T> = { ...ctx.w, pos: promptInPos(ops, cfg, ctx.w, ops.add(P, fix)), patch: rawPixelPatch(ops, cfg, ctx.w.patch) };
    return run(w, shrinkImage(ops, ops.toFloat(x), M, true), hooks);
  }
  const xn = ctx.uint8Nhwc ? normalisedNchw(ops, cfg, x) : x; // [B, 3, S, S] normalised
  return run(ctx.w, ops.add(M ? shrinkImage(ops, xn, M, false) : xn, P), hooks);
}

/** The four strips, initialised as `o.init` says ('black' is the normalised value of a black pixel). */
export function vpInit(ctx: InitContext, o: VpOptions, name: string): Map<string, HostTensor> {
  const S = ctx.cfg.imgSize;
  const m = new Map<string, HostTensor>();
  for (const [n, shape] of Object.entries(padShapes(S, padOf(name, ctx.cfg, o)))) {
    const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
    const plane = data.length / 3;
    for (let i = 0; i < data.length; i++) {
      const c = Math.floor(i / plane);
      data[i] = o.init === 'normal' ? normal(ctx.rng) : o.init === 'black' ? -ctx.cfg.mean[c]! / ctx.cfg.std[c]! : 0;
    }
    m.set(n, { shape, data });
  }
  return m;
}

/** Inner keeps VP's N(0, 1) frame; outer starts from EVP's black border (zero padding, δ = 0). */
export function vpResolveOptions(outer: boolean, raw: Partial<VpOptions>): VpOptions {
  return outer ? vpOuterOptions.parse({ init: 'black', antialias: true, ...raw }) : vpInnerOptions.parse({ init: 'normal', ...raw });
}

function make(name: 'vp-inner' | 'vp-outer'): PromptMethod<VpOptions> {
  const outer = name === 'vp-outer';
  return {
    name,
    // Outer's black start: at step 0 the model sees the shrunk image on black, not noise around it (+6 pt here).
    resolveOptions: (raw) => vpResolveOptions(outer, raw),
    optionsSchema: outer ? vpOuterOptions : vpInnerOptions,
    init(ctx, o) {
      const m = vpInit(ctx, o, name);
      for (const [k, t] of headInit(ctx, Math.sqrt(2 / ctx.numClasses))) m.set(k, t);
      return m;
    },
    trainsBackbone: () => false,
    forward: <T>(ctx: ForwardContext<T>, x: T, o: VpOptions): T => vpForward(ctx, x, o, name, outer, (w, xi, hooks) => vitForward(ctx.ops, ctx.cfg, w, xi, hooks)),
    decays: (n) => n !== 'head.bias',
    recipe: () => RECIPE,
  };
}

export const vpInner = make('vp-inner');
export const vpOuter = make('vp-outer');
