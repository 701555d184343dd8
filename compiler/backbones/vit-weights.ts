/**
 * Loading a timm ViT checkpoint: the expected keys and shapes come from the config, every
 * missing or mis-shaped tensor is reported by key with both shapes (all of them in one
 * WEIGHTS_MISMATCH error, not the first only), and the two adaptations timm's
 * `checkpoint_filter_fn` makes are applied: resample `pos_embed` to the model's grid, drop a
 * head whose class count differs (the caller re-initialises it).
 */
import { CompilerError } from '../ops/errors.ts';
import { fmtShape, sameShape } from '../ops/host-tensor.ts';
import { readSafetensors, type StateDict } from './safetensors.ts';
import { type VitConfig, gridOf, numPatches } from './vit-variants.ts';
import { resamplePosEmbed } from './pos-embed.ts';

export function vitTensorShapes(c: VitConfig): Map<string, number[]> {
  const D = c.embedDim;
  const M = Math.round(D * c.mlpRatio);
  const s = new Map<string, number[]>([['patch_embed.proj.weight', [D, c.inChans, c.patchSize, c.patchSize]]]);
  if (c.patchBias !== false) s.set('patch_embed.proj.bias', [D]); // CLIP's conv1 has none
  s.set('cls_token', [1, 1, D]);
  s.set('pos_embed', [1, 1 + numPatches(c), D]);
  if (c.preNorm) {
    s.set('norm_pre.weight', [D]);
    s.set('norm_pre.bias', [D]);
  }
  for (let i = 0; i < c.depth; i++) {
    const p = `blocks.${i}`;
    for (const n of ['norm1', 'norm2']) {
      s.set(`${p}.${n}.weight`, [D]);
      s.set(`${p}.${n}.bias`, [D]);
    }
    s.set(`${p}.attn.qkv.weight`, [3 * D, D]);
    s.set(`${p}.attn.qkv.bias`, [3 * D]);
    s.set(`${p}.attn.proj.weight`, [D, D]);
    s.set(`${p}.attn.proj.bias`, [D]);
    s.set(`${p}.mlp.fc1.weight`, [M, D]);
    s.set(`${p}.mlp.fc1.bias`, [M]);
    s.set(`${p}.mlp.fc2.weight`, [D, M]);
    s.set(`${p}.mlp.fc2.bias`, [D]);
  }
  s.set('norm.weight', [D]);
  s.set('norm.bias', [D]);
  if (c.numClasses > 0) {
    s.set('head.weight', [c.numClasses, D]);
    s.set('head.bias', [c.numClasses]);
  }
  return s;
}

export interface LoadedVit {
  stateDict: StateDict;
  /** What was adapted or ignored, by key, for the log. */
  notes: string[];
  /** True when the checkpoint's head did not fit and was dropped. */
  headDropped: boolean;
  metadata: Record<string, string>;
}

/** Validate (and adapt) a state dict for `cfg`. `source` names the file in errors. */
export function adaptVitStateDict(raw: StateDict, cfg: VitConfig, source: string, metadata: Record<string, string> = {}): LoadedVit {
  const expected = vitTensorShapes(cfg);
  const sd: StateDict = new Map();
  const notes: string[] = [];
  const missing: string[] = [];
  const misShaped: string[] = [];
  let headDropped = false;
  for (const [key, shape] of expected) {
    const t = raw.get(key);
    if (!t) {
      if (key.startsWith('head.')) {
        headDropped = true;
        continue;
      }
      missing.push(`"${key}" ${fmtShape(shape)}`);
      continue;
    }
    if (key === 'pos_embed' && !sameShape(t.shape, shape) && t.shape.length === 3 && t.shape[2] === shape[2]) {
      const r = resamplePosEmbed(t, gridOf(cfg));
      notes.push(`pos_embed resampled ${fmtShape(t.shape)} → ${fmtShape(r.shape)} (bicubic)`);
      sd.set(key, r);
      continue;
    }
    if (key.startsWith('head.') && !sameShape(t.shape, shape)) {
      headDropped = true;
      notes.push(`${key} ${fmtShape(t.shape)} does not fit ${cfg.numClasses} classes: dropped`);
      continue;
    }
    if (!sameShape(t.shape, shape)) {
      misShaped.push(`"${key}" has shape ${fmtShape(t.shape)}, ${cfg.name} expects ${fmtShape(shape)}`);
      continue;
    }
    sd.set(key, t);
  }
  if (missing.length || misShaped.length) {
    const parts = [
      missing.length ? `${missing.length} tensor(s) missing: ${missing.join(', ')}` : '',
      misShaped.length ? `${misShaped.length} tensor(s) of another shape: ${misShaped.join('; ')}` : '',
    ].filter(Boolean);
    throw new CompilerError('WEIGHTS_MISMATCH', `${source}: does not fit ${cfg.name}: ${parts.join('; ')} (is this a timm ViT checkpoint for ${cfg.name}? \`edgeprompt info ${source}\` guesses its arch)`);
  }
  if (headDropped) {
    sd.delete('head.weight');
    sd.delete('head.bias');
  }
  const unexpected = [...raw.keys()].filter((k) => !expected.has(k));
  if (unexpected.length) notes.push(`ignored ${unexpected.length} unexpected tensor(s): ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', …' : ''}`);
  return { stateDict: sd, notes, headDropped, metadata };
}

export function loadVitWeights(file: string, cfg: VitConfig): LoadedVit {
  const { tensors, metadata } = readSafetensors(file);
  return adaptVitStateDict(tensors, cfg, file, metadata);
}
