/**
 * A pretraining config becomes a training job for the shared loop (compiler/train/loop.ts): the
 * sources loaded and mixed, one head per source, every backbone tensor trainable, AdamW with
 * warmup + cosine per step, the ort engine (tfjs as fallback), and an evaluator that scores each
 * source and probes the held-out line.
 */
import { dirname, resolve } from 'node:path';
import { vitConfig, type VitConfig } from '../backbones/vit-variants.ts';
import { clipConfig, isClipArch, type ClipConfig } from '../backbones/clip-variants.ts';
import { fieldError } from '../config/load.ts';
import { ClipTokenizer } from '../text/tokenizer.ts';
import { captionText, keyName } from './captions.ts';
import type { CaptionTable } from './contrastive.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import { PART_CLASSES } from '../data/parts-scene.ts';
import { mixSeed, mulberry32 } from '../../devices/rng.ts';
import { preprocessFor, toBatches } from '../data/transforms.ts';
import type { Recipe } from '../methods/method.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { initTf } from '../ops/tf-backend.ts';
import { chooseEngine } from '../train/engine-choice.ts';
import { OrtEngine } from '../train/engine-ort.ts';
import { TfEngine } from '../train/engine-tfjs.ts';
import { sha256File } from '../train/job.ts';
import { splitDigest, type RunFingerprint } from '../train/fingerprint.ts';
import { createHash } from 'node:crypto';
import type { TrainJob } from '../train/loop.ts';
import type { Progress } from '../train/progress.ts';
import type { PretrainConfig } from './config.ts';
import { pretrainEvaluator, type HeldOutProbe } from './evaluate.ts';
import { givenHead, givenWeights, randomBackbone, type GivenWeights } from './init.ts';
import { pretrainMethod, type PretrainHead } from './method.ts';
import { mixture, type Mixture } from './mixture.ts';
import { cachedPartsSet } from './parts-cache.ts';
import { checkHeldOut, lineSeed, loadSource, type LoadedSource } from './sources.ts';
import { CompilerError } from '../ops/errors.ts';

export interface PreparedPretrain {
  job: TrainJob;
  cfg: VitConfig;
  sources: LoadedSource[];
  heads: PretrainHead[];
  data: Mixture;
  probe?: HeldOutProbe;
  /** The validation line's probe: it chooses the published epoch. */
  validation?: HeldOutProbe;
  /** Where the weights started: a file's sha256, or 'random init (seed N)'. */
  start: string;
  /** CLIP archs: the whole model's config and the tokenizer its captions went through. */
  clip?: { cfg: ClipConfig; tokenizerFile?: string };
  dataSeconds: number;
}

const INIT_STREAM = 0x696e6974; // 'init'
const HELD_OUT_VAL = 0x76616c; // as sources.ts: validation images of a line come from another seed

export function pretrainRecipe(c: PretrainConfig): Recipe {
  const r = c.recipe;
  return {
    optimizer: { kind: 'adamw', lr: r.lr, scaleLrByBatch: false, momentum: 0.9, weightDecay: r.weightDecay, betas: [0.9, 0.999] },
    epochs: r.epochs,
    warmupEpochs: r.warmupEpochs,
    batchSize: r.batchSize,
    schedulePer: 'step',
    labelSmoothing: r.labelSmoothing,
    augment: { randomResizedCrop: r.augment.cropScale !== undefined, hflip: r.augment.hflip },
  };
}

/**
 * The images of a probe line (a held-out or validation line of a pretrain config): its training
 * images from the line's seed, its validation images from another, rendered once into `cacheDir`.
 */
export async function probeLineSets(cacheDir: string, arch: VitConfig, h: NonNullable<PretrainConfig['heldOut']>): Promise<HeldOutProbe> {
  const pre = preprocessFor(arch, 'stretch');
  const o = { part: h.part, material: h.material, size: arch.imgSize, classes: [...PART_CLASSES] };
  const seed = lineSeed(h.seed, h.part, h.material);
  const train = (await cachedPartsSet(cacheDir, { ...o, perClass: h.perClass, seed })).set;
  const val = (await cachedPartsSet(cacheDir, { ...o, perClass: h.valPerClass, seed: mixSeed(seed, HELD_OUT_VAL) })).set;
  return { train: toBatches(train.samples, pre, 100), val: toBatches(val.samples, pre, 100), classes: train.classes, every: h.every };
}

