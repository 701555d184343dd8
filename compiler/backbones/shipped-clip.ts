/**
 * The shipped tiny CLIP (compiler/backbones/weights/, made by
 * configs/pretrain/clip_tiny_p8_64.factory.yaml): the default of `compile --zero-shot` and of the
 * parts-clip / CoOp / DAPT example configs, so CLIP methods run without a download.
 */
import { fileURLToPath } from 'node:url';

const at = (f: string) => fileURLToPath(new URL(`./weights/${f}`, import.meta.url));

export const SHIPPED_CLIP = {
  arch: 'clip_tiny_p8_64',
  weights: at('clip_tiny_p8_64.factory.safetensors'),
  tokenizer: at('clip_tiny_p8_64.factory.tokenizer.json'),
  card: at('clip_tiny_p8_64.factory.json'),
} as const;
