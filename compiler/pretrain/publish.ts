/**
 * The outputs of a pretraining run, from the final tensors (the cosine schedule ends at lr 0), or,
 * when the config names a validation line, from the epoch whose validation probe scored best
 * (features a new line can use peak before the supervised objective drifts toward the pretraining
 * lines' own cues; docs/bench/pretrain.md):
 * - `<name>.safetensors`: the backbone stored F16 with timm names, plus `head.*` = the first
 *   source's head (so the file is a complete timm classifier for it; metadata names the source);
 * - `<name>.heads.safetensors`: every source's head as `heads.<source>.{weight,bias}` (F32);
 * - `<name>.json`: the card (data, recipe, per-epoch history, F16 figures, machine, command,
 *   wall time).
 * Before storing, the output features are centred and scaled over the sources' training images and
 * that is folded into the final norm and the heads (compiler/pretrain/standardize.ts; the card's
 * `standardised`), unless `output.standardise` is 0: the classifiers compute what they did, and a
 * new head trained on the frozen features no longer fights a component common to every image.
 * The F16 file is read back and scored again, so the card's figures are those of the shipped bytes.
 */
import { createHash } from 'node:crypto';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafetensors, readSafetensors, type StateDict } from '../backbones/safetensors.ts';
import { vitTensorShapes } from '../backbones/vit-weights.ts';
import { ortVersion } from '../train/ort-session.ts';
import type { TrainResult } from '../train/loop.ts';
import { headKeys } from './objective.ts';
import { evaluateSources, probeHeldOut } from './evaluate.ts';
import type { PreparedPretrain } from './job.ts';
import type { PretrainConfig } from './config.ts';
import { shares } from './mixture.ts';
import { extractFeatures } from './probe.ts';
import { featureStats, foldStandardisation, outputScale, type FeatureStats } from './standardize.ts';
import { preprocessFor, toBatches } from '../data/transforms.ts';

export interface PublishOptions {
  /** Folder for the three files. */
  dir: string;
  /** The command line as typed, for the card. */
  command: string;
  /** Seconds this invocation took, data included. */
  wallSeconds: number;
}

export interface Published {
  weightsFile: string;
  headsFile: string;
  cardFile: string;
  card: Record<string, unknown>;
}

const norm = (v: Float32Array): number => Math.sqrt(v.reduce((a, x) => a + x * x, 0));

/**
 * Output feature statistics of the trained backbone over `n` of the sources' training images, each
 * source's share as in the mixture, taken at an even stride through its set (deterministic).
 */
async function outputStats(p: PreparedPretrain, trained: StateDict, n: number): Promise<FeatureStats> {
  const pre = preprocessFor(p.cfg, 'stretch');
  const counts = shares(n, p.sources.map((s) => s.weight));
  const samples = p.sources.flatMap((s, i) => {
    const all = s.train.samples;
    const k = Math.min(counts[i]!, all.length);
    return Array.from({ length: k }, (_, j) => all[Math.floor((j * all.length) / k)]!);
  });
  const { x } = await extractFeatures(p.cfg, trained, toBatches(samples, pre, 128));
  return featureStats(x, p.cfg.embedDim);
}

export function machineInfo(): Record<string, unknown> {
  const c = cpus();
  return { cpu: c[0]?.model.trim() ?? 'unknown', cores: c.length, memoryGiB: Math.round(totalmem() / 2 ** 30), os: `${platform()} ${release()}`, node: process.versions.node, onnxruntime: ortVersion() };
}

