// The backbone + prompt pack form, which users know as the shared backbone (`compile --form shared`,
// manifest `shape: 'shared-backbone'`; docs/artifact.md "Shared backbone and prompt packs"): one .epk whose
// graph takes a task's tensors as inputs (BackboneManifestV1), and per task a small signed .epp
// holding those tensors (PromptPackManifestV1). A pack names the sha256 of the model.onnx it fits;
// `checkPackFits` is the one place that decides whether a pack runs on a backbone, and
// `taskManifest` gives the task view (labels, thresholds) that results are decided and reported with.

import { z } from 'zod';
import { ArtifactError } from './errors.ts';
import { checkLabels, InputSpec, MANIFEST_SCHEMA_VERSION, OutputSpec, Precision, PrecisionMetrics, Release, Sha256, Text, Thresholds, validateWith, type Manifest } from './manifest.ts';
import { DriftReference } from './reference.ts';

/** The symbolic dimension every pack binds to its number of labels. */
export const CLASSES_DIM = 'classes';

const Dim = z.union([z.number().int().min(1), z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a positive integer or a symbolic name')]);

/** A graph input of the backbone that every pack feeds (besides the image). */
export const PackInput = z.object({ name: Text(256), dtype: z.literal('float32'), shape: z.array(Dim).max(8) });
export type PackInput = z.infer<typeof PackInput>;

const Method = z.object({ name: Text(64), options: z.record(z.string(), z.unknown()).default({}) });
const Compiler = z.object({ version: Text(64), ortVersion: Text(64) });

export const BackboneManifestV1 = z
  .object({
    schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION),
    shape: z.literal('shared-backbone'),
    name: Text(128),
    version: Text(64),
    release: Release,
    input: InputSpec,
    /** logits/probs are [N, classes]: the class count comes from the pack. */
    outputs: OutputSpec,
    backbone: z.object({ arch: Text(128), sha256: Sha256 }), // sha256 of the pretrained weights file
    /** The method (and options: prompt count, depth) the graph was cut for; packs of other methods do not fit. */
    method: Method,
    /** What every pack must feed, float32; symbolic dims bind per pack (`classes` = its labels.length). */
    pack: z.object({ inputs: z.array(PackInput).min(1).max(10_000) }),
    precision: Precision,
    compiler: Compiler,
    createdAt: z.iso.datetime({ offset: true }),
    target: Text(64).nullable(),
    model: z.object({ sha256: Sha256, bytes: z.number().int().positive() }),
  })
  .superRefine((m, ctx) => {
    const taken = new Set([m.input.name, m.outputs.logits, m.outputs.probs, ...(m.outputs.embedding ? [m.outputs.embedding] : [])]);
    m.pack.inputs.forEach((p, i) => {
      if (taken.has(p.name)) ctx.addIssue({ code: 'custom', path: ['pack', 'inputs', i, 'name'], message: `${JSON.stringify(p.name)} is used twice (image, outputs and pack inputs must differ)` });
      taken.add(p.name);
    });
  });
export type BackboneManifest = z.output<typeof BackboneManifestV1>;
/** What the compiler fills in: packBackboneArtifact adds schemaVersion, shape and model, and createdAt if omitted. */
export type BackboneManifestDraft = Omit<z.input<typeof BackboneManifestV1>, 'schemaVersion' | 'shape' | 'model' | 'createdAt'> & { createdAt?: string };

export const PromptPackManifestV1 = z
  .object({
    schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION),
    kind: z.literal('prompt-pack'),
    name: Text(128),
    version: Text(64),
    /** Per task (pack name): a device refuses a lower release of the task than it accepted. */
    release: Release,
    labels: z.array(Text(256)).min(1).max(100_000),
    thresholds: Thresholds,
    method: Method,
    /** The shared backbone it fits: `model` is the sha256 of that artifact's model.onnx (its manifest.model.sha256). */
    backbone: z.object({ arch: Text(128), sha256: Sha256, model: Sha256 }),
    prompts: z.object({ sha256: Sha256 }), // the trained tensors as saved
    /** Validation metrics measured on the backbone it fits, per precision measured. */
    metrics: z.partialRecord(Precision, PrecisionMetrics).default({}),
    compiler: Compiler,
    createdAt: z.iso.datetime({ offset: true }),
    /** The tensors.safetensors entry: filled in by packPromptPack, checked by readPromptPack. */
    tensors: z.object({ sha256: Sha256, bytes: z.number().int().positive() }),
    /** The drift reference (reference.ts), measured on the backbone it was compiled with; absent in older packs. */
    reference: DriftReference.optional(),
  })
  .superRefine((m, ctx) => {
    checkLabels(m, ctx);
    if (m.reference && m.reference.classes.length !== m.labels.length) {
      ctx.addIssue({ code: 'custom', path: ['reference', 'classes'], message: `has ${m.reference.classes.length} entries for ${m.labels.length} labels` });
    }
  });
