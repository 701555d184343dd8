/**
 * The benchmark task shared by bench/transfer.ts and bench/engines.ts: the shipped backbone
 * (vit_micro_patch4_32 pretrained on Fashion-MNIST classes 0–4) transferred to Fashion-MNIST
 * classes 5–9 or to the generated parts set, with the per-method recipes, and one training run
 * through the real trainer reduced to the figures the reports print.
 */
import { join } from 'node:path';
import { compileConfig, type CompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { median, repo } from './lib.ts';
import type { InspectionMetrics } from '../runtime/pipeline/inspection.ts';

export const BACKBONE = 'vit_micro_patch4_32';
export const WEIGHTS = join(repo, 'compiler/backbones/weights/vit_micro_patch4_32.fmnist04.safetensors');
/** Prompt tokens per layer for the VPT methods: short budgets, and tfjs-wasm cost grows with it. */
export const PROMPTS = 8;

export interface TaskSpec {
  /** 'fmnist5-9' or 'parts'. */
  task: string;
  /** 'all' (capped training set) or a shot count such as '16'. */
  shots: string;
  method: string;
  seed: number;
  /** Training images per class (parts: the held-out quarter comes on top). */
  cap: number;
  /** Validation images per class (Fashion-MNIST test split). */
  val: number;
  /** Epochs on all data. */
  epochs: number;
  /** Epochs for k-shot runs. */
  shotEpochs: number;
  /** Training engine; absent: the config default (auto). */
  engine?: CompileConfig['engine'];
  /** tfjs backend; absent: the config default (auto). */
  backend?: CompileConfig['backend'];
  /** Checkpoints and logs go to .cache/bench/<outGroup>/<name>. */
  outGroup: string;
  name: string;
}

export const taskData = (task: string, cap: number, val: number) =>
  task === 'parts'
    ? { kind: 'parts', perClass: Math.round(cap / 0.75), size: 32, renderSize: 64, seed: 0, valFraction: 0.25 } // okLabels [ok] by default (thresholdsOf)
    : { kind: 'fashion-mnist', classes: [5, 6, 7, 8, 9], limitPerClass: cap, valLimitPerClass: val };

/** SGD for the prompt methods and linear probing (base lr ·batch/256), AdamW for full fine-tuning. */
export function recipeFor(method: string, shots: string, epochs: number, shotEpochs: number) {
  const e = shots === 'all' ? epochs : shotEpochs;
  const batch = shots === 'all' ? 32 : 16;
  if (method === 'full') return { epochs: e, batchSize: batch, warmupEpochs: 1, optimizer: { lr: 5e-4 } };
  return { epochs: e, batchSize: batch, warmupEpochs: 1, optimizer: { kind: 'sgd', lr: method === 'linear' ? 4 : 2, weightDecay: method === 'linear' ? 0 : 1e-4 } };
}

export function taskConfig(s: TaskSpec): CompileConfig {
  return compileConfig.parse({
    name: s.name,
    backbone: { arch: BACKBONE, weights: WEIGHTS },
    data: taskData(s.task, s.cap, s.val),
    ...(s.shots === 'all' ? {} : { kShot: Number(s.shots) }),
    method: { name: s.method, options: s.method.startsWith('vpt') ? { prompts: PROMPTS } : {} },
    recipe: recipeFor(s.method, s.shots, s.epochs, s.shotEpochs),
    seed: s.seed,
    ...(s.engine ? { engine: s.engine } : {}),
    ...(s.backend ? { backend: s.backend } : {}),
    output: { dir: join(repo, '.cache/bench', s.outGroup, s.name) },
  });
}

export interface RunResult {
  /** Best validation top-1 over the epochs (as VPT reports). */
  top1: number;
  /** Median training images/s over the epochs. */
  ips: number;
  /** Trainable values. */
  params: number;
  /** Wall time including data loading and engine set-up. */
  seconds: number;
  /** Engine and backend the trainer recorded. */
  engine: string;
  backend: string;
  /** Final-epoch training loss. */
  trainLoss: number;
  /** Class names in label order. */
  classes: string[];
  /** Parts tasks: escape / false-reject rates, AUROC and per class at the best epoch (okLabels [ok]). */
  inspection?: InspectionMetrics;
  /** What the trainer warned about (divergence, collapse, no learning). */
  warnings: string[];
}

/** Train one config from scratch (no resume) and reduce it to the report's figures. */
export async function runTask(s: TaskSpec): Promise<RunResult> {
  const t0 = performance.now();
  const p = await prepareJob(taskConfig(s), join(repo, 'bench/transfer.yaml'), { resume: false, progress: makeProgress('none') });
  const r = await train(p.job);
  const st = r.state;
  const inspection = st.history.find((h) => h.epoch === st.bestEpoch)?.inspection;
  return {
    top1: st.bestTop1,
    ips: median(st.history.map((h) => h.imagesPerSec)),
    params: [...p.job.initial.values()].reduce((a, t) => a + t.data.length, 0),
    seconds: (performance.now() - t0) / 1000,
    engine: st.engine,
    backend: st.backend,
    trainLoss: st.history.at(-1)?.trainLoss ?? NaN,
    classes: st.classes,
    ...(inspection && { inspection }),
    warnings: (st.warnings ?? []).map((w) => w.code),
  };
}

/** Mean and sample standard deviation. */
export function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, std: Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1)) };
}
