/**
 * SPT: Self-Prompt Tuning ("Revisiting the Power of Prompt for Visual Tuning", Wang et al.,
 * ICML 2024; docs/spec/spt.md). The architecture, forward and fused export are VPT's
 * (`vptForward`, without prompt dropout); only the initialisation and the recipe differ.
 *
 * Init (docs/spec/spt.md#init-the-method): `sampleSize` training images drawn with replacement
 * (training transforms) run once through the frozen, prompt-free backbone. Layer 0's tokens are the
 * patch-embedding outputs (before CLS and position embedding); layer i ≥ 1's are the input of block
 * i with CLS removed. Per layer, from its tokens X [B, T, D]:
 * - `random`: N of the B·T token rows, uniformly without replacement;
 * - `mean` / `max`: each image's raster-ordered tokens pooled in N − 1 windows of
 *   w = ⌊T/(N−1)⌋ tokens plus a last window of the T − (N−1)·w remaining ones, then N of the
 *   pooled vectors kept at random. When nothing remains (T divisible into N − 1 windows of w)
 *   an image yields N − 1 vectors: an empty window has no mean or max. N = 1 pools the whole image.
 * - `kmeans` (the paper's prototypes; absent from the official code): N centres of all B·T
 *   token rows, Euclidean, seeded k-means++ then Lloyd iterations (`euclideanKmeans`, kmeans.ts).
 * The head is timm's trunc_normal(std 0.02) (truncated at ±2 absolute, i.e. plainly normal), bias 0.
 *
 * Recipe (docs/spec/spt.md#recipe): AdamW; prompts decay by the recipe's weight decay (1e-2),
 * head.weight by `headWeightDecay` (the official `wd_head`), head.bias not at all; warmup then
 * cosine per step.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Rng } from '../../devices/rng.ts';
import type { InitContext, PromptMethod } from './method.ts';
import { adamwRecipe, headInit } from './method.ts';
import { euclideanKmeans } from './kmeans.ts';
import { vptForward } from './vpt.ts';
import { bindVit, forwardFeatures, patchEmbed } from '../backbones/vit.ts';
import { gridOf, type VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { TfOps } from '../ops/tf-ops.ts';
import { CompilerError } from '../ops/errors.ts';

const SPT_INITS = ['random', 'mean', 'max', 'kmeans'] as const;

const sptOptions = z.strictObject({
  prompts: z.number().int().positive().describe('prompt tokens per layer (N)'),
  deep: z.boolean().describe('a fresh set of prompts before every block'),
  depth: z.number().int().positive().optional().describe('deep prompts in the first `depth` blocks only (default: all)'),
  init: z.enum(SPT_INITS).describe('how prompts are built from the sampled tokens of their layer'),
  sampleSize: z.number().int().positive().describe('training images drawn with replacement for the init (official: the train-set size)'),
  headWeightDecay: z.number().min(0).describe('AdamW weight decay of head.weight (official wd_head)'),
  kmeansIterations: z.number().int().positive().describe('k-means: at most this many Lloyd iterations'),
  kmeansTolerance: z.number().min(0).describe('k-means: stop when no centre moves more than this × the RMS token norm'),
});
export type SptOptions = z.infer<typeof sptOptions>;

/** Keeps SPT's image draw apart from other methods' samples (it is seeded by (seed, stream)). */
const SPT_STREAM = 0x737074; // 'spt'
/** Images per capture forward: bounds tfjs memory for large samples. */
const CAPTURE_BATCH = 64;

/**
 * Tokens of the first `layers` prompt layers for images x [B, 3, S, S]: [B·T, D] each, rows in
 * (image, raster token) order. Layer 0 is patch_embed's output (no CLS, no position embedding);
 * layer i ≥ 1 is the input of block i without CLS (the official RepCatcher hooks).
 */
export function captureLayerTokens(cfg: VitConfig, backbone: StateDict, x: HostTensor, layers: number): Float32Array[] {
  const [B, C, S, S2] = x.shape as [number, number, number, number];
  const T = gridOf(cfg) ** 2;
  const D = cfg.embedDim;
  const L = Math.min(layers, cfg.depth);
  const out = Array.from({ length: L }, () => new Float32Array(B * T * D));
  const ops = new TfOps();
  try {
    const w = bindVit(ops, cfg, backbone);
    // Blocks past the last captured input are never needed.
    const trunk = { ...w, blocks: w.blocks.slice(0, L) };
    const per = C * S * S2;
    for (let b0 = 0; b0 < B; b0 += CAPTURE_BATCH) {
      const n = Math.min(CAPTURE_BATCH, B - b0);
      tf.tidy(() => {
        const xb = tf.tensor(x.data.subarray(b0 * per, (b0 + n) * per), [n, C, S, S2]);
        const taken: tf.Tensor[] = [patchEmbed(ops, cfg, w, xb)]; // [n, T, D]
        if (L > 1) {
          forwardFeatures(ops, cfg, trunk, xb, {
            beforeBlock: (i, h) => {
              taken[i] = ops.slice(h, 1, 1, 1 + T); // [n, T, D], CLS dropped
              return h;
            },
            clsOnlyLastBlock: true,
          });
        }
        taken.forEach((t, i) => out[i]!.set(t.dataSync() as Float32Array, b0 * T * D));
      });
    }
  } finally {
    ops.dispose();
  }
  return out;
}

