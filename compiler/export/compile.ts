/**
 * The compile stage end to end: train (or continue the interrupted run, or use the finished one,
 * after checking it was trained for this very job: train/resume.ts), refuse a model below the
 * top-1 floor (gates.ts), export the fused task, prove it equals the training graph, let ORT
 * optimise it offline (kept only if it still verifies), build the requested precisions and gate
 * them on validation accuracy, then pack and sign one artifact. The shared-backbone shape
 * (compile-backbone-pack.ts) runs the same steps on the backbone graph with a pack's tensors fed beside
 * the image.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { loadCompileConfig, thresholdsOf, type CompileConfig } from '../config/compile-config.ts';
import { prepareJob, type PreparedJob } from '../train/job.ts';
import { train } from '../train/loop.ts';
import type { Progress } from '../train/progress.ts';
import { readSafetensors } from '../backbones/safetensors.ts';
import { CompilerError } from '../ops/errors.ts';
import { exportTask, type TaskExport } from './task.ts';
import { compareLogits, exportedLogits, referenceLogits, type TaskVerification } from './verify-task.ts';
import { optimizeOffline, ortVersion } from './optimize.ts';
import { buildPrecision } from './precisions.ts';
import { gatePrecisions, type PrecisionMetrics } from './precision/index.ts';
import { checkTop1 } from './gates.ts';
import { displayDir } from '../train/resume.ts';
import { packArtifact, readPrivateKey, type Manifest, type Precision } from '../../runtime/artifact/index.ts';
import { loadProfile, type DeviceProfile } from '../../runtime/config/profile.ts';
import { VERSION } from '../../runtime/version.ts';
import type { LabeledSet } from '../data/types.ts';
import { MetricAccumulator } from '../train/metrics.ts';
import type { InspectionRule } from '../../runtime/pipeline/inspection.ts';
import { referenceFromLogits } from './reference.ts';

/**
 * Parity the fused fp32 artifact must reach against the training graph (issue 5): |Δlogit| ≤
 * maxAbsDiff for logits up to 1 in size, relative beyond (float32 rounding scales with the
 * values: a backbone whose logits reach 50 differs by a few 1e-4 between two correct graphs that
 * sum in different orders), and top-1 agreement.
 */
export const PARITY = { maxAbsDiff: 1e-4, minTop1Agreement: 0.999 };

/** The |Δlogit| limit for a verification: PARITY.maxAbsDiff × max(1, the largest reference |logit|). */
export const parityLimit = (v: Pick<TaskVerification, 'maxAbsReference'>): number => PARITY.maxAbsDiff * Math.max(1, v.maxAbsReference);
const limitText = (v: TaskVerification) => `limit ${parityLimit(v).toExponential(2)} = ${PARITY.maxAbsDiff} × max(1, largest |logit| ${v.maxAbsReference.toFixed(2)})`;
export const parityFailure = (v: TaskVerification, what: string): string =>
  `the ${what} does not match the training graph: max |Δlogit| ${v.maxAbsDiff.toExponential(2)} (${limitText(v)}), top-1 agreement ${(100 * v.top1Agreement).toFixed(2)} % (limit ${100 * PARITY.minTop1Agreement} %); refusing to ship`;

export interface CompileOptions {
  configFile: string;
  sets?: string[];
  target?: string;
  precisions: Precision[];
  /** Refuse a precision whose validation top-1 drops more than this (percentage points). */
  maxDropPt: number;
  signKey?: string;
  /** Replace the run in output.dir and train from scratch (default: continue or use it, when it was trained for this job). */
  fresh?: boolean;
  /** Ship a model whose validation top-1 is below the floor (gates.minTop1), with a warning. */
  allowWeak?: boolean;
  progress: Progress;
  /** Ctrl-C: training saves a checkpoint and compile stops with TRAINING_INTERRUPTED. */
  signal?: AbortSignal;
  /** Training warnings (divergence, collapse, no learning) stop the compile (compiler/train/diagnose.ts). */
  strict?: boolean;
}

export interface PrecisionResult {
  precision: Precision;
  verification: TaskVerification;
  bytes: number;
  accepted: boolean;
  reason: string;
  model?: Uint8Array;
  /** Its logits on the validation images [N, C]: the shipped one's become the manifest's drift reference. */
  logits?: Float32Array;
}

export interface CompileResult {
  artifact: Buffer;
  manifest: Manifest;
  results: PrecisionResult[];
  optimized: boolean;
  profile: DeviceProfile | null;
  keyIds: string[];
}

/** What verification and the precision gate need: the images, their labels and the training graph's logits on them. */
export interface Checked {
  profile: DeviceProfile | null;
  numClasses: number;
  val: LabeledSet;
  labels: number[];
  reference: Float32Array;
  /** Images int8 calibrates on (the training split); absent: int8 is refused. */
  calibration?: LabeledSet;
  /** The task's pass/fail rule, when it has one: escape and false-reject figures per precision. */
  inspection?: InspectionRule;
}

