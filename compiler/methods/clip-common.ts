/**
 * What the CLIP methods share (docs/spec/clip.md): the image tower's forward with a method's
 * hooks, ending in the CLIP head `scale · norm(img) · classesᵀ`; class embeddings from a learned
 * text context (CoOp, DAPT); and the refusal of a CLIP method on a plain ViT.
 *
 * In 'export' mode ln_post's affine folds into the image projection, and whatever the class
 * embeddings depend on (the zero-shot text features, or the trained context through the text
 * tower) is constant, so the class head becomes one initializer [C, E] with the scale in it.
 */
import * as tf from '@tensorflow/tfjs';
import type { ForwardContext, InitContext, Recipe } from './method.ts';
import type { ClipContext, ClipTask } from '../backbones/clip-task.ts';
import { bindClipImage, encodeImage, encodeText, embedTokens, foldLnPostAffine, l2normalize } from '../backbones/clip.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import { TfOps } from '../ops/tf-ops.ts';
import { forwardFeatures, type VitHooks, type VitWeights } from '../backbones/vit.ts';
import { contextPrompts, type TokenizedPrompts } from '../text/prompts.ts';
import { CompilerError } from '../ops/errors.ts';
import type { HostTensor } from '../ops/host-tensor.ts';

export function requireClip<T>(ctx: ForwardContext<T>, method: string): ClipContext<T> {
  if (!ctx.clip) throw new CompilerError('CONFIG_INVALID', `${method} needs a CLIP backbone (backbone.arch clip_*, with backbone.tokenizer); this task's backbone is ${ctx.cfg.name}`);
  return ctx.clip;
}

export function requireClipTask(ctx: InitContext, method: string): ClipTask {
  if (!ctx.clip) throw new CompilerError('CONFIG_INVALID', `${method} needs a CLIP backbone (backbone.arch clip_*, with backbone.tokenizer); this task's backbone is ${ctx.cfg.name}`);
  return ctx.clip;
}

/**
 * Unit image embeddings [B, E] from images x through the image tower with `hooks` (prompts).
 * `w` replaces the tower's weights when a method changes them (VP's position embedding).
 */
export function clipImageEmbedding<T>(ctx: ForwardContext<T>, x: T, method: string, hooks: VitHooks<T> = {}, w: VitWeights<T> = ctx.w): T {
  const clip = requireClip(ctx, method);
  const { ops } = ctx;
  const cfg = clip.task.cfg;
  const folded = ctx.mode === 'export' ? foldLnPostAffine(ops, cfg, { vision: w, proj: clip.image.proj }) : null;
  const feats = forwardFeatures(ops, cfg.vision, folded ? folded.vision : w, x, { clsOnlyLastBlock: true, ...(ctx.uint8Nhwc ? { uint8Nhwc: true } : {}), ...hooks });
  return l2normalize(ops, encodeImage(ops, cfg, folded ? folded.proj : clip.image.proj, feats));
}

/** Logits [B, C] = exp(logit_scale) · img · classesᵀ for unit image and class embeddings. */
export function clipHeadLogits<T>(ctx: ForwardContext<T>, img: T, classes: T, method: string): T {
  const clip = requireClip(ctx, method);
  return ctx.ops.linear(img, ctx.ops.label(ctx.ops.scale(classes, clip.task.logitScale), 'clip.class_head'));
}

const promptCache = new WeakMap<ClipTask, Map<number, { prompts: TokenizedPrompts; embeds: HostTensor }>>();

/** `"X … X {name}."` tokens for n context slots and their embeddings, cut after the last EOT; cached per task. */
export function contextPromptEmbeds(task: ClipTask, tokenEmbedding: HostTensor, nCtx: number): { prompts: TokenizedPrompts; embeds: HostTensor } {
  let m = promptCache.get(task);
  if (!m) promptCache.set(task, (m = new Map()));
  let e = m.get(nCtx);
  if (!e) {
    const prompts = contextPrompts(task.tokenizer, task.classNames, nCtx, task.cfg.text.contextLength);
    m.set(nCtx, (e = { prompts, embeds: embedTokens(tokenEmbedding, prompts.ids, Math.max(...prompts.eot) + 1) }));
  }
  return e;
}

