// The artifact manifest: ONE versioned zod schema, written by the compiler (through packArtifact)
// and read by the runtime. Parsing is lenient about unknown fields (a newer compiler may add one
// without breaking older devices; the signature still covers the exact bytes), strict about
// everything the runtime relies on.
//
// OK/NG rule (thresholds): a prediction is OK when its label is one of `okLabels` (every label when
// omitted) AND its score (softmax probability) is at least `minConfidence`; anything else is NG.
// So an uncertain "good part" is NG: the fail-safe direction on a production line. The device may
// override minConfidence per camera at run time (MQTT `set-threshold`), never okLabels.

import { z } from 'zod';
import { fieldIssues, issueReport } from '../../devices/config-issues.ts';
import { ArtifactError } from './errors.ts';
import { DriftReference } from './reference.ts';

export const MANIFEST_SCHEMA_VERSION = 1 as const;
export const PRECISIONS = ['fp32', 'fp16', 'int8'] as const;
export const Precision = z.enum(PRECISIONS);
export type Precision = z.infer<typeof Precision>;

export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256: 64 lowercase hex characters');
export const Text = (max: number) => z.string().min(1).max(max);
/**
 * The release number: monotonic per model name (per task name for prompt packs), set at compile
 * time (compile config `release`, or `--release`). Devices refuse a deployment of a lower release
 * than the highest they accepted (docs/deploy.md). Absent in artifacts built before it existed: 0.
 */
export const Release = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).default(0);
const Probability = z.number().min(0).max(1);

/** What the model takes: uint8 RGB NHWC at the model's size (normalisation is inside the graph). */
export const InputSpec = z.object({
  name: Text(128), // graph input name, e.g. 'image'
  height: z.number().int().min(1).max(8192),
  width: z.number().int().min(1).max(8192),
  channels: z.literal(3),
  layout: z.literal('NHWC'),
  dtype: z.literal('uint8'),
  /** How a camera image of another aspect ratio is brought to width×height (the camera does it). */
  resize: z.enum(['stretch', 'center-crop']),
});

/** Graph output names: logits and probs are [N, C] float32 with C = labels.length. */
export const OutputSpec = z.object({
  logits: Text(128),
  probs: Text(128),
  embedding: Text(128).optional(), // [N, D] CLS embedding, for drift monitoring
});

/** Validation metrics of one precision, measured by the compiler. Extra numeric metrics are kept. */
export const PrecisionMetrics = z
  .object({
    top1: Probability, // validation top-1 accuracy, 0..1
    maxLogitDiff: z.number().nonnegative(), // max |logit - fp32 tfjs logit| over the validation set
    samples: z.number().int().nonnegative().optional(),
  })
  .catchall(z.number());
export type PrecisionMetrics = z.infer<typeof PrecisionMetrics>;

export const Thresholds = z.object({
  /** Labels that count as a good part; omitted = every label (then only low confidence is NG). */
  okLabels: z.array(Text(256)).min(1).optional(),
  /** A prediction scoring below this is NG whatever its label. */
  minConfidence: Probability,
});
export type ManifestThresholds = z.infer<typeof Thresholds>;

export const ManifestV1 = z
  .object({
    schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION),
    name: Text(128),
    version: Text(64),
    release: Release,
    /** Class names in output order; labels[i] is the name of logits[:, i]. */
    labels: z.array(Text(256)).min(1).max(100_000),
    input: InputSpec,
    outputs: OutputSpec,
    backbone: z.object({ arch: Text(128), sha256: Sha256 }), // sha256 of the pretrained weights file
    method: z.object({ name: Text(64), options: z.record(z.string(), z.unknown()).default({}) }),
    prompts: z.object({ sha256: Sha256 }), // sha256 of the trained tensors (prompts and head), as saved
    /**
     * fused: prompts folded in as constants (every .epk with this schema). 'shared-backbone' only
     * appears in the task manifest the runtime assembles for a prompt pack on a shared backbone
     * (runtime/artifact/backbone-pack.ts); a shared-backbone .epk has its own schema, BackboneManifestV1.
     */
    shape: z.enum(['fused', 'shared-backbone']).default('fused'),
    precision: Precision,
    metrics: z.partialRecord(Precision, PrecisionMetrics),
    thresholds: Thresholds,
    compiler: z.object({ version: Text(64), ortVersion: Text(64) }),
    createdAt: z.iso.datetime({ offset: true }),
    /** The device profile it was compiled for (devices/profiles/<target>.yaml), or null for any. */
    target: Text(64).nullable(),
    /** The model.onnx entry: filled in by packArtifact, checked by readArtifact. */
    model: z.object({ sha256: Sha256, bytes: z.number().int().positive() }),
    /** Validation-set prediction statistics the device's drift alarm compares with (reference.ts); absent in older artifacts. */
    reference: DriftReference.optional(),
  })
  .superRefine((m, ctx) => {
    checkLabels(m, ctx);
    if (m.reference && m.reference.classes.length !== m.labels.length) {
      ctx.addIssue({ code: 'custom', path: ['reference', 'classes'], message: `has ${m.reference.classes.length} entries for ${m.labels.length} labels` });
    }
    if (m.metrics[m.precision] === undefined) {
      ctx.addIssue({ code: 'custom', path: ['metrics', m.precision], message: `missing: the metrics of the shipped precision ${m.precision} are required` });
    }
    const names = [m.input.name, m.outputs.logits, m.outputs.probs, ...(m.outputs.embedding ? [m.outputs.embedding] : [])];
    if (new Set(names).size !== names.length) ctx.addIssue({ code: 'custom', path: ['outputs'], message: `input and output names must differ (got ${names.join(', ')})` });
  });

