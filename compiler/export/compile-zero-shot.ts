/**
 * `edgeprompt compile --zero-shot`: a CLIP task defined by words, with no training and no images
 * (docs/spec/clip.md). The text tower runs here once for the class names × templates; the device
 * gets the image tower with the class head [C, E] as a constant, in the same signed `.epk` the
 * runtime already serves.
 *
 * Verification needs images but not labels: the export is checked against the training graph on
 * the labelled `--val` folder when given, else on generated parts images (realistic pictures at the
 * model's size). Without labels the manifest's top-1 is recorded as not measured (0 on 0 samples)
 * and precisions are gated on their agreement with fp32's decisions instead.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { initTf } from '../ops/tf-backend.ts';
import { CompilerError } from '../ops/errors.ts';
import { loadClipWeights } from '../backbones/clip-weights.ts';
import { makeClipTask } from '../backbones/clip-task.ts';
import { ClipTokenizer } from '../text/tokenizer.ts';
import { DEFAULT_TEMPLATES } from '../text/prompts.ts';
import { zeroShot } from '../methods/zero-shot.ts';
import { loadImageFolder } from '../data/image-folder.ts';
import { makePartsSet } from '../data/parts.ts';
import type { LabeledSet } from '../data/types.ts';
import { sha256File } from '../train/job.ts';
import type { Progress } from '../train/progress.ts';
import { exportTask, type TaskExport } from './task.ts';
import { referenceLogits } from './verify-task.ts';
import { gatedPrecisions, verifiedFp32, type CompileResult, type Checked } from './compile.ts';
import { VERSION } from '../../runtime/version.ts';
import { ortVersion } from './optimize.ts';
import { packArtifact, readPrivateKey, type Precision } from '../../runtime/artifact/index.ts';
import { loadProfile } from '../../runtime/config/profile.ts';

export interface ZeroShotOptions {
  /** Class names in output order, as the device reports them. */
  classes: string[];
  templates?: string[];
  arch: string;
  weights: string;
  tokenizer: string;
  source?: string;
  name: string;
  version: string;
  okLabels?: string[];
  minConfidence: number;
  /** A labelled image folder (<root>/<class>/…) to measure top-1 on and calibrate int8 with. */
  val?: string;
  target?: string;
  precisions: Precision[];
  maxDropPt: number;
  signKey?: string;
  progress: Progress;
}

/** Images to check the export on: the labelled folder, or generated parts images labelled by fp32's own decisions. */
async function checkImages(o: ZeroShotOptions, size: number): Promise<{ set: LabeledSet; labelled: boolean }> {
  if (!o.val) return { set: await makePartsSet({ perClass: 8, size, seed: 1 }), labelled: false };
  const set = await loadImageFolder(resolve(o.val), { size, resize: 'stretch' });
  const unknown = set.classes.filter((c) => !o.classes.includes(c));
  if (unknown.length) throw new CompilerError('FLAG_INVALID', `--val ${o.val}: folder(s) ${unknown.map((c) => `"${c}"`).join(', ')} name no class of --classes (${o.classes.join(', ')}); name each sub-folder after its class`);
  const index = new Map(o.classes.map((c, i) => [c, i]));
  return { set: { ...set, classes: [...o.classes], samples: set.samples.map((s) => ({ ...s, label: index.get(set.classes[s.label]!)! })) }, labelled: true };
}

const argmaxRows = (d: Float32Array, C: number): number[] => Array.from({ length: d.length / C }, (_, r) => {
  let b = 0;
  for (let c = 1; c < C; c++) if (d[r * C + c]! > d[r * C + b]!) b = c;
  return b;
});

export async function compileZeroShot(o: ZeroShotOptions): Promise<CompileResult> {
  for (const [flag, file] of [['--weights', o.weights], ['--tokenizer', o.tokenizer]] as const) {
    if (!existsSync(file)) throw new CompilerError('FILE_NOT_FOUND', `${flag} ${file}: no such file`);
  }
  await initTf('auto');
  const loaded = loadClipWeights(o.weights, o.arch, o.source);
  for (const n of loaded.notes) o.progress.log(`${o.weights}: ${n}`);
  const templates = o.templates?.length ? o.templates : [...DEFAULT_TEMPLATES];
  const clip = makeClipTask({ cfg: loaded.cfg, stateDict: loaded.stateDict, tokenizer: ClipTokenizer.fromFile(o.tokenizer), classes: o.classes, templates, field: '--classes' });
  const C = o.classes.length;
  const cfg = { ...loaded.cfg.vision, numClasses: C };
  const task: TaskExport = { cfg, backbone: loaded.stateDict, method: zeroShot as never, options: {}, params: new Map(), clip };
  const { set, labelled } = await checkImages(o, cfg.imgSize);
  o.progress.log(`zero-shot head: ${C} classes × ${templates.length} template(s) through the text tower; checking the export on ${set.samples.length} ${labelled ? `labelled images from ${o.val}` : 'generated parts images (no labels: top-1 not measured)'}`);
  const reference = referenceLogits(task, set);
  const labels = labelled ? set.samples.map((s) => s.label) : argmaxRows(reference, C);
  const x: Checked = { profile: o.target ? loadProfile(o.target) : null, numClasses: C, val: set, labels, reference, ...(labelled ? { calibration: set } : {}) };
  const fused = exportTask(task, { metadata: { 'edgeprompt.name': o.name } });
  const { fp32, optimized, verification } = await verifiedFp32(x, fused, {}, 'zero-shot export', o.progress);
  const { results, chosen, metrics } = await gatedPrecisions(x, o, fp32, verification, {});
  // Without labels, top-1 against fp32's own decisions is agreement, not accuracy: record it as such.
  const manifestMetrics = labelled
    ? metrics
    : Object.fromEntries(Object.entries(metrics).map(([p, m]) => [p, { top1: 0, maxLogitDiff: m!.maxLogitDiff, samples: 0, top1AgreementWithFp32: m!.top1, checkedImages: m!.samples }]));
  const head = createHash('sha256').update(Buffer.from(clip.zeroShot.data.buffer, clip.zeroShot.data.byteOffset, clip.zeroShot.data.byteLength)).digest('hex');
  const packed = packArtifact(
    {
      manifest: {
        name: o.name,
        version: o.version,
        labels: [...o.classes],
        input: { name: 'image', height: cfg.imgSize, width: cfg.imgSize, channels: 3, layout: 'NHWC', dtype: 'uint8', resize: 'stretch' },
        outputs: { logits: 'logits', probs: 'probs' },
        backbone: { arch: cfg.name, sha256: sha256File(o.weights) },
        method: { name: 'zero-shot', options: { classNames: clip.classNames, templates } },
        prompts: { sha256: head },
        shape: 'fused',
        precision: chosen.precision,
        metrics: manifestMetrics,
        thresholds: { minConfidence: o.minConfidence, ...(o.okLabels ? { okLabels: o.okLabels } : {}) },
        compiler: { version: VERSION, ortVersion: ortVersion() },
        target: x.profile?.name ?? null,
      },
      model: chosen.model!,
    },
    o.signKey ? { privateKey: await readPrivateKey(o.signKey) } : {},
  );
  return { artifact: packed.bytes, manifest: packed.manifest, results, optimized, profile: x.profile, keyIds: packed.keyIds };
}
