/**
 * VPT: Visual Prompt Tuning (Jia et al., ECCV 2022), official semantics (KMnP/vpt 4410440,
 * docs/spec/vpt.md):
 * - N prompt tokens inserted after CLS with no position embedding: [CLS, P (N), patches];
 * - deep: before block i ≥ 1 the previous layer's prompt outputs are dropped and replaced by
 *   fresh P_i (replaced, not accumulated);
 * - prompt dropout on the inserted tokens (0.1 deep, 0 shallow); backbone in eval mode;
 * - init U(−v, v), v = sqrt(6 / (3·p² + D)) (Xavier for a patch-projection output), the same
 *   for deep prompts; head kaiming fan_out (std sqrt(2/C)), bias 0 (the official head starts at
 *   −log 99 for every class, a shift softmax cross-entropy cannot see; docs/spec/vpt.md#init);
 * - SGD momentum 0.9, lr scaled by batch/256, wd on everything but the head bias, warmup then
 *   cosine stepped per epoch.
 */
import { z } from 'zod';
import type { ForwardContext, PromptMethod } from './method.ts';
import { headInit, uniform } from './method.ts';
import { forwardFeatures, forwardHead, insertTokens, prefixKV, type VitHooks } from '../backbones/vit.ts';

const vptOptions = z.strictObject({
  prompts: z.number().int().positive().describe('prompt tokens per layer (N)'),
  deep: z.boolean().describe('a fresh set of prompts before every block'),
  dropout: z.number().min(0).max(1).describe('dropout on inserted prompt tokens while training'),
  depth: z.number().int().positive().optional().describe('deep prompts in the first `depth` blocks only (default: all)'),
});
export type VptOptions = z.infer<typeof vptOptions>;

/** VPT's prompt init bound sqrt(6 / (3·p² + D)) (Xavier for a patch-projection output); DAPT uses it too. */
export const vptBound = (p: number, D: number): number => Math.sqrt(6 / (3 * p * p + D));

/**
 * VPT's forward, shared with the methods that only change VPT's init or recipe (SPT): prompts
 * `prompt_embeddings` [1, N, D] after CLS, and for deep prompts `deep_prompt_embeddings`
 * [L' − 1, N, D] replacing them before blocks 1..L' − 1. In 'export' mode full-depth deep
 * prompts become per-layer constant prefix K/V (the fused form). `run` takes the trunk's hooks and
 * returns logits: the ViT with its linear head by default, CLIP's image tower and text head for
 * clip-vpt-shallow and DAPT (clip-vpt.ts, dapt.ts).
 */
export function vptForward<T>(ctx: ForwardContext<T>, x: T, o: Pick<VptOptions, 'prompts' | 'deep' | 'dropout'>, run?: (hooks: VitHooks<T>) => T): T {
  const { ops } = ctx;
  const head = run ?? ((hooks: VitHooks<T>) => forwardHead(ops, ctx.cfg, ctx.w, forwardFeatures(ops, ctx.cfg, ctx.w, x, hooks)));
  const N = o.prompts;
  const L = ctx.cfg.depth;
  const deepP0 = o.deep && L > 1 ? ctx.param('deep_prompt_embeddings') : null;
  if (ctx.mode === 'export' && deepP0 && (ops.shape(deepP0)[0] as number) === L - 1) {
    // Fused deep VPT: the prompts entering every block are constants and their outputs are
    // discarded at the next block (or never read after the last), so each block only needs
    // their keys/values: per-layer constant prefix K/V. No prompt rows remain in the graph.
    const P = (i: number) => (i === 0 ? ctx.param('prompt_embeddings') : ops.slice(deepP0, 0, i - 1, i));
    const kv = ctx.w.blocks.map((bw, i) => {
      const { k, v } = prefixKV(ops, ctx.cfg, bw, P(i));
      return { k: ops.label(k, `blocks.${i}.attn.prompt_k`), v: ops.label(v, `blocks.${i}.attn.prompt_v`) };
    });
    return head({ prefix: (i) => kv[i], clsOnlyLastBlock: true, ...(ctx.uint8Nhwc ? { uint8Nhwc: true } : {}) });
  }
  // Shallow, partial-depth deep, training and evaluation: prompts run as tokens. (Shallow
  // prompts feed later layers through their block-0 outputs, which depend on the image,
  // so only their block-0 keys/values are constant; they stay tokens.)
  const drop = <T>(t: T) => (ctx.mode === 'train' ? ctx.ops.dropout(t as never, o.dropout) : t);
  const p0 = drop(ctx.param('prompt_embeddings'));
  const deepP = o.deep && ctx.cfg.depth > 1 ? ctx.param('deep_prompt_embeddings') : null;
  const layers = deepP ? (ops.shape(deepP)[0] as number) + 1 : 1;
  return head({
    afterEmbed: (h) => insertTokens(ops, h, p0),
    beforeBlock: deepP
      ? (i, h) => {
          if (i >= layers) return h;
          const T = ops.shape(h)[1] as number;
          // [CLS | P_i | patches]: the previous prompts' outputs are discarded.
          const pi = drop(ops.slice(deepP, 0, i - 1, i)); // [1, N, D]
          return ops.concat([ops.slice(h, 1, 0, 1), ops.expandBatch(pi, h), ops.slice(h, 1, 1 + N, T)], 1);
        }
      : undefined,
    clsOnlyLastBlock: true,
    ...(ctx.uint8Nhwc ? { uint8Nhwc: true } : {}),
  });
}

function make(name: 'vpt-shallow' | 'vpt-deep'): PromptMethod<VptOptions> {
  const deep = name === 'vpt-deep';
  return {
    name,
    resolveOptions: (raw) => vptOptions.parse({ prompts: 10, deep, dropout: deep ? 0.1 : 0, ...raw }),
    optionsSchema: vptOptions,
    init(ctx, o) {
      const D = ctx.cfg.embedDim;
      const v = vptBound(ctx.cfg.patchSize, D);
      const m = new Map([['prompt_embeddings', uniform([1, o.prompts, D], v, ctx.rng)]]);
      const layers = Math.min(o.depth ?? ctx.cfg.depth, ctx.cfg.depth);
      if (o.deep && layers > 1) m.set('deep_prompt_embeddings', uniform([layers - 1, o.prompts, D], v, ctx.rng));
      for (const [k, t] of headInit(ctx, Math.sqrt(2 / ctx.numClasses))) m.set(k, t);
      return m;
    },
    trainsBackbone: () => false,
    forward: vptForward,
    decays: (n) => n !== 'head.bias',
    recipe: () => ({
      optimizer: { kind: 'sgd', lr: 0.5, scaleLrByBatch: true, momentum: 0.9, weightDecay: 1e-4, betas: [0.9, 0.999] },
      epochs: 100,
      warmupEpochs: 10,
      batchSize: 64,
      schedulePer: 'epoch',
      labelSmoothing: 0,
      augment: { randomResizedCrop: false, hflip: false },
    }),
  };
}

export const vptShallow = make('vpt-shallow');
export const vptDeep = make('vpt-deep');