export async function preparePretrain(config: PretrainConfig, configFile: string, opts: { resume: boolean; progress: Progress; signal?: AbortSignal }): Promise<PreparedPretrain> {
  const base = dirname(resolve(configFile));
  checkHeldOut(config, configFile);
  const clip = isClipArch(config.arch) ? clipConfig(config.arch, CLIP_PRETRAIN_ACT) : undefined;
  checkContrastive(config, configFile, clip);
  const arch = clip ? clip.vision : vitConfig(config.arch);
  const cacheDir = resolve(base, config.cacheDir);
  const t0 = performance.now();
  const sources: LoadedSource[] = [];
  for (const s of config.sources) sources.push(await loadSource(s, arch.imgSize, base, cacheDir, (l) => opts.progress.log(l)));
  const pre = preprocessFor(arch, 'stretch');
  const cropScale = config.recipe.augment.cropScale;
  const grid = arch.imgSize / arch.patchSize;
  const data = mixture(sources, { samplesPerEpoch: config.samplesPerEpoch, seed: config.seed, pre, grid, hflip: config.recipe.augment.hflip, colour: config.recipe.augment.colour, ...(cropScale ? { augment: { randomResizedCrop: { scale: cropScale } } } : {}) });
  const cfg = clip ? { ...clip.vision, numClasses: data.classes.length } : vitConfig(config.arch, { numClasses: data.classes.length });
  const tokenizerFile = config.tokenizer ? resolve(base, config.tokenizer) : undefined;
  const tables = new Map<string, CaptionTable>();
  for (const s of sources) if (s.captions && clip && tokenizerFile) tables.set(s.name, captionTable(s.name, s.captions, clip, ClipTokenizer.fromFile(tokenizerFile)));

  const probeOf = (h: NonNullable<PretrainConfig['heldOut']>) => probeLineSets(cacheDir, arch, h);
  const probe = config.heldOut ? await probeOf(config.heldOut) : undefined;
  const validation = config.validation ? await probeOf(config.validation) : undefined;
  const dataSeconds = (performance.now() - t0) / 1000;

  const recipe = pretrainRecipe(config);
  const heads: PretrainHead[] = sources.map((s, i) => ({ source: s.name, classes: s.classes, offset: data.offsets[i]!, labelSmoothing: recipe.labelSmoothing, objective: s.objective, patches: s.patches, patchTokens: grid * grid, ...(tables.has(s.name) ? { captions: tables.get(s.name)! } : {}) }));
  const method = pretrainMethod(heads, recipe);
  const rng = mulberry32(mixSeed(config.seed, INIT_STREAM));
  let given: GivenWeights | undefined;
  let backbone: StateDict;
  let start: string;
  if (config.init.weights) {
    const file = resolve(base, config.init.weights);
    given = givenWeights(cfg, file, config.init.heads ? resolve(base, config.init.heads) : undefined);
    for (const n of given.notes) opts.progress.log(`init: ${n}`);
    backbone = given.backbone;
    start = sha256File(file);
  } else {
    backbone = randomBackbone(cfg, rng);
    start = `random init (seed ${config.seed})`;
  }
  const initial = new Map<string, HostTensor>([...backbone].map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.data) }]));
  const fresh = await method.init({ cfg, numClasses: cfg.numClasses, backbone, rng }, {});
  for (const hd of heads) {
    const kept = givenHead(given, hd.source, hd.classes, cfg.embedDim);
    // A given head replaces the fresh classifier; tensors it lacks (the patch-level head) start fresh.
    for (const [k, t] of new Map([...fresh, ...(kept ?? [])])) if (k.startsWith(`heads.${hd.source}.`)) initial.set(k, t);
  }
  // A contrastive term's tensors (text tower, projections, logit_scale) are not per-source heads.
  for (const [k, t] of fresh) if (!k.startsWith('heads.')) initial.set(k, t);

  // What the tensors are trained for (a checkpoint for anything else is refused on --resume): the
  // heads and objectives, the start, every source's images and labels, the mixture and the recipe.
  const digest = createHash('sha256');
  for (const s of sources) digest.update(`${s.name}|${splitDigest({ train: s.train, val: s.val })}|`);
  const fingerprint: RunFingerprint = {
    version: 1,
    method: { name: 'pretrain', options: { heads: heads.map((h) => ({ source: h.source, classes: h.classes, objective: h.objective, patches: h.patches })) } },
    backbone: { arch: cfg.name, imgSize: cfg.imgSize, sha256: start, weights: config.init.weights ?? start },
    data: {
      config: { sources: config.sources, samplesPerEpoch: config.samplesPerEpoch, heads: config.init.heads ?? null },
      kShot: null,
      sha256: digest.digest('hex'),
      classes: data.classes,
      trainImages: sources.reduce((a, s) => a + s.train.samples.length, 0),
      valImages: sources.reduce((a, s) => a + s.val.samples.length, 0),
    },
    seed: config.seed,
    recipe,
  };

  const job: TrainJob = {
    name: config.name,
    outDir: resolve(base, config.output.dir),
    method: method as never,
    options: {},
    recipe,
    arch: cfg.name,
    backboneSha256: start,
    seed: config.seed,
    fingerprint,
    patience: 0,
    resume: opts.resume,
    config,
    data,
    initial,
    makeEngine: async (params) => {
      const spec = { cfg, backbone, method: method as never, options: {}, params, numClasses: cfg.numClasses, labelSmoothing: recipe.labelSmoothing, seed: config.seed };
      return chooseEngine(config.engine, {
        tfjs: () => new TfEngine({ ...spec, backend: 'tfjs' }),
        ort: () => OrtEngine.create(spec),
        log: (line) => opts.progress.log(line),
      });
    },
    evaluate: pretrainEvaluator({ cfg, data, sources: heads.map((x) => ({ name: x.source, classes: [...x.classes] })), ...(probe ? { probe } : {}), ...(validation ? { validation } : {}), epochs: recipe.epochs }),
    progress: opts.progress,
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  await initTf(config.backend); // graph recording folds constants through TfOps, whichever engine trains
  return { job, cfg, sources, heads, data, ...(probe ? { probe } : {}), ...(validation ? { validation } : {}), start, dataSeconds, ...(clip ? { clip: { cfg: clip, ...(tokenizerFile ? { tokenizerFile } : {}) } } : {}) };
}

