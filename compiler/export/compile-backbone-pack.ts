/**
 * `edgeprompt compile --form shared`: the task as a prompt pack (.epp) for a shared backbone
 * (.epk), through the same steps as the fused compile (compile.ts): the backbone graph with the
 * pack's tensors fed beside the image must equal the training graph (≤ 1e-4), is ORT-optimised
 * when that still holds, and every requested precision is built and gated.
 *
 * Without `backbone`, a new backbone artifact is built, packed and signed beside the pack. With
 * `backbone` (an existing shared-backbone .epk, e.g. the one running on the line), only the pack
 * is built: it must fit that backbone's inputs, and it is measured and gated on that backbone's
 * model as it is (its precision, its optimisation). That is a task update: a small signed file.
 */
import { isDeepStrictEqual } from 'node:util';
import { encodeSafetensors } from '../backbones/safetensors.ts';
import { CompilerError } from '../ops/errors.ts';
import { exportTask } from './task.ts';
import { packFeeds, packInputSpecs, planBackbonePack, packTensors, backboneModel } from './backbone-pack.ts';
import { compareLogits, exportedLogits } from './verify-task.ts';
import { ortVersion } from './optimize.ts';
import { gatePrecisions } from './precision/index.ts';
import { VERSION } from '../../runtime/version.ts';
import { referenceFromLogits } from './reference.ts';
import { meetsParity, parityFailure, gatedPrecisions, prepareCompile, thresholdsOf, verifiedFp32, type CompileOptions, type Prepared, type PrecisionResult } from './compile.ts';
import {
  checkPackFits,
  isBackbone,
  packBackboneArtifact,
  packPromptPack,
  readModelArtifactFile,
  readPrivateKey,
  readPromptPack,
  type BackboneArtifact,
  type BackboneManifest,
  type PackOptions,
  type Packed,
  type PromptPackManifest,
} from '../../runtime/artifact/index.ts';
import type { DeviceProfile } from '../../runtime/config/profile.ts';
import type { PreparedJob } from '../train/job.ts';

export interface BackbonePackCompileOptions extends CompileOptions {
  /** An existing shared-backbone .epk to build the pack for; without it a new backbone is built. */
  backbone?: string;
}

export interface BackbonePackCompileResult {
  /** The new backbone artifact, or null when the pack was built for an existing one. */
  backbone: Packed<BackboneManifest> | null;
  /** The backbone the pack fits (new or existing). */
  backboneManifest: BackboneManifest;
  pack: Packed<PromptPackManifest>;
  results: PrecisionResult[];
  optimized: boolean;
  profile: DeviceProfile | null;
}

export async function compileBackbonePack(o: BackbonePackCompileOptions): Promise<BackbonePackCompileResult> {
  const existing = o.backbone === undefined ? null : await readModelArtifactFile(o.backbone);
  if (existing && !isBackbone(existing)) {
    throw new CompilerError('FLAG_INVALID', `--backbone ${o.backbone}: is a fused artifact; a prompt pack needs a shared-backbone artifact (edgeprompt compile --form shared --out backbone.epk)`);
  }
  const x = await prepareCompile(o, (p) => existing && checkSameTask(p, existing as BackboneArtifact));
  const plan = planBackbonePack(exportTask(x.task, { form: 'shared' }));
  const tensors = await packTensors(plan, x.task.params);
  const feeds = packFeeds(tensors);
  const sign: PackOptions = o.signKey ? { privateKey: await readPrivateKey(o.signKey) } : {};
  const draft = (model: string, metrics: PromptPackManifest['metrics'], shipped?: PrecisionResult) => ({
    name: x.config.name,
    version: x.config.version,
    release: x.config.release,
    labels: x.p.split.train.classes,
    thresholds: thresholdsOf(x.config),
    method: { name: x.p.job.method.name, options: x.p.job.options },
    backbone: { arch: x.p.cfg.name, sha256: x.p.job.backboneSha256, model },
    prompts: { sha256: x.paramsSha256 },
    metrics,
    compiler: { version: VERSION, ortVersion: ortVersion() },
    ...(shipped?.logits && { reference: referenceFromLogits(shipped.logits, x.numClasses) }),
  });
  const safetensors = encodeSafetensors(tensors);

  if (existing) {
    const bb = existing as BackboneArtifact;
    const pack = packPromptPack({ manifest: draft(bb.manifest.model.sha256, {}), tensors: safetensors }, sign);
    checkPackFits(readPromptPack(pack.bytes, '(new pack)'), bb);
    const { results, metrics } = await measureOnExisting(x, o, bb, feeds);
    const packed = packPromptPack({ manifest: draft(bb.manifest.model.sha256, metrics, results[0]), tensors: safetensors }, sign);
    return { backbone: null, backboneManifest: bb.manifest, pack: packed, results, optimized: false, profile: x.profile };
  }

  const inputs = packInputSpecs(plan, tensors);
  const { fp32, optimized, verification } = await verifiedFp32(x, backboneModel(plan, inputs), feeds, 'shared backbone with its prompt pack', o.progress);
  const { results, chosen, metrics } = await gatedPrecisions(x, o, fp32, verification, feeds);
  const backbone = packBackboneArtifact(
    {
      manifest: {
        name: `${x.p.cfg.name}-${x.p.job.method.name}-shared`,
        version: x.config.version,
        release: x.config.release,
        input: { name: 'image', height: x.p.cfg.imgSize, width: x.p.cfg.imgSize, channels: 3, layout: 'NHWC', dtype: 'uint8', resize: 'stretch' },
        outputs: { logits: 'logits', probs: 'probs' },
        backbone: { arch: x.p.cfg.name, sha256: x.p.job.backboneSha256 },
        method: { name: x.p.job.method.name, options: x.p.job.options },
        pack: { inputs },
        precision: chosen.precision,
        compiler: { version: VERSION, ortVersion: ortVersion() },
        target: x.profile?.name ?? null,
      },
      model: chosen.model!,
    },
    sign,
  );
  const pack = packPromptPack({ manifest: draft(backbone.manifest.model.sha256, metrics, chosen), tensors: safetensors }, sign);
  return { backbone, backboneManifest: backbone.manifest, pack, results, optimized, profile: x.profile };
}