/** A trained task ready to export, with its validation set and the training graph's logits on it. */
export interface Prepared extends Checked {
  config: CompileConfig;
  p: PreparedJob;
  task: TaskExport;
  /** The trained tensors as saved (best.safetensors): their sha256 identifies the prompts. */
  paramsSha256: string;
}

/** `check` runs on the prepared job before any training, to refuse a config early. */
export async function prepareCompile(o: CompileOptions, check?: (p: PreparedJob) => void): Promise<Prepared> {
  const config = loadCompileConfig(o.configFile, o.sets ?? []);
  const profile = o.target ? loadProfile(o.target) : null;
  const p = await prepareJob(config, o.configFile, { resume: o.fresh !== true, progress: o.progress, ...(o.signal ? { signal: o.signal } : {}), ...(o.strict && { strict: true }) });
  check?.(p);
  const bestFile = join(p.job.outDir, 'best.safetensors');
  const trained = await train(p.job); // says in one line whether it trains from scratch, continues, or uses the finished run
  if (trained.interrupted || o.signal?.aborted) throw new CompilerError('TRAINING_INTERRUPTED', `interrupted: the run in ${displayDir(p.job.outDir)} is saved; run the same compile again to continue it`);
  if (!existsSync(bestFile)) throw new CompilerError('FILE_NOT_FOUND', `${bestFile}: no trained tensors (did training run an epoch?)`);
  const paramsSha256 = createHash('sha256').update(readFileSync(bestFile)).digest('hex');
  const task: TaskExport = { cfg: p.cfg, backbone: p.backbone, method: p.job.method, options: p.job.options, params: readSafetensors(bestFile).tensors, ...(p.clip ? { clip: p.clip } : {}) };
  const val = p.split.val;
  const labels = val.samples.map((s) => s.label);
  const reference = referenceLogits(task, val);
  const top1 = compareLogits(reference, reference, labels, p.cfg.numClasses).top1Reference;
  o.progress.log(checkTop1(top1, labels.length, p.cfg.numClasses, config.gates.minTop1, o.allowWeak === true));
  return { config, profile, p, task, paramsSha256, val, labels, reference, numClasses: p.cfg.numClasses, calibration: p.split.train, ...(p.job.inspection && { inspection: p.job.inspection }) };
}

export const meetsParity = (v: TaskVerification) => v.maxAbsDiff <= parityLimit(v) && v.top1Agreement >= PARITY.minTop1Agreement;

/** The fp32 export checked against the training graph (refused when it differs), then ORT-optimised when that still verifies. */
export async function verifiedFp32(x: Checked, model: Uint8Array, feeds: Record<string, ort.Tensor>, what: string, progress: Progress): Promise<{ fp32: Uint8Array; optimized: boolean; verification: TaskVerification }> {
  const C = x.numClasses;
  progress.log(`verifying the ${what} on ${x.val.samples.length} validation images`);
  const v = compareLogits(x.reference, await exportedLogits(model, x.val, feeds), x.labels, C);
  if (!meetsParity(v)) {
    throw new CompilerError('PARITY_FAILED', parityFailure(v, what));
  }
  try {
    const opt = await optimizeOffline(model);
    const vo = compareLogits(x.reference, await exportedLogits(opt, x.val, feeds), x.labels, C);
    if (meetsParity(vo)) return { fp32: opt, optimized: true, verification: v };
    progress.log(`ORT's optimised model drifted (max |Δlogit| ${vo.maxAbsDiff.toExponential(2)}): keeping the unoptimised export`);
  } catch (e) {
    progress.log(`ORT offline optimisation failed (${(e as Error).message.split('\n')[0]}): keeping the unoptimised export`);
  }
  return { fp32: model, optimized: false, verification: v };
}