export async function publishPretrain(p: PreparedPretrain, r: TrainResult, o: PublishOptions): Promise<Published> {
  const { cfg, job } = p;
  const byValidation = p.validation !== undefined && r.state.bestEpoch > 0;
  const trained = readSafetensors(byValidation ? r.bestParamsFile : join(r.checkpointDir, 'params.safetensors')).tensors;
  const epoch = byValidation ? r.state.bestEpoch : r.state.epoch;
  const standardise = (job.config as PretrainConfig).output.standardise;
  const stats = standardise > 0 ? await outputStats(p, trained, standardise) : undefined;
  const final = stats ? foldStandardisation(trained, stats) : trained;
  const first = p.heads[0]!;
  const backbone: StateDict = new Map();
  for (const k of vitTensorShapes({ ...cfg, numClasses: 0 }).keys()) backbone.set(k, final.get(k)!);
  const hk = headKeys(first.source);
  const withHead: StateDict = new Map([...backbone, ['head.weight', final.get(hk.w)!], ['head.bias', final.get(hk.b)!]]);
  const heads: StateDict = new Map([...final].filter(([k]) => k.startsWith('heads.')));
  const metadata: Record<string, string> = {
    'edgeprompt.arch': cfg.name,
    'edgeprompt.img_size': String(cfg.imgSize),
    'edgeprompt.patch_size': String(cfg.patchSize),
    'edgeprompt.embed_dim': String(cfg.embedDim),
    'edgeprompt.depth': String(cfg.depth),
    'edgeprompt.num_heads': String(cfg.numHeads),
    'edgeprompt.mean': cfg.mean.join(','),
    'edgeprompt.std': cfg.std.join(','),
    'edgeprompt.head_source': first.source,
    'edgeprompt.head_classes': first.classes.join(','),
    'edgeprompt.sources': p.heads.map((h) => `${h.source}:${h.classes.length}`).join(','),
    'edgeprompt.command': o.command,
  };
  mkdirSync(o.dir, { recursive: true });
  const weightsFile = join(o.dir, `${job.name}.safetensors`);
  const headsFile = join(o.dir, `${job.name}.heads.safetensors`);
  const cardFile = join(o.dir, `${job.name}.json`);
  const bytes = encodeSafetensors(withHead, { dtype: 'F16', metadata });
  writeFileSync(weightsFile, bytes);
  writeFileSync(headsFile, encodeSafetensors(heads, { metadata: { 'edgeprompt.sources': metadata['edgeprompt.sources']! } }));

  // The shipped bytes, read back: rounding error and every figure again.
  const f16 = readSafetensors(weightsFile).tensors;
  let worst = 0;
  for (const [k, t] of withHead) {
    const g = f16.get(k)!.data;
    for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(g[i]! - t.data[i]!));
  }
  const params = new Map([...f16].filter(([k]) => !k.startsWith('head.')));
  for (const [k, t] of heads) params.set(k, t);
  const engine = await job.makeEngine(params);
  let shipped: Record<string, number>;
  try {
    const m = await evaluateSources(engine, p.data, p.heads.map((h) => ({ name: h.source, classes: [...h.classes] })), Math.max(job.recipe.batchSize, 64));
    shipped = Object.fromEntries(Object.entries(m.bySource).map(([k, v]) => [`top1.${k}`, v]));
    if (p.probe) {
      const pr = await probeHeldOut(cfg, params, p.probe);
      shipped['probe.top1'] = pr.top1;
      shipped['probe.auroc'] = pr.auroc;
    }
    if (p.validation) {
      const pr = await probeHeldOut(cfg, params, p.validation);
      shipped['validation.top1'] = pr.top1;
      shipped['validation.auroc'] = pr.auroc;
    }
  } finally {
    engine.dispose();
  }

  const st = r.state;
  const trainingSeconds = st.history.reduce((a, h) => a + h.seconds, 0);
  const evalSeconds = st.history.reduce((a, h) => a + (h.details?.evalSeconds ?? 0), 0);
  const cpuSeconds = st.history.reduce((a, h) => a + (h.details?.cpuSeconds ?? 0), 0);
  const images = st.globalStep * job.recipe.batchSize;
  const card = {
    name: job.name,
    file: `${job.name}.safetensors`,
    headsFile: `${job.name}.heads.safetensors`,
    arch: { name: cfg.name, imgSize: cfg.imgSize, patchSize: cfg.patchSize, embedDim: cfg.embedDim, depth: cfg.depth, numHeads: cfg.numHeads, mlpRatio: cfg.mlpRatio, eps: cfg.eps, mean: cfg.mean, std: cfg.std, tokens: 1 + (cfg.imgSize / cfg.patchSize) ** 2, params: [...backbone.values()].reduce((a, t) => a + t.data.length, 0), names: 'timm VisionTransformer state-dict names; head.* = the first source\'s head' },
    weights: { dtype: 'F16', bytes: bytes.length, sha256: createHash('sha256').update(readFileSync(weightsFile)).digest('hex'), maxAbsRoundingError: worst },
    start: p.start,
    sources: Object.fromEntries(p.sources.map((s) => [s.name, s.describe])),
    mixture: { samplesPerEpoch: job.data.trainSize, perEpoch: Object.fromEntries(p.sources.map((s, i) => [s.name, p.data.perEpoch[i]])), classes: p.data.classes },
    heldOut: (job.config as { heldOut?: unknown }).heldOut ?? null,
    validation: (job.config as { validation?: unknown }).validation ?? null,
    published: { epoch, chosenBy: byValidation ? 'best validation-line probe top-1' : 'last epoch' },
    standardised: stats
      ? { images: stats.images, of: "the sources' training images, in the mixture's proportions", centred: 'per feature', meanNorm: norm(stats.mean), scale: outputScale(stats), folded: 'norm.weight, norm.bias and every head (they compute what they did)' }
      : null,
    recipe: { ...job.recipe, engine: st.engine, backend: st.backend, steps: st.globalStep, images, seed: st.seed },
    history: st.history.map((h) => ({ epoch: h.epoch, lr: h.lr, trainLoss: h.trainLoss, valLoss: h.valLoss, valTop1: h.valTop1, imagesPerSec: h.imagesPerSec, seconds: h.seconds, ...h.details })),
    final: { fp32: (byValidation ? st.history[epoch - 1] : st.history.at(-1))?.details ?? {}, shippedF16: shipped },
    time: { trainingSeconds, evalSeconds, trainImagesPerSec: images / Math.max(1e-9, trainingSeconds - evalSeconds), cpuSeconds, dataSecondsThisRun: p.dataSeconds, wallSecondsThisRun: o.wallSeconds, loadAverageAtEnd: loadavg() },
    machine: machineInfo(),
    command: o.command,
    config: job.config,
    createdAt: new Date().toISOString(),
  };
  writeFileSync(cardFile, JSON.stringify(card, null, 1) + '\n');
  return { weightsFile, headsFile, cardFile, card };
}
