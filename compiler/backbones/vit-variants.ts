/**
 * ViT architectures as data (timm's registered names), apart from the code that runs them.
 * Preprocessing fields travel with the arch so datasets and exporters read one table.
 */
import { CompilerError } from '../ops/errors.ts';

export interface VitConfig {
  name: string;
  imgSize: number;
  patchSize: number;
  inChans: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  /** Classes of the head; 0 means features only (no `head.*` tensors). */
  numClasses: number;
  /** LayerNorm epsilon: timm ViTs use 1e-6, CLIP towers 1e-5. */
  eps: number;
  /**
   * MLP activation: exact GELU (timm ViTs, LAION CLIP weights) or QuickGELU x·σ(1.702x) (every
   * OpenAI CLIP checkpoint). For CLIP it is a property of the weight source, set when the weights
   * are loaded (compiler/backbones/clip-weights.ts), not of the arch.
   */
  act?: 'gelu' | 'quick_gelu';
  /** CLIP's `ln_pre` (timm `norm_pre.*`): a LayerNorm over the embedded sequence before block 0. */
  preNorm?: boolean;
  /** The patch projection has a bias (timm ViT) or not (CLIP `conv1`); default true. */
  patchBias?: boolean;
  mean: [number, number, number];
  std: [number, number, number];
}

const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];
const INCEPTION_MEAN: [number, number, number] = [0.5, 0.5, 0.5];
const INCEPTION_STD: [number, number, number] = [0.5, 0.5, 0.5];

type Variant = Pick<VitConfig, 'imgSize' | 'patchSize' | 'embedDim' | 'depth' | 'numHeads'> & Partial<VitConfig>;

export const VIT_VARIANTS: Record<string, Variant> = {
  vit_tiny_patch16_224: { imgSize: 224, patchSize: 16, embedDim: 192, depth: 12, numHeads: 3, numClasses: 1000 },
  vit_small_patch16_224: { imgSize: 224, patchSize: 16, embedDim: 384, depth: 12, numHeads: 6, numClasses: 1000 },
  vit_base_patch16_224: { imgSize: 224, patchSize: 16, embedDim: 768, depth: 12, numHeads: 12, numClasses: 1000 },
  vit_base_patch32_224: { imgSize: 224, patchSize: 32, embedDim: 768, depth: 12, numHeads: 12, numClasses: 1000 },
  // The shipped tiny backbone (32 px, patch 4 → 8×8 grid, width 96, 6 blocks; see
  // compiler/backbones/weights/README.md for why this size).
  vit_micro_patch4_32: { imgSize: 32, patchSize: 4, embedDim: 96, depth: 6, numHeads: 3, numClasses: 5, mean: INCEPTION_MEAN, std: INCEPTION_STD },
  // Line backbones pretrained by `edgeprompt pretrain` on generated parts lines (64 px; the
  // candidates compared in docs/bench/pretrain.md): patch 8 → 8×8 grid, patch 4 → 16×16.
  vit_micro_patch8_64: { imgSize: 64, patchSize: 8, embedDim: 96, depth: 6, numHeads: 3, numClasses: 5, mean: INCEPTION_MEAN, std: INCEPTION_STD },
  vit_micro_patch4_64: { imgSize: 64, patchSize: 4, embedDim: 96, depth: 6, numHeads: 3, numClasses: 5, mean: INCEPTION_MEAN, std: INCEPTION_STD },
  vit_mini_patch8_64: { imgSize: 64, patchSize: 8, embedDim: 192, depth: 6, numHeads: 3, numClasses: 5, mean: INCEPTION_MEAN, std: INCEPTION_STD },
  // The shape of the PyTorch parity fixture (tools/reference/make_fixtures.py).
  vit_fixture_patch8_32: { imgSize: 32, patchSize: 8, embedDim: 96, depth: 3, numHeads: 3, numClasses: 10 },
};

export function vitConfig(arch: string, overrides: Partial<VitConfig> = {}): VitConfig {
  const v = VIT_VARIANTS[arch];
  if (!v) throw new CompilerError('UNKNOWN_ARCH', `unknown arch "${arch}"; known: ${Object.keys(VIT_VARIANTS).join(', ')}`);
  const cfg: VitConfig = { name: arch, inChans: 3, mlpRatio: 4, numClasses: 1000, eps: 1e-6, mean: IMAGENET_MEAN, std: IMAGENET_STD, ...v, ...overrides };
  if (cfg.imgSize % cfg.patchSize) throw new CompilerError('CONFIG_INVALID', `${arch}: image size ${cfg.imgSize} is not a multiple of patch ${cfg.patchSize}`);
  if (cfg.embedDim % cfg.numHeads) throw new CompilerError('CONFIG_INVALID', `${arch}: width ${cfg.embedDim} is not divisible by ${cfg.numHeads} heads`);
  return cfg;
}

export const gridOf = (c: VitConfig): number => c.imgSize / c.patchSize;
export const numPatches = (c: VitConfig): number => gridOf(c) ** 2;
