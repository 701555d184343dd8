/**
 * A compile config becomes a training job: backbone loaded and identified, data split and
 * sampled, method options resolved, recipe = method defaults < config, initial tensors drawn
 * from the seed, engine chosen (engine-choice.ts: ort, tfjs, or auto with the reason logged),
 * and the fingerprint of all that (fingerprint.ts) for the checkpoint.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { thresholdsOf, type CompileConfig } from '../config/compile-config.ts';
import type { InspectionRule } from '../../runtime/pipeline/inspection.ts';
import { vitConfig, type VitConfig } from '../backbones/vit-variants.ts';
import { loadVitWeights } from '../backbones/vit-weights.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import { methodByName } from '../methods/registry.ts';
import type { PromptMethod, Recipe } from '../methods/method.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { initTf, type TfBackendInfo } from '../ops/tf-backend.ts';
import { mulberry32 } from '../../devices/rng.ts';
import { TfEngine } from './engine-tfjs.ts';
import { OrtEngine } from './engine-ort.ts';
import { chooseEngine } from './engine-choice.ts';
import { loadSplit, trainData } from './data-source.ts';
import { mixSiteData } from '../data/site.ts';
import { prepareClip } from './clip-job.ts';
import { isClipArch } from '../backbones/clip-variants.ts';
import type { ClipTask } from '../backbones/clip-task.ts';
import { fieldError } from '../config/load.ts';
import { hint } from '../../devices/config-issues.ts';
import type { TrainJob } from './loop.ts';
import type { Progress } from './progress.ts';
import type { Split } from '../data/types.ts';
import { splitDigest, type RunFingerprint } from './fingerprint.ts';

export interface PreparedJob {
  job: TrainJob;
  cfg: VitConfig;
  backbone: StateDict;
  split: Split;
  backend: TfBackendInfo;
  weightsFile: string;
  /** A CLIP backbone's text side (tokenizer, class words, zero-shot embeddings). */
  clip?: ClipTask;
}

export function mergeRecipe(base: Recipe, c: CompileConfig['recipe']): Recipe {
  const o = c.optimizer;
  return {
    ...base,
    epochs: c.epochs ?? base.epochs,
    batchSize: c.batchSize ?? base.batchSize,
    warmupEpochs: c.warmupEpochs ?? base.warmupEpochs,
    ...(c.warmupLr !== undefined || base.warmupLr !== undefined ? { warmupLr: c.warmupLr ?? base.warmupLr! } : {}),
    labelSmoothing: c.labelSmoothing ?? base.labelSmoothing,
    optimizer: {
      ...base.optimizer,
      ...(o.kind ? { kind: o.kind } : {}),
      ...(o.lr !== undefined ? { lr: o.lr } : {}),
      ...(o.momentum !== undefined ? { momentum: o.momentum } : {}),
      ...(o.weightDecay !== undefined ? { weightDecay: o.weightDecay } : {}),
      ...(o.scaleLrByBatch !== undefined ? { scaleLrByBatch: o.scaleLrByBatch } : {}),
    },
    augment: { ...base.augment, ...c.augment },
  };
}

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/**
 * The manifest's OK/NG rule in class indices, when the task inspects parts (okLabels): checked
 * against the data's classes before any training, so a typo fails in a second, not after the run.
 */
export function inspectionRule(config: CompileConfig, configFile: string, classes: readonly string[]): InspectionRule | undefined {
  const t = thresholdsOf(config);
  if (!t.okLabels) return undefined;
  const okClasses = t.okLabels.map((l, i) => {
    const k = classes.indexOf(l);
    if (k < 0) {
      const field = config.thresholds.okLabels ? `thresholds.okLabels[${i}]` : `thresholds.okLabels (default [${l}] for parts data)`;
      throw fieldError(configFile, field, `"${l}" is not a class of the data${hint(l, classes)} (classes: ${classes.join(', ')}); name the good-part classes`);
    }
    return k;
  });
  return { okClasses, minConfidence: t.minConfidence };
}

