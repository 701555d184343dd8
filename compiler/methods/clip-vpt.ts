/**
 * VPT-shallow on CLIP's image tower (the visual half of DAPT without its losses; docs/spec/dapt.md):
 * N prompt tokens after CLS, inserted after `ln_pre` with no position embedding, evolving through
 * every block (vpt.ts), classified by the fixed zero-shot text head. Shallow prompts are
 * image-dependent after block 0, so they run as tokens in the export too.
 *
 * Init: VPT's U(−v, v), v = sqrt(6 / (3·p² + D)). Recipe: DAPT's (Dassl SGD, wd 5e-4, constant
 * warmup, cosine per epoch) at lr 2 (DAPT's ImageNet lr).
 */
import { z } from 'zod';
import type { ForwardContext, PromptMethod } from './method.ts';
import { uniform } from './method.ts';
import { vptBound, vptForward } from './vpt.ts';
import { clipHeadLogits, clipImageEmbedding, dasslRecipe, requireClipTask } from './clip-common.ts';

export const clipVptOptions = z.strictObject({
  prompts: z.number().int().positive().describe('prompt tokens after CLS (N)'),
  dropout: z.number().min(0).lt(1).describe('dropout on the prompts while training'),
});
export type ClipVptOptions = z.infer<typeof clipVptOptions>;

export const clipVptShallow: PromptMethod<ClipVptOptions> = {
  name: 'clip-vpt-shallow',
  requiresClip: true,
  resolveOptions: (raw) => clipVptOptions.parse({ prompts: 16, dropout: 0, ...raw }),
  init(ctx, o) {
    requireClipTask(ctx, 'clip-vpt-shallow');
    const D = ctx.cfg.embedDim;
    return new Map([['prompt_embeddings', uniform([1, o.prompts, D], vptBound(ctx.cfg.patchSize, D), ctx.rng)]]);
  },
  trainsBackbone: () => false,
  forward: <T>(ctx: ForwardContext<T>, x: T, o: ClipVptOptions): T =>
    vptForward(ctx, x, { ...o, deep: false }, (hooks) => clipHeadLogits(ctx, clipImageEmbedding(ctx, x, 'clip-vpt-shallow', hooks), ctx.clip!.zeroShot(), 'clip-vpt-shallow')),
  decays: () => true,
  recipe: () => dasslRecipe({ lr: 2, epochs: 200 }),
};
