/**
 * Linear probing (head only) and full fine-tuning (every weight). Both use the same forward as
 * the bare backbone; `full` is how the shipped backbone is meant to be (re)trained.
 */
import { z } from 'zod';
import type { PromptMethod, Recipe } from './method.ts';
import { headInit } from './method.ts';
import { forward } from '../backbones/vit.ts';

const noOptions = z.strictObject({});
type NoOptions = z.infer<typeof noOptions>;

const base = (recipe: Recipe, trainsBackbone: boolean, name: string): PromptMethod<NoOptions> => ({
  name,
  resolveOptions: (raw) => noOptions.parse(raw),
  optionsSchema: noOptions,
  init: (ctx) => headInit(ctx, Math.sqrt(2 / ctx.numClasses)),
  trainsBackbone: () => trainsBackbone,
  forward: (ctx, x) => forward(ctx.ops, ctx.cfg, ctx.w, x, { clsOnlyLastBlock: true, ...(ctx.uint8Nhwc ? { uint8Nhwc: true } : {}) }),
  // timm convention: no decay on biases, norms, position/class embeddings.
  decays: (n) => !(n.endsWith('.bias') || /norm\d?\.weight$/.test(n) || n === 'pos_embed' || n === 'cls_token'),
  recipe: () => recipe,
});

export const linear = base(
  {
    optimizer: { kind: 'sgd', lr: 0.5, scaleLrByBatch: true, momentum: 0.9, weightDecay: 0, betas: [0.9, 0.999] },
    epochs: 50, warmupEpochs: 5, batchSize: 64, schedulePer: 'epoch', labelSmoothing: 0,
    augment: { randomResizedCrop: false, hflip: false },
  },
  false,
  'linear',
);

export const full = base(
  {
    optimizer: { kind: 'adamw', lr: 5e-4, scaleLrByBatch: false, momentum: 0.9, weightDecay: 0.05, betas: [0.9, 0.999] },
    epochs: 30, warmupEpochs: 2, batchSize: 64, schedulePer: 'step', labelSmoothing: 0.1,
    augment: { randomResizedCrop: true, hflip: true },
  },
  true,
  'full',
);
