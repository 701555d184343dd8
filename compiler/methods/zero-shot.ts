/**
 * Zero-shot CLIP (docs/spec/clip.md): classes defined by words. The class head is
 * `normalize(mean_t normalize(text(template_t(c))))` over the task's templates, computed once on
 * the host (ClipTask.zeroShot); logits are `exp(logit_scale) · norm(img) · headᵀ`. Nothing trains:
 * a job evaluates once, and `edgeprompt compile --zero-shot` exports without any image.
 */
import { z } from 'zod';
import type { ForwardContext, PromptMethod } from './method.ts';
import { clipHeadLogits, clipImageEmbedding, dasslRecipe, requireClipTask } from './clip-common.ts';

export const zeroShotOptions = z.strictObject({});
type ZeroShotOptions = z.infer<typeof zeroShotOptions>;

export const zeroShot: PromptMethod<ZeroShotOptions> = {
  name: 'zero-shot',
  requiresClip: true,
  resolveOptions: (raw) => zeroShotOptions.parse(raw),
  init(ctx) {
    requireClipTask(ctx, 'zero-shot');
    return new Map();
  },
  trainsBackbone: () => false,
  forward: <T>(ctx: ForwardContext<T>, x: T): T => clipHeadLogits(ctx, clipImageEmbedding(ctx, x, 'zero-shot'), ctx.clip!.zeroShot(), 'zero-shot'),
  decays: () => false,
  recipe: () => ({ ...dasslRecipe({ lr: 0, epochs: 1 }), augment: { randomResizedCrop: false, hflip: false } }),
};