/** Builds and measures every requested precision, gates them, and picks the one to ship (the profile's preference first). */
export async function gatedPrecisions(x: Checked, o: Pick<CompileOptions, 'precisions' | 'maxDropPt' | 'progress'>, fp32: Uint8Array, reference: TaskVerification, feeds: Record<string, ort.Tensor>): Promise<{ results: PrecisionResult[]; chosen: PrecisionResult; metrics: Partial<Record<Precision, { top1: number; maxLogitDiff: number; samples: number }>> }> {
  const C = x.numClasses;
  const results: PrecisionResult[] = [];
  const models = new Map<Precision, Uint8Array>();
  const measured: Partial<Record<Precision, PrecisionMetrics>> = {};
  const inspected: Partial<Record<Precision, Record<string, number>>> = {};
  for (const precision of o.precisions) {
    if (precision === 'int8' && !x.calibration) throw new CompilerError('FLAG_INVALID', '--precision int8 calibrates on labelled images, and this compile has none; give --val <image folder> or leave int8 out');
    const model = await buildPrecision(precision, fp32, x.calibration ?? x.val, x.profile, 128, feeds);
    const logits = await exportedLogits(model, x.val, feeds);
    const v = compareLogits(x.reference, logits, x.labels, C);
    if (x.inspection) inspected[precision] = inspectionFigures(logits, x.labels, C, x.inspection);
    models.set(precision, model);
    measured[precision] = { top1: v.top1Exported, maxLogitDiff: v.maxAbsDiff, images: v.images, top1Agreement: v.top1Agreement };
    results.push({ precision, verification: v, bytes: model.byteLength, accepted: false, reason: '', logits });
  }
  // The reference is the training graph itself: every precision is gated against what was trained.
  const gate = gatePrecisions({ top1: reference.top1Reference, maxLogitDiff: 0, images: x.val.samples.length }, measured, o.precisions, { maxDropPt: o.maxDropPt });
  for (const w of gate.warnings) o.progress.log(`note: ${w}`);
  for (const r of results) {
    const refusal = gate.refused.find((y) => y.precision === r.precision);
    r.accepted = !refusal;
    r.reason = refusal ? refusal.message : `top-1 ${(100 * r.verification.top1Exported).toFixed(2)} % (${(gate.dropPt[r.precision] ?? 0) > 0 ? '−' : '+'}${Math.abs(gate.dropPt[r.precision] ?? 0).toFixed(2)} pt)`;
    if (r.accepted) r.model = models.get(r.precision)!;
  }
  const order = x.profile ? [...x.profile.precisions.filter((y) => o.precisions.includes(y)), ...o.precisions] : o.precisions;
  const chosen = order.map((y) => results.find((r) => r.precision === y && r.accepted)).find(Boolean);
  if (!chosen) throw new CompilerError('PRECISION_REFUSED', `no requested precision passed the accuracy gate: ${gate.refused.map((r) => r.message).join('; ')}`);
  const metrics: Partial<Record<Precision, { top1: number; maxLogitDiff: number; samples: number }>> = {};
  for (const r of results) metrics[r.precision] = { top1: r.verification.top1Exported, maxLogitDiff: r.verification.maxAbsDiff, samples: r.verification.images, ...inspected[r.precision] };
  return { results, chosen, metrics };
}

/**
 * Inspection figures of one precision on the validation set, as manifest metrics (numbers only,
 * so older runtimes still read the manifest): escape and false-reject rates at the manifest
 * threshold, AUROC defect-vs-ok, and the strictest minConfidence holding false rejects ≤ 10 % with
 * the escape rate there. A figure with nothing to measure on (no defective part, say) is left out.
 */
export function inspectionFigures(logits: Float32Array, labels: readonly number[], C: number, rule: InspectionRule): Record<string, number> {
  const acc = new MetricAccumulator(C, rule);
  acc.add(logits, labels);
  const i = acc.result().inspection!;
  const op = i.atMaxFrr;
  const figures: Record<string, number | null> = {
    escapeRate: i.escapeRate,
    falseRejectRate: i.falseRejectRate,
    aurocDefectVsOk: i.auroc,
    ...(op.reachable && { minConfidenceAtFrr10: op.minConfidence, escapeRateAtFrr10: op.escapeRate }),
  };
  return Object.fromEntries(Object.entries(figures).filter((e): e is [string, number] => e[1] !== null));
}

export async function compileTask(o: CompileOptions): Promise<CompileResult> {
  const x = await prepareCompile(o);
  const { config, p, profile } = x;
  const fused = exportTask(x.task, { metadata: { 'edgeprompt.name': config.name } });
  const { fp32, optimized, verification } = await verifiedFp32(x, fused, {}, 'fused export', o.progress);
  const { results, chosen, metrics } = await gatedPrecisions(x, o, fp32, verification, {});
  const packed = packArtifact(
    {
      manifest: {
        name: config.name,
        version: config.version,
        release: config.release,
        labels: p.split.train.classes,
        input: { name: 'image', height: p.cfg.imgSize, width: p.cfg.imgSize, channels: 3, layout: 'NHWC', dtype: 'uint8', resize: 'stretch' },
        outputs: { logits: 'logits', probs: 'probs' },
        backbone: { arch: p.cfg.name, sha256: p.job.backboneSha256 },
        // A CLIP task's classes are words: they and the templates identify its class head.
        method: { name: p.job.method.name, options: { ...p.job.options, ...(p.clip ? { classNames: p.clip.classNames, templates: p.clip.templates } : {}) } },
        prompts: { sha256: x.paramsSha256 },
        shape: 'fused',
        precision: chosen.precision,
        metrics,
        thresholds: thresholdsOf(config),
        compiler: { version: VERSION, ortVersion: ortVersion() },
        target: profile?.name ?? null,
        reference: referenceFromLogits(chosen.logits!, x.numClasses),
      },
      model: chosen.model!,
    },
    o.signKey ? { privateKey: await readPrivateKey(o.signKey) } : {},
  );
  return { artifact: packed.bytes, manifest: packed.manifest, results, optimized, profile, keyIds: packed.keyIds };
}

export { thresholdsOf } from '../config/compile-config.ts';
