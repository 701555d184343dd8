/** Seeded random timm-named ViT weights for tests and benchmarks (no files needed). */
import { vitTensorShapes } from '../../compiler/backbones/vit-weights.ts';
import type { VitConfig } from '../../compiler/backbones/vit-variants.ts';
import type { StateDict } from '../../compiler/backbones/safetensors.ts';
import { numel } from '../../compiler/ops/host-tensor.ts';
import { gaussian, mulberry32 } from '../../devices/rng.ts';

export function randn(shape: number[], std: number, seed: number, mean = 0): Float32Array {
  const g = gaussian(mulberry32(seed));
  const out = new Float32Array(numel(shape));
  for (let i = 0; i < out.length; i++) out[i] = mean + std * g();
  return out;
}

/** Well-scaled weights (activations O(1)) so a wrong op shows up in the logits. */
export function randomVit(cfg: VitConfig, seed = 1): StateDict {
  const sd: StateDict = new Map();
  let s = seed;
  for (const [key, shape] of vitTensorShapes(cfg)) {
    let std = 0.1;
    let mean = 0;
    if (key.endsWith('.weight') && shape.length >= 2) std = 1 / Math.sqrt(numel(shape.slice(1)));
    else if (/norm\d?\.weight$/.test(key)) mean = 1;
    else if (key === 'cls_token' || key === 'pos_embed') std = 0.5;
    sd.set(key, { shape, data: randn(shape, std, s++, mean) });
  }
  return sd;
}
