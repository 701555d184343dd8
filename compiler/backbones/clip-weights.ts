/**
 * CLIP weights from either name scheme in circulation, mapped in ONE table onto our names
 * (docs/spec/clip.md#tensor-names):
 * - OpenAI / open_clip (`visual.conv1.weight`, packed `attn.in_proj_weight`, `x @ proj`);
 * - Hugging Face `CLIPModel` (`vision_model.…`, separate q/k/v, projections stored as Pᵀ);
 * - ours: the image tower in timm's CLIP layout (`patch_embed.proj.weight`, `norm_pre`,
 *   `blocks.{i}.attn.qkv`, `norm`), `image_proj.weight` [E, D], the text tower under `text.`
 *   with the same block names, `text.proj.weight` [E, W], and `logit_scale`. Linear weights
 *   are [out, in] throughout, so projections are stored transposed relative to OpenAI's.
 *
 * Non-weight keys are dropped (OpenAI JIT's `input_resolution`, `context_length`,
 * `vocab_size`; HF's `*.position_ids`); every missing or mis-shaped tensor is named in one error.
 * The activation comes from the weight source (CLIP_WEIGHT_SOURCES), never from the arch.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CompilerError } from '../ops/errors.ts';
import { type HostTensor, fmtShape, numel, sameShape } from '../ops/host-tensor.ts';
import { readSafetensors, type StateDict } from './safetensors.ts';
import { type ClipConfig, clipConfig, CLIP_VARIANTS } from './clip-variants.ts';

export type ClipScheme = 'openai' | 'hf' | 'ours';
export type ClipAct = 'gelu' | 'quick_gelu';

/**
 * Where weights come from decides the MLP activation: every OpenAI checkpoint (and Hugging Face's
 * conversions of them) was trained with QuickGELU; LAION's open_clip weights with exact GELU.
 */
export const CLIP_WEIGHT_SOURCES: Record<string, { act: ClipAct; what: string }> = {
  openai: { act: 'quick_gelu', what: 'OpenAI CLIP checkpoints and their Hugging Face conversions' },
  laion: { act: 'gelu', what: 'LAION open_clip checkpoints' },
};

/** How a source tensor becomes ours: copied (reshaped), transposed, or q/k/v concatenated on dim 0. */
type Map1 = 'copy' | 'transpose';
interface Row {
  ours: string;
  shape: number[];
  openai: { key: string; shape: number[]; map: Map1 };
  /** One key, or three (q, k, v) concatenated along dim 0. */
  hf: { keys: string[]; shape: number[]; map: Map1 | 'concat' };
}

/** Keys that carry no weight and are dropped silently. */
const NON_WEIGHT = [/^input_resolution$/, /^context_length$/, /^vocab_size$/, /position_ids$/, /(^|\.)attn_mask$/];

function blockRows(rows: Row[], ours: string, oa: string, hf: string, D: number): void {
  const M = 4 * D;
  const names: [string, string, string, number[]][] = [
    ['norm1.weight', 'ln_1.weight', 'layer_norm1.weight', [D]],
    ['norm1.bias', 'ln_1.bias', 'layer_norm1.bias', [D]],
    ['attn.proj.weight', 'attn.out_proj.weight', 'self_attn.out_proj.weight', [D, D]],
    ['attn.proj.bias', 'attn.out_proj.bias', 'self_attn.out_proj.bias', [D]],
    ['norm2.weight', 'ln_2.weight', 'layer_norm2.weight', [D]],
    ['norm2.bias', 'ln_2.bias', 'layer_norm2.bias', [D]],
    ['mlp.fc1.weight', 'mlp.c_fc.weight', 'mlp.fc1.weight', [M, D]],
    ['mlp.fc1.bias', 'mlp.c_fc.bias', 'mlp.fc1.bias', [M]],
    ['mlp.fc2.weight', 'mlp.c_proj.weight', 'mlp.fc2.weight', [D, M]],
    ['mlp.fc2.bias', 'mlp.c_proj.bias', 'mlp.fc2.bias', [D]],
  ];
  for (const [o, a, h, s] of names) rows.push({ ours: `${ours}.${o}`, shape: s, openai: { key: `${oa}.${a}`, shape: s, map: 'copy' }, hf: { keys: [`${hf}.${h}`], shape: s, map: 'copy' } });
  // Packed q, k, v in that order (OpenAI in_proj, timm qkv) = HF's three projections stacked.
  rows.push({ ours: `${ours}.attn.qkv.weight`, shape: [3 * D, D], openai: { key: `${oa}.attn.in_proj_weight`, shape: [3 * D, D], map: 'copy' }, hf: { keys: ['q', 'k', 'v'].map((x) => `${hf}.self_attn.${x}_proj.weight`), shape: [D, D], map: 'concat' } });
  rows.push({ ours: `${ours}.attn.qkv.bias`, shape: [3 * D], openai: { key: `${oa}.attn.in_proj_bias`, shape: [3 * D], map: 'copy' }, hf: { keys: ['q', 'k', 'v'].map((x) => `${hf}.self_attn.${x}_proj.bias`), shape: [D], map: 'concat' } });
}

