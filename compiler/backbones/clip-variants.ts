/**
 * CLIP architectures as data (docs/spec/clip.md): an image tower that is a ViT in timm's CLIP
 * layout (bias-free patch conv, `ln_pre`, eps 1e-5, no head), a text tower (token + position
 * embedding, causal pre-LN blocks, `ln_final`, pooling at the first EOT), projections into a
 * shared embedding of width E, and `logit_scale`.
 *
 * The activation is not here: OpenAI weights use QuickGELU and LAION weights exact GELU, so it
 * is a property of the weight source (CLIP_WEIGHT_SOURCES in clip-weights.ts).
 */
import { CompilerError } from '../ops/errors.ts';
import type { VitConfig } from './vit-variants.ts';

/** CLIP's image normalisation (OpenAI `clip.py`), shared by every CLIP variant. */
export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export interface ClipTextConfig {
  vocabSize: number;
  /** Tokens per sequence (77 for OpenAI CLIP); class prompts must fit. */
  contextLength: number;
  width: number;
  depth: number;
  heads: number;
}

export interface ClipConfig {
  name: string;
  /** The image tower as a ViT: numClasses 0, preNorm, no patch bias, eps 1e-5, CLIP mean/std. */
  vision: VitConfig;
  text: ClipTextConfig;
  /** Width of the shared image–text embedding (E). */
  embedDim: number;
  /** 'gelu' or 'quick_gelu', for both towers (from the weight source). */
  act: 'gelu' | 'quick_gelu';
}

interface Variant {
  vision: { imgSize: number; patchSize: number; width: number; depth: number; heads: number };
  text: ClipTextConfig;
  embedDim: number;
}

export const CLIP_VARIANTS: Record<string, Variant> = {
  // OpenAI ViT-B/32 and ViT-B/16 (151,277,313 and 149,620,737 parameters).
  clip_vit_b32: { vision: { imgSize: 224, patchSize: 32, width: 768, depth: 12, heads: 12 }, text: { vocabSize: 49408, contextLength: 77, width: 512, depth: 12, heads: 8 }, embedDim: 512 },
  clip_vit_b16: { vision: { imgSize: 224, patchSize: 16, width: 768, depth: 12, heads: 12 }, text: { vocabSize: 49408, contextLength: 77, width: 512, depth: 12, heads: 8 }, embedDim: 512 },
  // The shipped tiny CLIP (pretrained here, configs/pretrain/clip_tiny_p8_64.factory.yaml): a 64 px
  // image tower of 4 blocks and a 2-block text tower over a 768-token BPE vocabulary trained for it.
  clip_tiny_p8_64: { vision: { imgSize: 64, patchSize: 8, width: 96, depth: 4, heads: 3 }, text: { vocabSize: 768, contextLength: 24, width: 64, depth: 2, heads: 2 }, embedDim: 64 },
  // The shape of the PyTorch parity fixture (tools/reference/clip_ref.py): the hand-made
  // 518-token vocabulary of docs/spec/clip.md, context 16.
  clip_fixture: { vision: { imgSize: 32, patchSize: 8, width: 32, depth: 2, heads: 2 }, text: { vocabSize: 518, contextLength: 16, width: 16, depth: 2, heads: 2 }, embedDim: 24 },
};

export const isClipArch = (arch: string): boolean => arch in CLIP_VARIANTS;

/** The text tower's blocks are ViT blocks of width W: the fields `block` reads. */
export function textBlockConfig(c: ClipConfig): VitConfig {
  const t = c.text;
  return {
    name: `${c.name}.text`, imgSize: 0, patchSize: 1, inChans: 0, embedDim: t.width, depth: t.depth, numHeads: t.heads, mlpRatio: 4, numClasses: 0,
    eps: 1e-5, act: c.act, mean: CLIP_MEAN, std: CLIP_STD,
  };
}

export function clipConfig(arch: string, act: 'gelu' | 'quick_gelu'): ClipConfig {
  const v = CLIP_VARIANTS[arch];
  if (!v) throw new CompilerError('UNKNOWN_ARCH', `unknown CLIP arch "${arch}"; known: ${Object.keys(CLIP_VARIANTS).join(', ')}`);
  const { imgSize, patchSize, width, depth, heads } = v.vision;
  const vision: VitConfig = {
    name: arch, imgSize, patchSize, inChans: 3, embedDim: width, depth, numHeads: heads, mlpRatio: 4, numClasses: 0,
    eps: 1e-5, act, preNorm: true, patchBias: false, mean: CLIP_MEAN, std: CLIP_STD,
  };
  for (const [what, w, h] of [['image', width, heads], ['text', v.text.width, v.text.heads]] as const) {
    if (w % h) throw new CompilerError('CONFIG_INVALID', `${arch}: ${what} width ${w} is not divisible by ${h} heads`);
  }
  return { name: arch, vision, text: { ...v.text }, embedDim: v.embedDim, act };
}
