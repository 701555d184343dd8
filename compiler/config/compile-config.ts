/**
 * The compile config (configs/*.yaml): backbone, data, method, recipe, gates, output. One schema
 * in code; defaults come from the method's recipe, then the file, then `--set`/flags. The
 * method's own options and the arch are checked when the file loads, before any data or weights
 * are read, and every problem is reported at once.
 */
import { z } from 'zod';
import { readYaml, applyOverrides, validate } from './load.ts';
import { MATERIAL_NAMES, PART_KINDS } from '../data/parts-scene.ts';
import { METHODS } from '../methods/registry.ts';
import { VIT_VARIANTS } from '../backbones/vit-variants.ts';
import { CLIP_VARIANTS } from '../backbones/clip-variants.ts';
import { CompilerError } from '../ops/errors.ts';
import { fieldIssues, hintOrKnown, type FieldIssue } from '../../devices/config-issues.ts';
import { DEFAULT_TEMPLATES } from '../text/prompts.ts';

const int = z.number().int();
const positive = int.positive();

export const dataConfig = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('fashion-mnist'),
    root: z.string().default('/usr/share/datasets/fashion-mnist'),
    classes: z.array(int.min(0).max(9)).min(2).default([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).describe('class subset, relabelled 0..n-1 in this order'),
    limitPerClass: positive.optional().describe('cap training images per class (fast runs)'),
    valLimitPerClass: positive.optional().describe('cap validation (test-split) images per class'),
  }),
  z.strictObject({
    kind: z.literal('parts'),
    dir: z.string().optional().describe('a folder made by `edgeprompt data make-parts`; generated in memory when absent'),
    perClass: positive.default(200),
    size: positive.default(32),
    renderSize: positive.optional().describe('draw at this size, then resize to `size` (as a camera image scaled down)'),
    seed: int.default(0),
    part: z.enum(PART_KINDS).default('plate').describe('the part design on this line'),
    material: z.enum(MATERIAL_NAMES).default('steel').describe("its finish; 'mixed': any finish per item"),
    valFraction: z.number().gt(0).lt(1).default(0.25),
  }),
  z.strictObject({
    kind: z.literal('image-folder'),
    root: z.string(),
    split: z.union([z.literal('folder'), z.number().gt(0).lt(1)]).default(0.2).describe("'folder' (root/train, root/val) or a validation fraction"),
  }),
]);