export async function prepareJob(config: CompileConfig, configFile: string, opts: { resume: boolean; progress: Progress; signal?: AbortSignal; strict?: boolean }): Promise<PreparedJob> {
  const base = dirname(resolve(configFile));
  const backend = await initTf(config.backend);
  const weightsFile = resolve(base, config.backbone.weights);
  let cfg: VitConfig;
  let split: Split;
  let backbone: StateDict;
  let clip: ClipTask | undefined;
  if (isClipArch(config.backbone.arch)) {
    let notes: string[];
    ({ cfg, split, backbone, clip, notes } = await prepareClip(config, configFile, base));
    for (const n of notes) opts.progress.log(`${config.backbone.weights}: ${n}`);
  } else {
    const size = config.backbone.imgSize ? { imgSize: config.backbone.imgSize } : {};
    split = await loadSplit(config.data, vitConfig(config.backbone.arch, size), base);
    cfg = vitConfig(config.backbone.arch, { ...size, numClasses: split.train.classes.length });
    const loaded = loadVitWeights(weightsFile, cfg);
    backbone = new Map([...loaded.stateDict].filter(([k]) => !k.startsWith('head.'))); // every task trains its own head
  }
  let kShotLeft = config.kShot;
  if (config.site) {
    const mixed = await mixSiteData(split, config.site, { baseDir: base, seed: config.seed, ...(config.kShot && { kShot: config.kShot }) });
    split = mixed.split;
    kShotLeft = undefined; // applied to the original data inside the mix
    opts.progress.log(mixed.note);
  }
  const inspection = inspectionRule(config, configFile, split.train.classes);
  const method = methodByName(config.method.name) as PromptMethod<Record<string, unknown>>;
  if (method.requiresClip && !clip) throw fieldError(configFile, 'method.name', `${method.name} needs a CLIP backbone (backbone.arch clip_*, with backbone.tokenizer); ${config.backbone.arch} is a ViT`);
  const options = method.resolveOptions(config.method.options);
  const recipe = mergeRecipe(method.recipe(options), config.recipe);
  const initial = new Map<string, HostTensor>();
  for (const [k, t] of backbone) if (method.trainsBackbone(k, options)) initial.set(k, { shape: [...t.shape], data: Float32Array.from(t.data) });
  const data = trainData(cfg, { split, ...(kShotLeft ? { kShot: kShotLeft } : {}), seed: config.seed, augment: recipe.augment });
  const withClip = clip ? { clip } : {};
  const initCtx = { cfg, numClasses: cfg.numClasses, backbone, rng: mulberry32(config.seed), sample: data.sample!, ...withClip };
  for (const [k, t] of await method.init(initCtx, options)) initial.set(k, t);
  const backendName = `tfjs ${backend.backend}${backend.package.includes('gpu') ? ' (GPU)' : ''}`;
  const backboneSha256 = sha256File(weightsFile);
  const fingerprint: RunFingerprint = {
    version: 1,
    method: { name: method.name, options },
    backbone: { arch: cfg.name, imgSize: cfg.imgSize, sha256: backboneSha256, weights: config.backbone.weights, ...(config.backbone.source && { source: config.backbone.source }) },
    ...(clip && config.backbone.tokenizer && { text: { config: config.text, tokenizerSha256: sha256File(resolve(base, config.backbone.tokenizer)) } }),
    data: { config: config.data, kShot: config.kShot ?? null, sha256: splitDigest(split), classes: split.train.classes, trainImages: split.train.samples.length, valImages: split.val.samples.length },
    seed: config.seed,
    recipe,
  };
  const job: TrainJob = {
    name: config.name,
    outDir: resolve(base, config.output.dir),
    method,
    options,
    recipe,
    arch: cfg.name,
    backboneSha256,
    seed: config.seed,
    fingerprint,
    patience: config.recipe.patience,
    resume: opts.resume,
    config,
    data,
    initial,
    methodContext: { cfg, numClasses: cfg.numClasses, backbone, ...withClip },
    makeEngine: (params) =>
      chooseEngine(config.engine, {
        tfjs: () => new TfEngine({ cfg, backbone, method, options, params, numClasses: cfg.numClasses, labelSmoothing: recipe.labelSmoothing, seed: config.seed, backend: backendName, ...withClip }),
        ort: () => OrtEngine.create({ cfg, backbone, method, options, params, numClasses: cfg.numClasses, labelSmoothing: recipe.labelSmoothing, seed: config.seed, ...withClip }),
        log: (line) => opts.progress.log(line),
      }),
    progress: opts.progress,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(inspection && { inspection }),
    ...(opts.strict && { strict: true }),
  };
  return { job, cfg, backbone, split, backend, weightsFile, ...withClip };
}
