/**
 * The compile stage end to end: train (or reuse the finished checkpoint), export the fused
 * task, prove it equals the training graph, let ORT optimise it offline (kept only if it still
 * verifies), build the requested precisions and gate them on validation accuracy, then pack
 * and sign one artifact.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCompileConfig } from '../config/compile-config.ts';
import { prepareJob } from '../train/job.ts';
import { train } from '../train/loop.ts';
import type { Progress } from '../train/progress.ts';
import { readSafetensors } from '../backbones/safetensors.ts';
import { CompilerError } from '../ops/errors.ts';
import { exportTask, type TaskExport } from './task.ts';
import { compareLogits, exportedLogits, referenceLogits, type TaskVerification } from './verify-task.ts';
import { optimizeOffline, ortVersion } from './optimize.ts';
import { buildPrecision } from './precisions.ts';
import { gatePrecisions, type PrecisionMetrics } from './precision/index.ts';
import { packArtifact, readPrivateKey, type Manifest, type Precision } from '../../runtime/artifact/index.ts';
import { loadProfile, type DeviceProfile } from '../../runtime/config/profile.ts';

export const COMPILER_VERSION = '0.1.0';
/** Parity the fused fp32 artifact must reach against the training graph (issue 5). */
export const PARITY = { maxAbsDiff: 1e-4, minTop1Agreement: 0.999 };

export interface CompileOptions {
  configFile: string;
  sets?: string[];
  target?: string;
  precisions: Precision[];
  /** Refuse a precision whose validation top-1 drops more than this (percentage points). */
  maxDropPt: number;
  signKey?: string;
  progress: Progress;
  signal?: AbortSignal;
}

export interface PrecisionResult {
  precision: Precision;
  verification: TaskVerification;
  bytes: number;
  accepted: boolean;
  reason: string;
  model?: Uint8Array;
}

export interface CompileResult {
  artifact: Buffer;
  manifest: Manifest;
  results: PrecisionResult[];
  optimized: boolean;
  profile: DeviceProfile | null;
  keyIds: string[];
}