/** The MLP activation of a CLIP pretrained here (written into the weights' metadata as clip.act). */
export const CLIP_PRETRAIN_ACT = 'gelu';

/** A contrastive source needs a CLIP arch and its tokenizer; only captions sources carry captions. */
function checkContrastive(config: PretrainConfig, file: string, clip: ClipConfig | undefined): void {
  const i = config.sources.findIndex((s) => s.objective === 'contrastive');
  if (i < 0) return;
  const s = config.sources[i]!;
  if (s.kind !== 'captions') throw fieldError(file, `sources.${i}.objective`, `the contrastive objective reads captions; only a source of kind "captions" has them (this one is "${s.kind}")`, 'pretrain config');
  if (!clip) throw fieldError(file, 'arch', `source ${s.name} is contrastive (image–text), so arch must be a CLIP variant with a text tower, not the ViT "${config.arch}"`, 'pretrain config');
  if (!config.tokenizer) throw fieldError(file, 'tokenizer', `source ${s.name} is contrastive: name the text tower's tokenizer.json (tools/bpe-vocab.ts trains one)`, 'pretrain config');
  const j = config.sources.findIndex((x, k) => k > i && x.objective === 'contrastive');
  if (j >= 0) throw fieldError(file, `sources.${j}`, 'one captions source per run: the text tower and temperature are shared; put parts and Fashion-MNIST in the same captions source', 'pretrain config');
}

/** Every caption of a source tokenized once: [key][template] ids padded to the context, and EOT positions. */
function captionTable(source: string, c: NonNullable<LoadedSource['captions']>, clip: ClipConfig, tok: ClipTokenizer): CaptionTable {
  if (tok.vocabSize > clip.text.vocabSize) throw new CompilerError('CONFIG_INVALID', `${tok.source}: ${tok.vocabSize} tokens, but ${clip.name}'s text tower embeds ${clip.text.vocabSize}; train the vocabulary with at most that many (tools/bpe-vocab.ts --vocab ${clip.text.vocabSize})`);
  const L = clip.text.contextLength;
  const ids: Int32Array[][] = [];
  const eot: number[][] = [];
  for (const k of c.keys) {
    const n = k.kind === 'part' ? c.templates.parts.length : c.templates.garments.length;
    const row = Array.from({ length: n }, (_, t) => tok.encodePadded(captionText(k, c.templates, t), L, `source ${source}: caption of ${keyName(k)}`));
    ids.push(row);
    eot.push(row.map((r) => tok.eotIndex(r)));
  }
  return { clip, ids, eot, length: 1 + Math.max(...eot.flat()) };
}