/**
 * Unit class embeddings [C, E] from a learned context `ctxVectors` [n, W] shared by all classes
 * (CoOp's unified context, DAPT's text prompt): `[SOT, ctx, name, ".", EOT]` through the text tower.
 */
export function contextClassEmbeddings<T>(ctx: ForwardContext<T>, ctxVectors: T, method: string): T {
  const clip = requireClip(ctx, method);
  const { ops } = ctx;
  const tw = clip.text();
  const [n, W] = ops.shape(ctxVectors) as [number, number];
  const { prompts, embeds } = contextPromptEmbeds(clip.task, tw.tokenEmbedding, n);
  const [C, L] = embeds.shape as [number, number, number];
  const part = (from: number, to: number): HostTensor => {
    const data = new Float32Array(C * (to - from) * W);
    for (let c = 0; c < C; c++) data.set(embeds.data.subarray((c * L + from) * W, (c * L + to) * W), c * (to - from) * W);
    return { shape: [C, to - from, W], data };
  };
  // The context broadcast to every class: [1, n, W] + 0 [C, n, W] (its gradient sums over C).
  const shared = ops.add(ops.reshape(ctxVectors, [1, n, W]), ops.constant({ shape: [C, n, W], data: new Float32Array(C * n * W) }));
  const x = ops.concat([ops.constant(part(0, 1)), shared, ops.constant(part(1 + n, L))], 1); // [C, L, W]
  return l2normalize(ops, encodeText(ops, clip.task.cfg, tw, x, prompts.eot));
}

/**
 * The recipe CoOp and DAPT share (Dassl, docs/spec/dapt.md): SGD momentum 0.9, weight decay
 * 5e-4 on every prompt, batch 32, one warmup epoch at a constant 1e-5, then cosine per epoch over
 * all epochs; random resized crop and flip.
 */
export function dasslRecipe(o: { lr: number; epochs: number; weightDecay?: number }): Recipe {
  return {
    optimizer: { kind: 'sgd', lr: o.lr, scaleLrByBatch: false, momentum: 0.9, weightDecay: o.weightDecay ?? 5e-4, betas: [0.9, 0.999] },
    epochs: o.epochs,
    warmupEpochs: 1,
    warmupLr: 1e-5,
    batchSize: 32,
    schedulePer: 'epoch',
    labelSmoothing: 0,
    augment: { randomResizedCrop: true, hflip: true },
  };
}

/**
 * Unit image embeddings [n, E] of the frozen, prompt-free image tower for host images
 * [n, 3, S, S] (DAPT's zero-shot prototypes), in batches through TfOps.
 */
export function frozenImageEmbeddings(task: ClipTask, backbone: StateDict, x: HostTensor, batch = 64): Float32Array {
  const ops = new TfOps();
  const n = x.shape[0]!;
  const E = task.cfg.embedDim;
  const per = x.data.length / n;
  const out = new Float32Array(n * E);
  try {
    const iw = bindClipImage(ops, task.cfg, backbone);
    for (let i = 0; i < n; i += batch) {
      const b = Math.min(batch, n - i);
      const y = tf.tidy(() => {
        const xs = tf.tensor(x.data.subarray(i * per, (i + b) * per), [b, ...x.shape.slice(1)]);
        return l2normalize(ops, encodeImage(ops, task.cfg, iw.proj, forwardFeatures(ops, task.cfg.vision, iw.vision, xs, { clsOnlyLastBlock: true })));
      });
      out.set(y.dataSync() as Float32Array, i * E);
      y.dispose();
    }
  } finally {
    ops.dispose();
  }
  return out;
}