export type PromptPackManifest = z.output<typeof PromptPackManifestV1>;
export type PromptPackDraft = Omit<z.input<typeof PromptPackManifestV1>, 'schemaVersion' | 'kind' | 'tensors' | 'createdAt'> & { createdAt?: string };

export const validateBackboneManifest = (value: unknown, file: string): BackboneManifest => validateWith(BackboneManifestV1, value, file);
export const validatePackManifest = (value: unknown, file: string): PromptPackManifest => validateWith(PromptPackManifestV1, value, file);

/** What checkPackFits reads of a pack and of a backbone. */
export interface PackShape {
  file: string;
  manifest: PromptPackManifest;
  tensors: ReadonlyMap<string, { shape: readonly number[] }>;
}
export interface BackboneShape {
  file: string;
  manifest: BackboneManifest;
}

const fmt = (s: readonly (number | string)[]) => `[${s.join(', ')}]`;

/**
 * Throws PACK_BACKBONE_MISMATCH when the pack was compiled for another backbone graph, and
 * PACK_SHAPE_MISMATCH listing every missing, extra or misshapen tensor otherwise.
 */
export function checkPackFits(pack: PackShape, backbone: BackboneShape): void {
  const want = backbone.manifest.model.sha256;
  const has = pack.manifest.backbone.model;
  if (has !== want) {
    throw new ArtifactError(
      'PACK_BACKBONE_MISMATCH',
      pack.file,
      `fits the shared backbone whose model.onnx has sha256 ${has.slice(0, 16)}… (${pack.manifest.backbone.arch}, ${pack.manifest.method.name}), but ${backbone.file} has ${want.slice(0, 16)}… (${backbone.manifest.backbone.arch}, ${backbone.manifest.method.name}); compile the pack for this backbone (edgeprompt compile --form shared --backbone ${backbone.file} --pack …)`,
      { field: 'backbone.model' },
    );
  }
  const problems: string[] = [];
  const bound = new Map<string, number>([[CLASSES_DIM, pack.manifest.labels.length]]);
  const names = new Set(backbone.manifest.pack.inputs.map((i) => i.name));
  for (const spec of backbone.manifest.pack.inputs) {
    const t = pack.tensors.get(spec.name);
    if (!t) {
      problems.push(`${spec.name} is missing (the backbone takes ${fmt(spec.shape)})`);
      continue;
    }
    const bad = t.shape.length !== spec.shape.length || spec.shape.some((d, i) => {
      const got = t.shape[i]!;
      if (typeof d === 'number') return d !== got;
      if (!bound.has(d)) bound.set(d, got);
      return bound.get(d) !== got;
    });
    if (bad) {
      const classes = spec.shape.includes(CLASSES_DIM) ? ` with ${CLASSES_DIM} = ${pack.manifest.labels.length} labels` : '';
      problems.push(`${spec.name} is ${fmt(t.shape)}, the backbone takes ${fmt(spec.shape)}${classes}`);
    }
  }
  for (const n of pack.tensors.keys()) if (!names.has(n)) problems.push(`${n} is not an input of the backbone`);
  if (problems.length > 0) {
    throw new ArtifactError('PACK_SHAPE_MISMATCH', pack.file, `its tensors do not fit ${backbone.file}: ${problems.join('; ')}; the pack is damaged or was built by another compiler, rebuild it`);
  }
}

/**
 * The task a pack makes of a backbone, as a task manifest: identity, labels, thresholds, method
 * and metrics from the pack; input, outputs, precision, target and model from the backbone. This
 * is what results are decided with (OK/NG) and what thresholds default to.
 */
export function taskManifest(pack: PromptPackManifest, backbone: BackboneManifest): Manifest {
  return {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    name: pack.name,
    version: pack.version,
    release: pack.release,
    labels: pack.labels,
    input: backbone.input,
    outputs: backbone.outputs,
    backbone: { arch: backbone.backbone.arch, sha256: backbone.backbone.sha256 },
    method: pack.method,
    prompts: pack.prompts,
    shape: 'shared-backbone',
    precision: backbone.precision,
    metrics: pack.metrics,
    thresholds: pack.thresholds,
    compiler: pack.compiler,
    createdAt: pack.createdAt,
    target: backbone.target,
    model: backbone.model,
    ...(pack.reference && { reference: pack.reference }),
  };
}
