/**
 * What a training run was trained FOR: everything that determines its tensors (method and
 * resolved options, arch and input size, the backbone's sha256 (and for CLIP its weight source,
 * text config and tokenizer), the data — config and a digest of the images and labels — k-shot,
 * seed, and the merged recipe). A checkpoint stores it; resuming
 * (`train --resume`, `compile`) compares it with the current job and refuses to reuse tensors
 * trained for another job, naming each differing field. Not in it, on purpose: the engine and
 * backend (same maths, other kernels), patience (when to stop, not what is learnt), thresholds,
 * name, version and output (they do not touch the tensors).
 */
import { createHash } from 'node:crypto';
import type { Recipe } from '../methods/method.ts';
import type { Split } from '../data/types.ts';

export interface RunFingerprint {
  version: 1;
  method: { name: string; options: Record<string, unknown> };
  backbone: { arch: string; imgSize: number; sha256: string; /** As the config wrote it; for messages. */ weights: string; /** CLIP: the weight source (activation). */ source?: string };
  /** CLIP tasks: the text side that builds the prompts and classifier (config `text`, the tokenizer file's sha256). */
  text?: { config: unknown; tokenizerSha256: string };
  data: {
    /** The config's data section (defaults filled in). */
    config: unknown;
    kShot: number | null;
    /** sha256 over class names, then every train and validation image with its label. */
    sha256: string;
    classes: string[];
    trainImages: number;
    valImages: number;
  };
  seed: number;
  recipe: Recipe;
}

/** sha256 of a split: class names, then (label, pixels) of every train then validation sample, in order. */
export function splitDigest(split: Split): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(split.train.classes));
  for (const set of [split.train, split.val]) {
    h.update(`|${set.samples.length}|`);
    const label = new Int32Array(1);
    for (const s of set.samples) {
      label[0] = s.label;
      h.update(new Uint8Array(label.buffer));
      h.update(s.image);
    }
  }
  return h.digest('hex');
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? 'unset' : s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/** Leaf values by dotted path (arrays are leaves: they compare as a whole). */
function flatten(v: unknown, prefix: string, out: Map<string, unknown>): Map<string, unknown> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, v);
  return out;
}

function diffAt(prefix: string, saved: unknown, current: unknown): string[] {
  const a = flatten(saved, prefix, new Map());
  const b = flatten(current, prefix, new Map());
  const lines: string[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k))) lines.push(`${k}: ${show(a.get(k))} → ${show(b.get(k))}`);
  }
  return lines;
}

/**
 * One line per field that differs (`path: old → new`), named as the config names it; empty when
 * the run fits. The backbone and the data compare by content: a moved file with the same bytes fits.
 */
export function fingerprintDiff(saved: RunFingerprint, current: RunFingerprint): string[] {
  const lines: string[] = [];
  if (saved.method.name !== current.method.name) lines.push(`method.name: ${show(saved.method.name)} → ${show(current.method.name)}`);
  else lines.push(...diffAt('method.options', saved.method.options, current.method.options));
  lines.push(...diffAt('backbone.arch', saved.backbone.arch, current.backbone.arch));
  lines.push(...diffAt('backbone.imgSize', saved.backbone.imgSize, current.backbone.imgSize));
  lines.push(...diffAt('backbone.source', saved.backbone.source, current.backbone.source));
  lines.push(...diffAt('text', saved.text?.config, current.text?.config));
  if (saved.text?.tokenizerSha256 !== current.text?.tokenizerSha256) lines.push(`backbone.tokenizer: sha256 ${saved.text?.tokenizerSha256.slice(0, 12) ?? 'none'}… → ${current.text?.tokenizerSha256.slice(0, 12) ?? 'none'}…`);
  if (saved.backbone.sha256 !== current.backbone.sha256) {
    const files = saved.backbone.weights === current.backbone.weights ? `${current.backbone.weights} changed` : `${saved.backbone.weights} → ${current.backbone.weights}`;
    lines.push(`backbone.weights: sha256 ${saved.backbone.sha256.slice(0, 12)}… → ${current.backbone.sha256.slice(0, 12)}… (${files})`);
  }
  if (saved.data.sha256 !== current.data.sha256) {
    const config = diffAt('data', saved.data.config, current.data.config);
    const d = (f: RunFingerprint['data']) => `${f.trainImages} train / ${f.valImages} val images, sha256 ${f.sha256.slice(0, 12)}…`;
    lines.push(...(config.length ? config : [`data: the images or labels differ (${d(saved.data)} → ${d(current.data)})`]));
  }
  lines.push(...diffAt('kShot', saved.data.kShot, current.data.kShot));
  lines.push(...diffAt('seed', saved.seed, current.seed));
  lines.push(...diffAt('recipe', saved.recipe, current.recipe));
  return lines;
}