export const compileConfig = z.strictObject({
  name: z.string().regex(/^[\w.-]+$/, 'use letters, digits, "_", "-", "."'),
  backbone: z.strictObject({
    arch: z.string(),
    weights: z.string().describe('timm-named .safetensors; for clip_* archs OpenAI/open_clip, Hugging Face CLIPModel or EdgePrompt names'),
    imgSize: positive.optional().describe('input side in pixels when it differs from the arch (position embeddings are resampled, as timm does)'),
    tokenizer: z.string().optional().describe('CLIP only: the Hugging Face tokenizer.json the weights were trained with'),
    source: z.enum(['openai', 'laion']).optional().describe("CLIP only: where the weights come from, which decides the activation (openai: QuickGELU, laion: GELU); needed unless the file's metadata or a config.json beside it says"),
  }),
  text: z
    .strictObject({
      templates: z.array(z.string()).min(1).default([...DEFAULT_TEMPLATES]).describe('CLIP only: zero-shot prompt templates, "{}" is the class name'),
      classNames: z.array(z.string()).min(2).optional().describe("CLIP only: the words for each class, in label order (default: the data's class names)"),
    })
    .default({ templates: [...DEFAULT_TEMPLATES] }),
  data: dataConfig,
  site: z
    .strictObject({
      dirs: z.array(z.string()).min(1).describe('folders written by `edgeprompt data export` (frames from the line with their labels)'),
      share: z.number().gt(0).lt(1).nullable().default(null).describe('share of the training images drawn from site frames (they are repeated to reach it); null: each once'),
      valFraction: z.number().min(0).lt(1).default(0.25).describe('site frames held out per class, added to the validation set'),
    })
    .optional()
    .describe('frames from the line beside the training data (docs/data-loop.md "Re-tune")'),
  kShot: positive.optional().describe('sample k training images per class (seeded; the original data only, not site frames)'),
  method: z.strictObject({
    name: z.string(),
    options: z.record(z.string(), z.unknown()).default({}),
  }),
  recipe: z
    .strictObject({
      epochs: positive.optional(),
      batchSize: positive.optional(),
      warmupEpochs: int.min(0).optional(),
      warmupLr: z.number().positive().optional().describe('a constant lr for the warmup epochs, then cosine over all epochs (Dassl; CoOp and DAPT default 1e-5)'),
      labelSmoothing: z.number().min(0).lt(1).optional(),
      patience: int.min(0).default(0).describe('early stop after this many epochs without a better val top-1 (0: off)'),
      optimizer: z
        .strictObject({
          kind: z.enum(['sgd', 'adamw']).optional(),
          lr: z.number().positive().optional(),
          momentum: z.number().min(0).lt(1).optional(),
          weightDecay: z.number().min(0).optional(),
          scaleLrByBatch: z.boolean().optional(),
        })
        .default({}),
      augment: z.strictObject({ randomResizedCrop: z.boolean().optional(), hflip: z.boolean().optional() }).default({}),
    })
    .default({ patience: 0, optimizer: {}, augment: {} }),
  seed: int.default(0),
  /**
   * What the device decides with (manifest thresholds). With okLabels the model inspects parts:
   * pass when the top label is an OK label and Σ p(okLabels) ≥ minConfidence (parts data defaults
   * to okLabels [ok]); without, OK when the top score ≥ minConfidence.
   */
  thresholds: z.strictObject({ okLabels: z.array(z.string()).min(1).optional(), minConfidence: z.number().min(0).max(1).default(0.5) }).default({ minConfidence: 0.5 }),
  /** What compile refuses to ship (compiler/export/gates.ts). */
  gates: z
    .strictObject({
      minTop1: z.number().min(0).max(1).optional().describe('validation top-1 (0..1) below which compile refuses the model unless --allow-weak; default chance + 0.25 (1/classes + 0.25)'),
    })
    .default({}),
  version: z.string().default('1.0.0').describe('artifact version written into the manifest'),
  release: int.min(0).default(0).describe('release number written into the manifest: monotonic per model (per task for prompt packs); devices refuse a deployment of a lower release (docs/deploy.md)'),
  engine: z.enum(['tfjs', 'ort', 'auto']).default('auto').describe("training engine: 'ort' runs whole steps in onnxruntime (compiler/train/engine-ort.ts), 'tfjs' through TfOps; 'auto' picks ort when its training graph builds and says why otherwise"),
  backend: z.enum(['auto', 'gpu', 'node', 'wasm', 'cpu']).default('auto'),
  output: z.strictObject({ dir: z.string() }),
});

export type CompileConfig = z.infer<typeof compileConfig>;
export type DataConfig = z.infer<typeof dataConfig>;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** What the schema cannot see: the arch is one we know, the method exists and its options fit it. */
function jobIssues(raw: unknown): FieldIssue[] {
  if (!isObject(raw)) return [];
  const issues: FieldIssue[] = [];
  const arch = isObject(raw.backbone) ? raw.backbone.arch : undefined;
  const archs = [...Object.keys(VIT_VARIANTS), ...Object.keys(CLIP_VARIANTS)];
  if (typeof arch === 'string' && !archs.includes(arch)) issues.push({ field: 'backbone.arch', message: `unknown arch ${JSON.stringify(arch)}${hintOrKnown(arch, archs)}` });
  const m = raw.method;
  if (!isObject(m) || typeof m.name !== 'string') return issues;
  const method = METHODS[m.name];
  const names = Object.keys(METHODS);
  if (!method) return [...issues, { field: 'method.name', message: `unknown method ${JSON.stringify(m.name)}${hintOrKnown(m.name, names)}` }];
  const options = m.options ?? {};
  if (!isObject(options)) return issues; // the schema reports it
  try {
    method.resolveOptions(options as never);
  } catch (e) {
    if (e instanceof z.ZodError) return [...issues, ...fieldIssues(e, 'method.options', method.optionsSchema, options)];
    if (e instanceof CompilerError) return [...issues, { field: 'method.options', message: e.message }];
    throw e;
  }
  return issues;
}

export function loadCompileConfig(file: string, sets: readonly string[] = []): CompileConfig {
  return validate(compileConfig, applyOverrides(readYaml(file), sets), file, 'compile config', { sets, more: jobIssues });
}

/** The class every generated parts set calls a good part. */
export const PARTS_OK_LABEL = 'ok';

/**
 * The manifest thresholds of a config. A parts task inspects: without okLabels every label would
 * count as a good part (a confident `dent` would pass), so parts data defaults to okLabels [ok].
 */
export function thresholdsOf(config: CompileConfig): { minConfidence: number; okLabels?: string[] } {
  const okLabels = config.thresholds.okLabels ?? (config.data.kind === 'parts' ? [PARTS_OK_LABEL] : undefined);
  return { minConfidence: config.thresholds.minConfidence, ...(okLabels ? { okLabels } : {}) };
}