/** The config must describe the task the existing backbone was cut for: same weights, arch, input size, method and options. */
function checkSameTask(p: PreparedJob, bb: BackboneArtifact): void {
  const m = bb.manifest;
  const diffs: string[] = [];
  if (m.backbone.arch !== p.cfg.name) diffs.push(`backbone.arch is ${p.cfg.name}, the backbone's ${m.backbone.arch}`);
  if (m.backbone.sha256 !== p.job.backboneSha256) diffs.push(`backbone.weights have sha256 ${p.job.backboneSha256.slice(0, 12)}…, the backbone's ${m.backbone.sha256.slice(0, 12)}…`);
  if (m.input.height !== p.cfg.imgSize) diffs.push(`the input size is ${p.cfg.imgSize}, the backbone's ${m.input.height}`);
  if (m.method.name !== p.job.method.name) diffs.push(`method.name is ${p.job.method.name}, the backbone's ${m.method.name}`);
  else if (!isDeepStrictEqual(m.method.options, p.job.options)) diffs.push(`method.options are ${JSON.stringify(p.job.options)}, the backbone's ${JSON.stringify(m.method.options)}`);
  if (diffs.length > 0) throw new CompilerError('CONFIG_INVALID', `--backbone ${bb.file}: this config is not a task of that backbone: ${diffs.join('; ')}`);
}

/** Metrics of the pack on the existing backbone's model: parity when it is fp32, the accuracy gate always. */
async function measureOnExisting(x: Prepared, o: CompileOptions, bb: BackboneArtifact, feeds: ReturnType<typeof packFeeds>) {
  const precision = bb.manifest.precision;
  if (o.precisions.length !== 1 || o.precisions[0] !== precision) o.progress.log(`note: --precision ${o.precisions.join(',')} does not apply with --backbone: the pack runs on the backbone's ${precision} model`);
  o.progress.log(`measuring the pack on ${bb.file} (${precision}) with ${x.val.samples.length} validation images`);
  const logits = await exportedLogits(bb.model, x.val, feeds);
  const v = compareLogits(x.reference, logits, x.labels, x.numClasses);
  if (precision === 'fp32' && !meetsParity(v)) {
    throw new CompilerError('PARITY_FAILED', parityFailure(v, `pack on ${bb.file}`));
  }
  const gate = gatePrecisions({ top1: v.top1Reference, maxLogitDiff: 0, images: v.images }, { [precision]: { top1: v.top1Exported, maxLogitDiff: v.maxAbsDiff, images: v.images } }, [precision], { maxDropPt: o.maxDropPt });
  if (gate.refused.length > 0) throw new CompilerError('PRECISION_REFUSED', `the pack on ${bb.file}: ${gate.refused.map((r) => r.message).join('; ')}`);
  const result: PrecisionResult = { precision, verification: v, bytes: bb.model.byteLength, accepted: true, reason: `top-1 ${(100 * v.top1Exported).toFixed(2)} %`, logits };
  return { results: [result], metrics: { [precision]: { top1: v.top1Exported, maxLogitDiff: v.maxAbsDiff, samples: v.images } } };
}
