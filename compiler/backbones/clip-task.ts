/**
 * A CLIP task on the host: the model config and weights, the tokenizer, the class names and
 * templates, and what the text tower gives for them before any training, the zero-shot class
 * embeddings `normalize(mean_t normalize(text(template_t(c))))` [C, E]
 * (docs/spec/clip.md#what-folds). They are computed once here, so the text tower runs at compile
 * time only; on the device the class head is a constant.
 *
 * `ClipContext` is what a method's forward sees (ForwardContext.clip): the image projection, the
 * text tower bound on first use (only CoOp and DAPT run it), the zero-shot embeddings as a constant.
 */
import * as tf from '@tensorflow/tfjs';
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { TfOps } from '../ops/tf-ops.ts';
import type { StateDict } from './safetensors.ts';
import type { ClipConfig } from './clip-variants.ts';
import { bindClipImage, bindClipText, embedTokens, encodeText, l2normalize, logitScaleOf, type ClipImageWeights, type ClipTextWeights } from './clip.ts';
import type { ClipTokenizer } from '../text/tokenizer.ts';
import { checkClassNames, checkTemplates, templatePrompts, type TokenizedPrompts } from '../text/prompts.ts';
import { CompilerError } from '../ops/errors.ts';

export interface ClipTask {
  cfg: ClipConfig;
  tokenizer: ClipTokenizer;
  /** Cleaned class names, in label order. */
  classNames: string[];
  templates: string[];
  /** [C, E] unit-length zero-shot class embeddings (no logit scale). */
  zeroShot: HostTensor;
  /** exp(logit_scale) of the weights (100 for OpenAI CLIP). */
  logitScale: number;
}

/** Text features [C, E] of tokenized prompts, cut after the last EOT (exact under the causal mask). */
export function textFeatures<T>(ops: Ops<T>, cfg: ClipConfig, tw: ClipTextWeights<T>, p: TokenizedPrompts): T {
  const L = Math.max(...p.eot) + 1;
  return encodeText(ops, cfg, tw, ops.constant(embedTokens(tw.tokenEmbedding, p.ids, L)), p.eot);
}

/** normalize(mean over templates of normalize(text features)): [C, E]. */
export function zeroShotEmbeddings<T>(ops: Ops<T>, cfg: ClipConfig, tw: ClipTextWeights<T>, prompts: readonly TokenizedPrompts[]): T {
  const per = prompts.map((p) => l2normalize(ops, textFeatures(ops, cfg, tw, p)));
  const sum = per.reduce((a, b) => ops.add(a, b));
  return l2normalize(ops, ops.scale(sum, 1 / per.length));
}

export function makeClipTask(o: { cfg: ClipConfig; stateDict: StateDict; tokenizer: ClipTokenizer; classes: readonly string[]; templates: readonly string[]; field?: string }): ClipTask {
  const field = o.field ?? 'classes';
  const classNames = checkClassNames(o.classes, field);
  checkTemplates(o.templates, 'text.templates');
  if (o.tokenizer.vocabSize > o.cfg.text.vocabSize) {
    throw new CompilerError('CONFIG_INVALID', `${o.tokenizer.source}: the tokenizer has ${o.tokenizer.vocabSize} tokens but ${o.cfg.name}'s text tower embeds ${o.cfg.text.vocabSize}; use the tokenizer.json these weights were trained with`);
  }
  const prompts = templatePrompts(o.tokenizer, classNames, o.templates, o.cfg.text.contextLength);
  const ops = new TfOps();
  try {
    const tw = bindClipText(ops, o.cfg, o.stateDict);
    const z = tf.tidy(() => zeroShotEmbeddings(ops, o.cfg, tw, prompts));
    const zeroShot = { shape: [...z.shape], data: z.dataSync() as Float32Array };
    z.dispose();
    return { cfg: o.cfg, tokenizer: o.tokenizer, classNames, templates: [...o.templates], zeroShot, logitScale: logitScaleOf(o.stateDict) };
  } finally {
    ops.dispose();
  }
}

export interface ClipContext<T> {
  task: ClipTask;
  /** The image tower (ctx.w is its `vision`) and its projection [E, D]. */
  image: ClipImageWeights<T>;
  /** The text tower, bound on first use. */
  text(): ClipTextWeights<T>;
  /** The zero-shot class embeddings [C, E] as a constant. */
  zeroShot(): T;
}

export function clipContext<T>(ops: Ops<T>, task: ClipTask, sd: StateDict, trainable: (key: string) => boolean = () => false): ClipContext<T> {
  let text: ClipTextWeights<T> | null = null;
  let zs: T | null = null;
  return {
    task,
    image: bindClipImage(ops, task.cfg, sd, trainable),
    text: () => (text ??= bindClipText(ops, task.cfg, sd)),
    zeroShot: () => (zs ??= ops.weight('clip.zero_shot_classes', task.zeroShot)),
  };
}