/** The one table: every tensor of a CLIP model under our name and both foreign schemes, with shapes. */
export function clipNameTable(c: ClipConfig): Row[] {
  const v = c.vision;
  const D = v.embedDim;
  const p = v.patchSize;
  const T = (v.imgSize / p) ** 2 + 1;
  const { width: W, contextLength: L, vocabSize: V } = c.text;
  const E = c.embedDim;
  const rows: Row[] = [];
  const row = (ours: string, shape: number[], oa: string, oaShape: number[], oaMap: Map1, hf: string, hfShape: number[], hfMap: Map1) =>
    rows.push({ ours, shape, openai: { key: oa, shape: oaShape, map: oaMap }, hf: { keys: [hf], shape: hfShape, map: hfMap } });
  const ln = (ours: string, oa: string, hf: string, d: number) => {
    row(`${ours}.weight`, [d], `${oa}.weight`, [d], 'copy', `${hf}.weight`, [d], 'copy');
    row(`${ours}.bias`, [d], `${oa}.bias`, [d], 'copy', `${hf}.bias`, [d], 'copy');
  };
  // Image tower.
  row('patch_embed.proj.weight', [D, 3, p, p], 'visual.conv1.weight', [D, 3, p, p], 'copy', 'vision_model.embeddings.patch_embedding.weight', [D, 3, p, p], 'copy');
  row('cls_token', [1, 1, D], 'visual.class_embedding', [D], 'copy', 'vision_model.embeddings.class_embedding', [D], 'copy');
  row('pos_embed', [1, T, D], 'visual.positional_embedding', [T, D], 'copy', 'vision_model.embeddings.position_embedding.weight', [T, D], 'copy');
  ln('norm_pre', 'visual.ln_pre', 'vision_model.pre_layrnorm', D); // HF's spelling
  for (let i = 0; i < v.depth; i++) blockRows(rows, `blocks.${i}`, `visual.transformer.resblocks.${i}`, `vision_model.encoder.layers.${i}`, D);
  ln('norm', 'visual.ln_post', 'vision_model.post_layernorm', D);
  row('image_proj.weight', [E, D], 'visual.proj', [D, E], 'transpose', 'visual_projection.weight', [E, D], 'copy');
  // Text tower.
  row('text.token_embedding.weight', [V, W], 'token_embedding.weight', [V, W], 'copy', 'text_model.embeddings.token_embedding.weight', [V, W], 'copy');
  row('text.pos_embed', [L, W], 'positional_embedding', [L, W], 'copy', 'text_model.embeddings.position_embedding.weight', [L, W], 'copy');
  for (let i = 0; i < c.text.depth; i++) blockRows(rows, `text.blocks.${i}`, `transformer.resblocks.${i}`, `text_model.encoder.layers.${i}`, W);
  ln('text.norm', 'ln_final', 'text_model.final_layer_norm', W);
  row('text.proj.weight', [E, W], 'text_projection', [W, E], 'transpose', 'text_projection.weight', [E, W], 'copy');
  row('logit_scale', [], 'logit_scale', [], 'copy', 'logit_scale', [], 'copy');
  return rows;
}