export async function compileTask(o: CompileOptions): Promise<CompileResult> {
  const config = loadCompileConfig(o.configFile, o.sets ?? []);
  const profile = o.target ? loadProfile(o.target) : null;
  const p = await prepareJob(config, o.configFile, { resume: true, progress: o.progress, ...(o.signal ? { signal: o.signal } : {}) });
  const bestFile = join(p.job.outDir, 'best.safetensors');
  const trained = await train(p.job); // continues or finishes a checkpointed run; no-op when complete
  if (trained.interrupted) throw new CompilerError('BAD_ARGUMENT', 'training was interrupted; run compile again to continue');
  if (!existsSync(bestFile)) throw new CompilerError('FILE_NOT_FOUND', `${bestFile}: no trained tensors (did training run an epoch?)`);
  const paramsBytes = readFileSync(bestFile);
  const task: TaskExport = { cfg: p.cfg, backbone: p.backbone, method: p.job.method, options: p.job.options, params: readSafetensors(bestFile).tensors };
  const val = p.split.val;
  const labels = val.samples.map((s) => s.label);
  const C = p.cfg.numClasses;

  o.progress.log(`verifying the fused export on ${val.samples.length} validation images`);
  const reference = referenceLogits(task, val);
  const fused = exportTask(task, { metadata: { 'edgeprompt.name': config.name } });
  const vFused = compareLogits(reference, await exportedLogits(fused, val), labels, C);
  if (vFused.maxAbsDiff > PARITY.maxAbsDiff || vFused.top1Agreement < PARITY.minTop1Agreement) {
    throw new CompilerError('BAD_ARGUMENT', `the fused export does not match the training graph: max |Δlogit| ${vFused.maxAbsDiff.toExponential(2)} (limit ${PARITY.maxAbsDiff}), top-1 agreement ${(100 * vFused.top1Agreement).toFixed(2)} % (limit ${100 * PARITY.minTop1Agreement} %); refusing to ship`);
  }
  let fp32 = fused;
  let optimized = false;
  try {
    const opt = await optimizeOffline(fused);
    const v = compareLogits(reference, await exportedLogits(opt, val), labels, C);
    if (v.maxAbsDiff <= PARITY.maxAbsDiff && v.top1Agreement >= PARITY.minTop1Agreement) {
      fp32 = opt;
      optimized = true;
    } else o.progress.log(`ORT's optimised model drifted (max |Δlogit| ${v.maxAbsDiff.toExponential(2)}): keeping the unoptimised export`);
  } catch (e) {
    o.progress.log(`ORT offline optimisation failed (${(e as Error).message.split('\n')[0]}): keeping the unoptimised export`);
  }

  const results: PrecisionResult[] = [];
  const models = new Map<Precision, Uint8Array>();
  const measured: Partial<Record<Precision, PrecisionMetrics>> = {};
  for (const precision of o.precisions) {
    const model = await buildPrecision(precision, fp32, p.split.train, profile);
    const v = compareLogits(reference, await exportedLogits(model, val), labels, C);
    models.set(precision, model);
    measured[precision] = { top1: v.top1Exported, maxLogitDiff: v.maxAbsDiff, images: v.images, top1Agreement: v.top1Agreement };
    results.push({ precision, verification: v, bytes: model.byteLength, accepted: false, reason: '' });
  }
  // The reference is the training graph itself: every precision is gated against what was trained.
  const gate = gatePrecisions({ top1: vFused.top1Reference, maxLogitDiff: 0, images: val.samples.length }, measured, o.precisions, { maxDropPt: o.maxDropPt });
  for (const w of gate.warnings) o.progress.log(`note: ${w}`);
  for (const r of results) {
    const refusal = gate.refused.find((x) => x.precision === r.precision);
    r.accepted = !refusal;
    r.reason = refusal ? refusal.message : `top-1 ${(100 * r.verification.top1Exported).toFixed(2)} % (${(gate.dropPt[r.precision] ?? 0) > 0 ? '−' : '+'}${Math.abs(gate.dropPt[r.precision] ?? 0).toFixed(2)} pt)`;
    if (r.accepted) r.model = models.get(r.precision)!;
  }
  // Ship the device profile's most preferred precision that passed the gate, else the first requested that passed.
  const order = profile ? [...profile.precisions.filter((x) => o.precisions.includes(x)), ...o.precisions] : o.precisions;
  const chosen = order.map((x) => results.find((r) => r.precision === x && r.accepted)).find(Boolean);
  if (!chosen) throw new CompilerError('BAD_ARGUMENT', `no requested precision passed the accuracy gate: ${gate.refused.map((r) => r.message).join('; ')}`);

  const metrics: Partial<Record<Precision, { top1: number; maxLogitDiff: number; samples: number }>> = {};
  for (const r of results) metrics[r.precision] = { top1: r.verification.top1Exported, maxLogitDiff: r.verification.maxAbsDiff, samples: r.verification.images };
  const packed = packArtifact(
    {
      manifest: {
        name: config.name,
        version: config.version,
        labels: p.split.train.classes,
        input: { name: 'image', height: p.cfg.imgSize, width: p.cfg.imgSize, channels: 3, layout: 'NHWC', dtype: 'uint8', resize: 'stretch' },
        outputs: { logits: 'logits', probs: 'probs' },
        backbone: { arch: p.cfg.name, sha256: p.job.backboneSha256 },
        method: { name: p.job.method.name, options: p.job.options },
        prompts: { sha256: createHash('sha256').update(paramsBytes).digest('hex') },
        shape: 'fused',
        precision: chosen.precision,
        metrics,
        thresholds: { minConfidence: config.thresholds.minConfidence, ...(config.thresholds.okLabels ? { okLabels: config.thresholds.okLabels } : {}) },
        compiler: { version: COMPILER_VERSION, ortVersion: ortVersion() },
        target: profile?.name ?? null,
      },
      model: chosen.model!,
    },
    o.signKey ? { privateKey: await readPrivateKey(o.signKey) } : {},
  );
  return { artifact: packed.bytes, manifest: packed.manifest, results, optimized, profile, keyIds: packed.keyIds };
}
