/**
 * CoOp: Context Optimization (Zhou et al., IJCV 2022), the unified-context variant DAPT builds on
 * (docs/spec/dapt.md): n context vectors `text_ctx` [n, W] shared by every class replace the
 * placeholders of `"X … X {name}."`; the class embeddings come out of the frozen text tower and
 * the image side is frozen CLIP. Init N(0, 0.02), or the embeddings of `initWords` (CoOp's
 * `ctx_init`, e.g. "a photo of a", n = its token count). Export: the trained context is a
 * constant, so the text tower folds into the class head [C, E].
 *
 * Recipe: CoOp's (Dassl SGD lr 0.002, momentum 0.9, wd 5e-4, batch 32, 200 epochs, one constant
 * warmup epoch at 1e-5, cosine per epoch).
 */
import { z } from 'zod';
import type { ForwardContext, InitContext, PromptMethod } from './method.ts';
import { normal } from '../../devices/rng.ts';
import { clipHeadLogits, clipImageEmbedding, contextClassEmbeddings, dasslRecipe, requireClipTask } from './clip-common.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { CompilerError } from '../ops/errors.ts';

export const coopOptions = z.strictObject({
  contextTokens: z.number().int().positive().describe('learned context vectors n (16 in CoOp and DAPT)'),
  initWords: z.string().optional().describe('start the context from these words\' token embeddings (n = their token count) instead of N(0, 0.02)'),
});
export type CoopOptions = z.infer<typeof coopOptions>;

/** The text context [n, W]: N(0, 0.02) or the token embeddings of `words`. */
export function textContextInit(ctx: InitContext, method: string, n: number, words?: string): HostTensor {
  const task = requireClipTask(ctx, method);
  const table = ctx.backbone.get('text.token_embedding.weight');
  if (!table) throw new CompilerError('MISSING_TENSOR', `${method}: the backbone lacks text.token_embedding.weight`);
  const W = task.cfg.text.width;
  if (words !== undefined) {
    const ids = task.tokenizer.encode(words).slice(1, -1);
    if (ids.length === 0) throw new CompilerError('CONFIG_INVALID', `method.options.initWords: "${words}" has no tokens`);
    const data = new Float32Array(ids.length * W);
    ids.forEach((id, i) => data.set(table.data.subarray(id * W, (id + 1) * W), i * W));
    return { shape: [ids.length, W], data };
  }
  const data = new Float32Array(n * W);
  for (let i = 0; i < data.length; i++) data[i] = 0.02 * normal(ctx.rng);
  return { shape: [n, W], data };
}

export const coop: PromptMethod<CoopOptions> = {
  name: 'coop',
  requiresClip: true,
  resolveOptions: (raw) => coopOptions.parse({ contextTokens: 16, ...raw }),
  init(ctx, o) {
    if (ctx.numClasses < 2) throw new CompilerError('DATA_INVALID', `coop needs at least two classes, got ${ctx.numClasses}`);
    return new Map([['text_ctx', textContextInit(ctx, 'coop', o.contextTokens, o.initWords)]]);
  },
  trainsBackbone: () => false,
  forward: <T>(ctx: ForwardContext<T>, x: T): T => clipHeadLogits(ctx, clipImageEmbedding(ctx, x, 'coop'), contextClassEmbeddings(ctx, ctx.param('text_ctx'), 'coop'), 'coop'),
  decays: () => true,
  recipe: () => dasslRecipe({ lr: 0.002, epochs: 200 }),
};
