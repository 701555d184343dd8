/**
 * Pretraining as a training method the shared loop and both engines run unchanged: every backbone
 * tensor trains (as with `full`), each source adds its objective's tensors (its head), the loss
 * is the sum of the sources' terms over the pooled CLS feature, and evaluation reads every
 * source's scores side by side as one [B, ΣC] matrix (sources in config order, so global label
 * g of source s sits at column offset_s + class).
 */
import { forwardFeatures, preLogits } from '../backbones/vit.ts';
import type { ForwardContext, PromptMethod, Recipe } from '../methods/method.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { objectiveByName } from './objective.ts';
import type { Features, ObjectiveName, SourceHead } from './objective-types.ts';

export interface PretrainHead extends SourceHead {
  objective: ObjectiveName;
}

type Options = Record<string, never>;

/** timm's convention: no decay on biases, norms, position and class embeddings. */
export const decaysTimm = (n: string): boolean => !(n.endsWith('.bias') || /norm\d?\.weight$/.test(n) || n === 'pos_embed' || n === 'cls_token');

/** The CLS feature [B, D], and every token [B, 1 + G², D] when `tokens` (patch-level terms). */
function features<T>(ctx: ForwardContext<T>, x: T, tokens = false): Features<T> {
  const feats = forwardFeatures(ctx.ops, ctx.cfg, ctx.w, x, { clsOnlyLastBlock: !tokens, ...(ctx.uint8Nhwc ? { uint8Nhwc: true } : {}) });
  return { pooled: preLogits(ctx.ops, ctx.cfg, feats), ...(tokens ? { tokens: feats } : {}) };
}

export function pretrainMethod(heads: readonly PretrainHead[], recipe: Recipe): PromptMethod<Options> {
  const objective = (h: PretrainHead) => objectiveByName(h.objective);
  const dense = heads.some((h) => h.patches > 0);
  return {
    name: 'pretrain',
    resolveOptions: () => ({}),
    init(ctx) {
      const out = new Map<string, HostTensor>();
      for (const h of heads) for (const [k, v] of objective(h).init(h, ctx.cfg.embedDim, ctx.rng)) out.set(k, v);
      return out;
    },
    trainsBackbone: () => true,
    forward(ctx, x) {
      const p = features(ctx, x).pooled;
      const scores = heads.map((h) => objective(h).scores(ctx.ops, h, p, ctx.param));
      return scores.length === 1 ? scores[0]! : ctx.ops.concat(scores, 1); // [B, ΣC]
    },
    loss(ctx, x) {
      const f = features(ctx, x, dense);
      const terms = heads.map((h) => objective(h).loss(ctx.ops, h, f, ctx.param, ctx.input));
      const scores = heads.map((h) => objective(h).scores(ctx.ops, h, f.pooled, ctx.param));
      const loss = terms.reduce((a, b) => ctx.ops.add(a, b));
      return { loss, logits: scores.length === 1 ? scores[0]! : ctx.ops.concat(scores, 1) };
    },
    batchInputShapes: () => Object.assign({}, ...heads.map((h) => objective(h).inputShapes(h))) as Record<string, (number | 'N')[]>,
    batchInputs(y) {
      const out = new Map<string, HostTensor>();
      for (const h of heads) for (const [k, v] of objective(h).inputs(h, y)) out.set(k, v);
      return out;
    },
    decays: (n) => decaysTimm(n) && !heads.some((h) => objective(h).noDecay?.(n)),
    recipe: () => recipe,
  };
}
