/**
 * VP on CLIP, the setting of the VP paper and its outer-padding follow-up (docs/spec/vp.md,
 * docs/spec/clip.md#what-folds): the padding prompt of vp.ts (inner: a frame added to the
 * normalised image; outer: the image shrunk inside the frame) in front of frozen CLIP,
 * classified by the zero-shot text head, as the official `main_clip.py` does (no linear head;
 * the text classifier is fixed).
 *
 * Export: the bias-free patch conv makes inner VP a constant in the position embedding (vp.ts),
 * and the class head is a constant: the fused inner model is the bare image tower with another
 * position embedding and a [C, E] head.
 *
 * Recipe: VP's optimiser (SGD lr 40, momentum 0.9, no weight decay, warmup then cosine per step)
 * on CoOp's batch 32 and a shorter run (200 epochs, 5 warmup epochs) than VP's 1000 epochs at
 * batch 256, which assume full datasets; no augmentation, as VP.
 */
import type { ForwardContext, PromptMethod, Recipe } from './method.ts';
import { vpForward, vpInit, vpResolveOptions, type VpOptions } from './vp.ts';
import { clipHeadLogits, clipImageEmbedding, requireClipTask } from './clip-common.ts';

const RECIPE: Recipe = {
  optimizer: { kind: 'sgd', lr: 40, scaleLrByBatch: false, momentum: 0.9, weightDecay: 0, betas: [0.9, 0.999] },
  epochs: 200,
  warmupEpochs: 5,
  batchSize: 32,
  schedulePer: 'step',
  labelSmoothing: 0,
  augment: { randomResizedCrop: false, hflip: false },
};

function make(name: 'clip-vp-inner' | 'clip-vp-outer'): PromptMethod<VpOptions> {
  const outer = name === 'clip-vp-outer';
  return {
    name,
    requiresClip: true,
    resolveOptions: (raw) => vpResolveOptions(outer, raw),
    init(ctx, o) {
      requireClipTask(ctx, name);
      return vpInit(ctx, o, name);
    },
    trainsBackbone: () => false,
    forward: <T>(ctx: ForwardContext<T>, x: T, o: VpOptions): T =>
      vpForward(ctx, x, o, name, outer, (w, xi, hooks) => clipHeadLogits(ctx, clipImageEmbedding(ctx, xi, name, hooks, w), ctx.clip!.zeroShot(), name)),
    decays: () => false,
    recipe: () => RECIPE,
  };
}

export const clipVpInner = make('clip-vp-inner');
export const clipVpOuter = make('clip-vp-outer');