/** Tensor shapes under our names (parameter counts, structure tests). */
export function clipTensorShapes(c: ClipConfig): Map<string, number[]> {
  return new Map(clipNameTable(c).map((r) => [r.ours, r.shape]));
}

export const countParams = (shapes: Map<string, number[]>): number => [...shapes.values()].reduce((s, sh) => s + numel(sh), 0);

/** Which scheme a state dict uses, by a telltale key (null: none of the three). */
export function detectClipScheme(keys: Iterable<string>): ClipScheme | null {
  const set = new Set(keys);
  if (set.has('visual.conv1.weight')) return 'openai';
  if (set.has('vision_model.embeddings.patch_embedding.weight')) return 'hf';
  if (set.has('patch_embed.proj.weight') && set.has('text.token_embedding.weight')) return 'ours';
  return null;
}

/** Which CLIP arch of the table a state dict fits, by shapes alone (for `edgeprompt info`). */
export function guessClipArch(raw: StateDict): string | null {
  const scheme = detectClipScheme(raw.keys());
  if (!scheme) return null;
  const what = scheme === 'hf' ? 'Hugging Face CLIPModel names' : scheme === 'openai' ? 'OpenAI/open_clip names' : 'EdgePrompt names';
  const fits = (arch: string) =>
    clipNameTable(clipConfig(arch, 'gelu')).every((r) => {
      const src = scheme === 'ours' ? [{ key: r.ours, shape: r.shape }] : scheme === 'openai' ? [r.openai] : r.hf.keys.map((key) => ({ key, shape: r.hf.shape }));
      return src.every((s) => {
        const t = raw.get(s.key);
        return t !== undefined && (sameShape(t.shape, s.shape) || (s.shape.length === 0 && numel(t.shape) === 1));
      });
    });
  const arch = Object.keys(CLIP_VARIANTS).find(fits);
  return arch ? `CLIP ${arch} (${what})` : `CLIP weights (${what}) of an arch not in the table (${Object.keys(CLIP_VARIANTS).join(', ')})`;
}

function transpose2d(t: HostTensor): Float32Array {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return out;
}

/**
 * Map a state dict in any scheme onto our names, checking every shape. All problems are
 * collected first so one error names every missing or mis-shaped tensor.
 */
export function convertClipStateDict(raw: StateDict, c: ClipConfig, source: string): { stateDict: StateDict; scheme: ClipScheme; notes: string[] } {
  const scheme = detectClipScheme(raw.keys());
  if (!scheme) {
    const some = [...raw.keys()].slice(0, 4).join(', ');
    throw new CompilerError('BAD_FILE', `${source}: unknown CLIP weight layout (keys like ${some || 'none'}); expected OpenAI/open_clip names (visual.conv1.weight, …), Hugging Face CLIPModel names (vision_model.embeddings.patch_embedding.weight, …) or EdgePrompt names (patch_embed.proj.weight + text.token_embedding.weight)`);
  }
  const sd: StateDict = new Map();
  const problems: string[] = [];
  const used = new Set<string>();
  for (const r of clipNameTable(c)) {
    if (scheme === 'ours') {
      const t = raw.get(r.ours);
      used.add(r.ours);
      if (!t) problems.push(`missing "${r.ours}" ${fmtShape(r.shape)}`);
      else if (!sameShape(t.shape, r.shape)) problems.push(`"${r.ours}" is ${fmtShape(t.shape)}, expected ${fmtShape(r.shape)}`);
      else sd.set(r.ours, t);
      continue;
    }
    const src = scheme === 'openai' ? { keys: [r.openai.key], shape: r.openai.shape, map: r.openai.map as Map1 | 'concat' } : r.hf;
    const parts: HostTensor[] = [];
    for (const k of src.keys) {
      used.add(k);
      const t = raw.get(k);
      if (!t) problems.push(`missing "${k}" ${fmtShape(src.shape)}`);
      else if (!sameShape(t.shape, src.shape) && !(src.shape.length === 0 && numel(t.shape) === 1)) problems.push(`"${k}" is ${fmtShape(t.shape)}, expected ${fmtShape(src.shape)}`);
      else parts.push(t);
    }
    if (parts.length !== src.keys.length) continue;
    let data: Float32Array;
    if (src.map === 'transpose') data = transpose2d(parts[0]!);
    else if (src.map === 'concat') {
      data = new Float32Array(numel(r.shape));
      let at = 0;
      for (const t of parts) {
        data.set(t.data, at);
        at += t.data.length;
      }
    } else data = parts[0]!.data;
    sd.set(r.ours, { shape: r.shape, data });
  }
  if (problems.length) {
    throw new CompilerError('WEIGHTS_MISMATCH', `${source}: ${problems.length} tensor(s) do not fit ${c.name} (${scheme === 'hf' ? 'Hugging Face' : scheme === 'openai' ? 'OpenAI/open_clip' : 'EdgePrompt'} names): ${problems.join('; ')}`);
  }
  const ignored = [...raw.keys()].filter((k) => !used.has(k) && !NON_WEIGHT.some((re) => re.test(k)));
  const notes = ignored.length ? [`ignored ${ignored.length} unexpected tensor(s): ${ignored.slice(0, 5).join(', ')}${ignored.length > 5 ? ', …' : ''}`] : [];
  return { stateDict: sd, scheme, notes };
}

