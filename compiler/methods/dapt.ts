/**
 * DAPT: Distribution-Aware Prompt Tuning for vision-language models (Cho, Kim, Kim, ICCV 2023;
 * docs/spec/dapt.md, read from mlvlab/DAPT cacb311).
 *
 * Prompts:
 * - visual: `prompt_embeddings` [1, 16, D] after CLS, inserted after `ln_pre` with no position
 *   embedding, shallow (inserted once, evolving through all blocks): VPT-shallow on CLIP's tower;
 * - text: `text_ctx` [16, W], CoOp's unified context (coop.ts) in `"X … X {name}."`.
 * Logits: exp(logit_scale) · norm(f_img) · norm(f_txt)ᵀ; no linear head.
 *
 * Loss: CE + β_v·L_intra + β_t·L_inter with
 * - L_intra = mean over B·E of (f̂_b − p_{y_b})², p the zero-shot prototypes: the frozen,
 *   prompt-free image embeddings of the training images under one draw of the training
 *   augmentation, normalised per image and averaged per class, NOT renormalised; computed once
 *   (method state, saved in the checkpoint, so a dataset/shot/seed keeps its prototypes) and fed
 *   per batch as `prototypes` [N, E] = p_{y_b};
 * - L_inter = mean over class pairs i < j of exp(−τ‖f̂ᵗ_i − f̂ᵗ_j‖²), τ = 2 (C ≥ 2).
 * Init: visual U(−v, v) with VPT's v = sqrt(6/(3·p² + D)) (0.0625 for B/16, 0.0395 for B/32);
 * text N(0, 0.02). Recipe: Dassl SGD (momentum 0.9, wd 5e-4), batch 32, one warmup epoch at a
 * constant 1e-5, cosine per epoch, 200 epochs (8–16 shots); lr and β per dataset in the paper
 * (lr 0.002–20, β 0.01–100); here lr 2 and β 0.1/0.1 (the code's β defaults) unless configured.
 *
 * Export: the class head [C, E] folds (the text side is constant after training); the visual
 * prompts are image-dependent after block 0, so they run as 16 extra tokens through every block.
 */
import { z } from 'zod';
import type { ForwardContext, LossContext, MethodState, PromptMethod, StateContext } from './method.ts';
import { uniform } from './method.ts';
import { vptBound, vptForward } from './vpt.ts';
import { clipHeadLogits, clipImageEmbedding, contextClassEmbeddings, dasslRecipe, frozenImageEmbeddings, requireClipTask } from './clip-common.ts';
import { textContextInit } from './coop.ts';
import { softmaxCrossEntropy } from '../train/loss.ts';
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { CompilerError } from '../ops/errors.ts';

export const daptOptions = z.strictObject({
  visualPrompts: z.number().int().positive().describe('visual prompt tokens after CLS (VIS_NUM_TOKENS, 16)'),
  textContext: z.number().int().positive().describe('text context vectors (TXT_NUM_TOKENS, 16)'),
  betaIntra: z.number().min(0).describe('β_v: weight of the intra-dispersion loss (image features to the class prototype)'),
  betaInter: z.number().min(0).describe('β_t: weight of the inter-dispersion loss (text features apart)'),
  tau: z.number().positive().describe('τ of the Gaussian potential exp(−τ‖a − b‖²) (TXT_RBF_T, 2)'),
  prototypeShots: z.number().int().positive().describe('training images per class behind each prototype (all of a k-shot set up to this)'),
});
export type DaptOptions = z.infer<typeof daptOptions>;

/** Keeps the prototype draw apart from other method samples. */
const PROTOTYPE_STREAM = 0x70726f74; // 'prot'

/** L_intra = mean((f̂ − p)²) over all B·E elements: img and protos [B, E]. */
export function intraDispersion<T>(ops: Ops<T>, img: T, protos: T): T {
  const d = ops.sub(img, protos);
  return ops.reduceMean(ops.mul(d, d), [0, 1], false);
}

/** L_inter = mean over pairs i < j of exp(−τ‖t_i − t_j‖²) for text features t [C, E], C ≥ 2. */
export function interDispersion<T>(ops: Ops<T>, t: T, tau: number): T {
  const C = ops.shape(t)[0] as number;
  if (C < 2) throw new CompilerError('INTERNAL', `DAPT's inter-dispersion needs at least two classes, got ${C}`);
  const sq = ops.reduceSum(ops.mul(t, t), [1], true); // [C, 1]
  const gram = ops.matMul(t, ops.transpose(t, [1, 0])); // [C, C]
  const d2 = ops.sub(ops.add(sq, ops.transpose(sq, [1, 0])), ops.scale(gram, 2)); // ‖t_i − t_j‖²
  const pairs = (C * (C - 1)) / 2;
  const upper = new Float32Array(C * C);
  for (let i = 0; i < C; i++) for (let j = i + 1; j < C; j++) upper[i * C + j] = 1 / pairs;
  return ops.reduceSum(ops.mul(ops.exp(ops.scale(d2, -tau)), ops.constant({ shape: [C, C], data: upper })), [0, 1], false);
}

