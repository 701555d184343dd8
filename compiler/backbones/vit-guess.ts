/** Recognise a timm ViT state dict by its telltale keys and shapes (for `edgeprompt info`). */
import type { StateDict } from './safetensors.ts';
import { VIT_VARIANTS } from './vit-variants.ts';

export function guessVitArch(sd: StateDict): string | null {
  const pe = sd.get('patch_embed.proj.weight');
  const pos = sd.get('pos_embed');
  if (!pe || !pos || pe.shape.length !== 4) return null;
  const D = pe.shape[0]!;
  const patch = pe.shape[2]!;
  let depth = 0;
  while (sd.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  const grid = Math.round(Math.sqrt(pos.shape[1]! - 1));
  const head = sd.get('head.weight');
  const known = Object.entries(VIT_VARIANTS).find(([, v]) => v.embedDim === D && v.patchSize === patch && v.depth === depth && v.imgSize === grid * patch);
  const desc = `ViT width ${D}, depth ${depth}, patch ${patch}, ${grid * patch}px (grid ${grid}×${grid})${head ? `, head ${head.shape[0]} classes` : ', no head'}`;
  return known ? `${known[0]} — ${desc}` : desc;
}
