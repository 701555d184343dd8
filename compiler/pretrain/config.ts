/**
 * The pretraining config (configs/pretrain/*.yaml): the architecture, where the weights start,
 * the mixture of sources (each with its own label space, objective and sampling weight), the
 * held-out line the mixture must not touch, the recipe and the output. One schema; defaults here,
 * then the file, then `--set` / flags.
 */
import { z } from 'zod';
import { applyOverrides, fieldError, readYaml, validate } from '../config/load.ts';
import { LINE_LIGHTINGS, LINE_POSES, MATERIAL_NAMES, PART_CLASSES, PART_KINDS } from '../data/parts-scene.ts';
import { OBJECTIVES } from './objective-types.ts';
import { DEFAULT_TEMPLATES } from './captions.ts';

const int = z.number().int();
const positive = int.positive();
const sourceName = z.string().regex(/^[a-z][a-z0-9_]*$/, 'use lower-case letters, digits and "_" (it names tensors: heads.<name>.weight)');

const common = {
  name: sourceName,
  weight: z.number().positive().describe('share of each epoch drawn from this source (normalised over sources)'),
  objective: z.enum(OBJECTIVES).default('classify'),
};

export const partsSource = z.strictObject({
  ...common,
  kind: z.literal('parts'),
  designs: z.array(z.enum(PART_KINDS)).min(1).describe('part designs; every design × finish pair is one line'),
  finishes: z.array(z.enum(MATERIAL_NAMES)).min(1),
  pose: z.enum(LINE_POSES).default('fixtured'),
  lighting: z.enum(LINE_LIGHTINGS).default('line'),
  classes: z.array(z.enum(PART_CLASSES)).min(2).optional().describe('defect classes to pretrain on (default all; leave one out for the stricter variant)'),
  patches: z.number().min(0).default(0).describe('weight of the patch-level term: every patch token classified as the defect it shows, or ok (0: off)'),
  perClass: positive.describe('training images per class and line'),
  valPerClass: positive.default(20).describe('validation images per class and line (another seed)'),
  seed: int.default(0),
});

export const fashionMnistSource = z.strictObject({
  ...common,
  kind: z.literal('fashion-mnist'),
  root: z.string().default('/usr/share/datasets/fashion-mnist'),
  classes: z.array(int.min(0).max(9)).min(2),
  limitPerClass: positive.optional(),
  valLimitPerClass: positive.default(200),
});

export const imageFolderSource = z.strictObject({
  ...common,
  kind: z.literal('image-folder'),
  root: z.string(),
  valFraction: z.number().gt(0).lt(1).default(0.1),
});

/**
 * Image–caption pairs for the contrastive objective (compiler/pretrain/captions.ts): generated
 * parts captioned by design, finish and defect, and Fashion-MNIST captioned by class name.
 */
export const captionsSource = z.strictObject({
  ...common,
  kind: z.literal('captions'),
  objective: z.literal('contrastive').default('contrastive'),
  parts: z
    .strictObject({
      designs: z.array(z.enum(PART_KINDS)).min(1),
      finishes: z.array(z.enum(MATERIAL_NAMES)).min(1),
      classes: z.array(z.enum(PART_CLASSES)).min(2).optional(),
      pose: z.enum(LINE_POSES).default('fixtured'),
      lighting: z.enum(LINE_LIGHTINGS).default('line'),
      perClass: positive,
      valPerClass: positive.default(10),
      seed: int.default(0),
    })
    .optional(),
  fashionMnist: z
    .strictObject({
      root: z.string().default('/usr/share/datasets/fashion-mnist'),
      classes: z.array(int.min(0).max(9)).min(1),
      limitPerClass: positive.optional(),
      valLimitPerClass: positive.default(100),
    })
    .optional(),
  withhold: z.array(z.string().regex(/^[a-z-]+\/[a-z-]+\/[a-z_]+$/, 'write design/finish/defect, e.g. hex/brass/scratch')).default([]).describe('design/finish/defect triples never captioned (zero-shot on them measures composition)'),
  templates: z
    .strictObject({
      parts: z.array(z.string().regex(/\{defect\}/, 'a parts template needs {design}, {finish} and {defect}').regex(/\{design\}/).regex(/\{finish\}/)).min(1),
      garments: z.array(z.string().regex(/\{\}/, 'a garment template needs {}')).min(1),
    })
    .default(DEFAULT_TEMPLATES),
});

export const sourceConfig = z.discriminatedUnion('kind', [partsSource, fashionMnistSource, imageFolderSource, captionsSource]);
export type SourceConfig = z.infer<typeof sourceConfig>;