/** Unit image embeddings [B, E] with the visual prompts, and unit class embeddings [C, E] from the text context. */
function embeddings<T>(ctx: ForwardContext<T>, x: T, o: DaptOptions): { img: T; classes: T } {
  const img = vptForward(ctx, x, { prompts: o.visualPrompts, deep: false, dropout: 0 }, (hooks) => clipImageEmbedding(ctx, x, 'dapt', hooks));
  return { img, classes: contextClassEmbeddings(ctx, ctx.param('text_ctx'), 'dapt') };
}

export const dapt: PromptMethod<DaptOptions> = {
  name: 'dapt',
  requiresClip: true,
  resolveOptions: (raw) => daptOptions.parse({ visualPrompts: 16, textContext: 16, betaIntra: 0.1, betaInter: 0.1, tau: 2, prototypeShots: 16, ...raw }),
  init(ctx, o) {
    requireClipTask(ctx, 'dapt');
    if (ctx.numClasses < 2) throw new CompilerError('DATA_INVALID', `dapt needs at least two classes (its inter-dispersion loss is over class pairs), got ${ctx.numClasses}`);
    const D = ctx.cfg.embedDim;
    return new Map<string, HostTensor>([
      ['prompt_embeddings', uniform([1, o.visualPrompts, D], vptBound(ctx.cfg.patchSize, D), ctx.rng)],
      ['text_ctx', textContextInit(ctx, 'dapt', o.textContext)],
    ]);
  },
  trainsBackbone: () => false,
  forward<T>(ctx: ForwardContext<T>, x: T, o: DaptOptions): T {
    const { img, classes } = embeddings(ctx, x, o);
    return clipHeadLogits(ctx, img, classes, 'dapt');
  },
  loss<T>(ctx: LossContext<T>, x: T, o: DaptOptions): { loss: T; logits: T } {
    const { ops } = ctx;
    const { img, classes } = embeddings(ctx, x, o);
    const logits = clipHeadLogits(ctx, img, classes, 'dapt');
    const ce = softmaxCrossEntropy(ops, logits, ctx.targets);
    const intra = ops.scale(intraDispersion(ops, img, ctx.input('prototypes')), o.betaIntra);
    const inter = ops.scale(interDispersion(ops, classes, o.tau), o.betaInter);
    return { loss: ops.add(ops.add(ce, intra), inter), logits };
  },
  batchInputShapes: (_o, _C, ctx) => {
    if (!ctx.clip) throw new CompilerError('CONFIG_INVALID', `dapt needs a CLIP backbone; this task's backbone is ${ctx.cfg.name}`);
    return { prototypes: ['N', ctx.clip.cfg.embedDim] };
  },
  batchInputs(y, state) {
    const protos = state.prototypes as number[][];
    const E = protos[0]!.length;
    const data = new Float32Array(y.length * E);
    y.forEach((c, b) => data.set(protos[c]!, b * E));
    return new Map([['prototypes', { shape: [y.length, E], data }]]);
  },
  /** The zero-shot prototypes, drawn once from the training images with the training augmentation. */
  async initState(ctx: StateContext, o: DaptOptions): Promise<MethodState> {
    const task = requireClipTask(ctx, 'dapt');
    if (!ctx.sample) throw new CompilerError('INTERNAL', 'dapt computes its prototypes from training images, which this context does not provide');
    const s = await ctx.sample({ perClass: o.prototypeShots, stream: PROTOTYPE_STREAM });
    const feats = frozenImageEmbeddings(task, ctx.backbone, s.x);
    return { prototypes: classMeans(feats, s.y, ctx.numClasses, task.cfg.embedDim) };
  },
  decays: () => true,
  recipe: () => dasslRecipe({ lr: 2, epochs: 200 }),
};

/** Per-class mean of unit rows [n, E] (not renormalised); a class without images is an error. */
export function classMeans(feats: Float32Array, y: Int32Array, C: number, E: number): number[][] {
  const sum = Array.from({ length: C }, () => new Float64Array(E));
  const count = new Array<number>(C).fill(0);
  y.forEach((c, i) => {
    count[c]!++;
    for (let e = 0; e < E; e++) sum[c]![e]! += feats[i * E + e]!;
  });
  return sum.map((s, c) => {
    if (!count[c]) throw new CompilerError('DATA_INVALID', `dapt: class ${c} has no training image for its prototype`);
    return Array.from(s, (v) => v / count[c]!);
  });
}