/** `n` distinct indices of [0, rows) uniformly (a partial Fisher–Yates shuffle). */
function pickRows(rows: number, n: number, rng: Rng): number[] {
  if (n > rows) throw new CompilerError('CONFIG_INVALID', `spt: cannot pick ${n} prompts from ${rows} candidate vectors; raise method.options.sampleSize or lower prompts`);
  const idx = Array.from({ length: rows }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rng() * (rows - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, n);
}

/** The pooling windows [start, end) over T raster tokens for N prompts (see the file comment). */
export function poolWindows(T: number, N: number): [number, number][] {
  if (N === 1) return [[0, T]];
  const w = Math.floor(T / (N - 1));
  if (w === 0) throw new CompilerError('CONFIG_INVALID', `spt: ${N} prompts need N − 1 = ${N - 1} pooling windows but a layer has only ${T} tokens; use prompts ≤ ${T + 1} or init random/kmeans`);
  const wins: [number, number][] = Array.from({ length: N - 1 }, (_, k) => [k * w, (k + 1) * w]);
  if ((N - 1) * w < T) wins.push([(N - 1) * w, T]);
  return wins;
}

/** Window means or maxima of tokens X [B·T, D]: [B·windows, D], rows in (image, window) order. */
export function poolTokens(X: Float32Array, B: number, T: number, D: number, N: number, kind: 'mean' | 'max'): Float32Array {
  const wins = poolWindows(T, N);
  const out = new Float32Array(B * wins.length * D);
  for (let b = 0; b < B; b++)
    wins.forEach(([s, e], k) => {
      const o = (b * wins.length + k) * D;
      for (let d = 0; d < D; d++) {
        let acc = kind === 'mean' ? 0 : -Infinity;
        for (let t = s; t < e; t++) {
          const v = X[(b * T + t) * D + d]!;
          acc = kind === 'mean' ? acc + v : Math.max(acc, v);
        }
        out[o + d] = kind === 'mean' ? acc / (e - s) : acc;
      }
    });
  return out;
}

function gatherRows(X: Float32Array, D: number, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * D);
  rows.forEach((r, i) => out.set(X.subarray(r * D, (r + 1) * D), i * D));
  return out;
}

/** N prompt vectors [N, D] from one layer's tokens X [B·T, D] by the chosen construction. */
export function prototypes(X: Float32Array, B: number, T: number, D: number, N: number, o: SptOptions, rng: Rng): Float32Array {
  switch (o.init) {
    case 'random':
      return gatherRows(X, D, pickRows(B * T, N, rng));
    case 'mean':
    case 'max': {
      const pooled = poolTokens(X, B, T, D, N, o.init);
      return gatherRows(pooled, D, pickRows(pooled.length / D, N, rng));
    }
    case 'kmeans':
      if (N > B * T) throw new CompilerError('CONFIG_INVALID', `spt: k-means needs at least ${N} tokens, got ${B * T}; raise method.options.sampleSize`);
      return euclideanKmeans(X, D, N, { iterations: o.kmeansIterations, tol: o.kmeansTolerance, rng }).centres;
  }
}

function make(name: 'spt-shallow' | 'spt-deep'): PromptMethod<SptOptions> {
  const deep = name === 'spt-deep';
  return {
    name,
    optionsSchema: sptOptions,
    resolveOptions: (raw) =>
      sptOptions.parse({ prompts: 10, deep, init: 'random', sampleSize: 256, headWeightDecay: 0.5, kmeansIterations: 100, kmeansTolerance: 1e-6, ...raw }),
    async init(ctx: InitContext, o) {
      if (!ctx.sample) throw new CompilerError('INTERNAL', `${name}: the init builds prompts from training images, but this context has none (InitContext.sample); run it from a training job`);
      const D = ctx.cfg.embedDim;
      const T = gridOf(ctx.cfg) ** 2;
      const N = o.prompts;
      const layers = o.deep ? Math.min(o.depth ?? ctx.cfg.depth, ctx.cfg.depth) : 1;
      const { x } = await ctx.sample({ count: o.sampleSize, stream: SPT_STREAM });
      const B = x.shape[0]!;
      const tokens = captureLayerTokens(ctx.cfg, ctx.backbone, x, layers);
      const P = tokens.map((X) => prototypes(X, B, T, D, N, o, ctx.rng));
      const m = new Map<string, HostTensor>([['prompt_embeddings', { shape: [1, N, D], data: P[0]! }]]);
      if (layers > 1) {
        const deepP = new Float32Array((layers - 1) * N * D);
        P.slice(1).forEach((p, i) => deepP.set(p, i * N * D));
        m.set('deep_prompt_embeddings', { shape: [layers - 1, N, D], data: deepP });
      }
      // timm trunc_normal_(std=.02) truncates at ±2 absolute (100 σ): a plain normal.
      for (const [k, t] of headInit(ctx, 0.02)) m.set(k, t);
      return m;
    },
    trainsBackbone: () => false,
    // No prompt dropout in SPT (docs/spec/spt.md#forward-and-loss).
    forward: (ctx, x, o) => vptForward(ctx, x, { prompts: o.prompts, deep: o.deep, dropout: 0 }),
    decays: (n) => n !== 'head.bias',
    weightDecayFor: (n, o) => (n === 'head.weight' ? o.headWeightDecay : undefined),
    // lr: the README's supervised example is 1e-3; on our micro ViT (Fashion-MNIST 5–9, 8 epochs,
    // batch 32) a sweep of 1e-3 / 1e-2 / 3e-2 gave 53 / 68 / 71 % top-1 (seed 0, random init).
    recipe: () => adamwRecipe({ lr: 3e-2, weightDecay: 1e-2, batchSize: 32 }),
  };
}

export const sptShallow = make('spt-shallow');
export const sptDeep = make('spt-deep');