export const probeLine = z.strictObject({
  part: z.enum(PART_KINDS),
  material: z.enum(MATERIAL_NAMES),
  perClass: positive.default(100).describe('probe training images per class'),
  valPerClass: positive.default(100),
  seed: int.default(1000),
  every: int.min(0).default(1).describe('probe every N epochs (0: only after the last)'),
});

export const pretrainConfig = z.strictObject({
  name: z.string().regex(/^[\w.-]+$/, 'use letters, digits, "_", "-", "."'),
  arch: z.string().describe('a registered ViT variant (compiler/backbones/vit-variants.ts) or CLIP variant (clip-variants.ts)'),
  tokenizer: z.string().optional().describe('CLIP archs: the tokenizer.json of the text tower (captions sources)'),
  init: z
    .strictObject({
      weights: z.string().optional().describe('start from this timm .safetensors instead of random init'),
      heads: z.string().optional().describe('per-source heads of a previous pretrain run (<name>.heads.safetensors)'),
    })
    .default({}),
  sources: z.array(sourceConfig).min(1),
  heldOut: probeLine
    .optional()
    .describe('the benchmark line: no source may draw its design or finish; a linear probe on frozen features tracks it (reported, never used to choose)'),
  validation: probeLine
    .optional()
    .describe('a validation line (neither a pretraining line nor the benchmark line, no source draws its design or finish): its probe after each epoch chooses the published epoch'),
  samplesPerEpoch: positive.describe('images drawn from the mixture per epoch'),
  recipe: z.strictObject({
    epochs: positive,
    batchSize: positive.default(128),
    lr: z.number().positive().default(1e-3),
    weightDecay: z.number().min(0).default(0.05),
    warmupEpochs: int.min(0).default(1),
    labelSmoothing: z.number().min(0).lt(1).default(0.1),
    augment: z
      .strictObject({
        cropScale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).optional().describe('random resized crop area range; absent: no crop (not with patch-level terms: a crop would move the defect cells)'),
        hflip: z.boolean().default(true),
        colour: z.number().min(0).max(1).default(0).describe('colour augmentation strength: a random hue rotation (±180°·s), saturation (×[1−s, 1+s]) and brightness (×[1−0.4s, 1+0.4s]) per image (compiler/data/colour-jitter.ts); 0: off'),
      })
      .default({ hflip: true, colour: 0 }),
  }),
  seed: int.default(0),
  engine: z.enum(['tfjs', 'ort', 'auto']).default('ort'),
  backend: z.enum(['auto', 'gpu', 'node', 'wasm', 'cpu']).default('auto'),
  cacheDir: z.string().default('../../.cache/pretrain-data').describe('rendered parts lines are kept here (relative to the config file)'),
  output: z.strictObject({
    dir: z.string().describe('checkpoints, report.html and (unless weightsDir) the weights and card'),
    weightsDir: z.string().optional().describe('where <name>.safetensors, <name>.heads.safetensors and <name>.json go'),
    standardise: int
      .min(0)
      .default(2048)
      .describe("centre and scale the published backbone's output features over this many of the sources' training images, folded into the final norm and the heads (compiler/pretrain/standardize.ts); 0: publish the final norm as trained"),
  }),
});

export type PretrainConfig = z.infer<typeof pretrainConfig>;

const KINDS = sourceConfig.options.map((o) => o.shape.kind.value);

export function loadPretrainConfig(file: string, sets: readonly string[] = []): PretrainConfig {
  const raw = applyOverrides(readYaml(file), sets);
  // An unknown source kind gets its own line (zod's union error would only say "invalid input").
  const list = (raw as { sources?: unknown }).sources;
  if (Array.isArray(list)) {
    list.forEach((s: unknown, i) => {
      const kind = (s as { kind?: unknown } | null)?.kind;
      if (typeof kind === 'string' && !KINDS.includes(kind as never)) throw fieldError(file, `sources.${i}.kind`, `unknown source kind "${kind}"; known: ${KINDS.join(', ')}`, 'pretrain config');
    });
    const names = list.map((s: unknown) => (s as { name?: unknown } | null)?.name);
    const dup = names.find((n, i) => typeof n === 'string' && names.indexOf(n) !== i);
    if (dup) throw fieldError(file, 'sources', `two sources are named "${String(dup)}"; each source needs its own name (it names its head)`, 'pretrain config');
  }
  return validate(pretrainConfig, raw, file, 'pretrain config', { sets });
}