/**
 * The activation of a weight file: an explicit source wins; then our own metadata
 * (`clip.act`); then a Hugging Face `config.json` beside the file (`hidden_act` of either
 * tower); otherwise the caller must say which source the weights come from.
 */
export function resolveClipAct(file: string, metadata: Record<string, string>, source: string | undefined): { act: ClipAct; why: string } {
  if (source !== undefined) {
    const s = CLIP_WEIGHT_SOURCES[source];
    if (!s) throw new CompilerError('CONFIG_INVALID', `backbone.source: unknown CLIP weight source "${source}"; known: ${Object.keys(CLIP_WEIGHT_SOURCES).join(', ')}`);
    return { act: s.act, why: `backbone.source ${source}` };
  }
  const meta = metadata['clip.act'];
  if (meta === 'gelu' || meta === 'quick_gelu') return { act: meta, why: `${file} metadata clip.act` };
  const cfgFile = join(dirname(file), 'config.json');
  if (existsSync(cfgFile)) {
    try {
      const j = JSON.parse(readFileSync(cfgFile, 'utf8')) as { text_config?: { hidden_act?: string }; vision_config?: { hidden_act?: string } };
      const act = j.vision_config?.hidden_act ?? j.text_config?.hidden_act;
      if (act === 'gelu' || act === 'quick_gelu') return { act, why: `${cfgFile} hidden_act` };
    } catch {
      // not a CLIP config.json: fall through to the error below
    }
  }
  throw new CompilerError('CONFIG_INVALID', `${file}: cannot tell which activation these CLIP weights use; set backbone.source to ${Object.entries(CLIP_WEIGHT_SOURCES).map(([k, v]) => `"${k}" (${v.act}: ${v.what})`).join(' or ')}`);
}

export interface LoadedClip {
  cfg: ClipConfig;
  /** Every tensor under our names (the image tower in timm keys, the text tower under `text.`). */
  stateDict: StateDict;
  scheme: ClipScheme;
  notes: string[];
  metadata: Record<string, string>;
}

export function loadClipWeights(file: string, arch: string, source?: string): LoadedClip {
  if (!(arch in CLIP_VARIANTS)) throw new CompilerError('UNKNOWN_ARCH', `unknown CLIP arch "${arch}"; known: ${Object.keys(CLIP_VARIANTS).join(', ')}`);
  const { tensors, metadata } = readSafetensors(file);
  const { act, why } = resolveClipAct(file, metadata, source);
  const cfg = clipConfig(arch, act);
  const { stateDict, scheme, notes } = convertClipStateDict(tensors, cfg, file);
  return { cfg, stateDict, scheme, notes: [`activation ${act} (${why})`, ...notes], metadata };
}