/** Labels are unique and okLabels name labels (task manifests and prompt packs). */
export function checkLabels(m: { labels: string[]; thresholds: ManifestThresholds }, ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  m.labels.forEach((l, i) => {
    if (seen.has(l)) ctx.addIssue({ code: 'custom', path: ['labels', i], message: `duplicate label ${JSON.stringify(l)}` });
    seen.add(l);
  });
  m.thresholds.okLabels?.forEach((l, i) => {
    if (!seen.has(l)) ctx.addIssue({ code: 'custom', path: ['thresholds', 'okLabels', i], message: `${JSON.stringify(l)} is not one of labels` });
  });
}

export type Manifest = z.output<typeof ManifestV1>;
export type ManifestInput = z.input<typeof ManifestV1>;
/** What the compiler fills in: packArtifact adds schemaVersion and model, and createdAt if omitted. */
export type ManifestDraft = Omit<ManifestInput, 'schemaVersion' | 'model' | 'createdAt'> & { createdAt?: string };

/**
 * Validates a manifest object against `schema`: MANIFEST_INVALID for a non-object,
 * MANIFEST_SCHEMA_VERSION for a version this runtime does not read, MANIFEST_INVALID naming
 * every bad field. Shared by artifact, shared-backbone and prompt-pack manifests.
 */
export function validateWith<S extends z.ZodType>(schema: S, value: unknown, file: string): z.output<S> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ArtifactError('MANIFEST_INVALID', file, `manifest.json must hold a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`);
  }
  const v = (value as Record<string, unknown>).schemaVersion;
  if (v !== MANIFEST_SCHEMA_VERSION) {
    const why = v === undefined ? 'is missing' : `is ${JSON.stringify(v)}`;
    throw new ArtifactError(
      'MANIFEST_SCHEMA_VERSION',
      file,
      `manifest.json: schemaVersion ${why}; this runtime reads schemaVersion ${MANIFEST_SCHEMA_VERSION} (${typeof v === 'number' && v > MANIFEST_SCHEMA_VERSION ? 'update the runtime' : 'recompile the artifact'})`,
      { field: 'schemaVersion' },
    );
  }
  const r = schema.safeParse(value, { reportInput: true });
  if (!r.success) {
    const issues = fieldIssues(r.error, '', schema);
    throw new ArtifactError('MANIFEST_INVALID', file, issueReport('manifest.json is invalid', issues), { field: issues[0]!.field, issues });
  }
  return r.data as z.output<S>;
}

/** Validates a manifest object; throws MANIFEST_SCHEMA_VERSION or MANIFEST_INVALID naming every field. */
export function validateManifest(value: unknown, file: string): Manifest {
  return validateWith(ManifestV1, value, file);
}

/** manifest.json bytes as JSON, or MANIFEST_BAD_JSON. */
export function parseManifestJson(bytes: Uint8Array, file: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new ArtifactError('MANIFEST_BAD_JSON', file, `manifest.json is not JSON (${(e as Error).message})`, { cause: e });
  }
}

/** Parses manifest.json bytes: MANIFEST_BAD_JSON, then validateManifest. */
export function parseManifest(bytes: Uint8Array, file: string): Manifest {
  return validateManifest(parseManifestJson(bytes, file), file);
}

/** The canonical bytes written into the archive: pretty JSON, so `tar xOf x.epk manifest.json` reads well. */
export function encodeManifest(m: object): Buffer {
  return Buffer.from(JSON.stringify(m, null, 2) + '\n', 'utf8');
}
