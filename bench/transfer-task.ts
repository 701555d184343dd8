/**
 * The benchmark task shared by bench/transfer.ts, bench/methods.ts and bench/engines.ts: a
 * backbone (default: the shipped line backbone, compiler/backbones/shipped.ts) transferred to one
 * of the tasks below, with the per-method recipes, and one training run through the real trainer
 * reduced to the figures the reports print.
 *
 * Tasks:
 * - `line`: the benchmark line (issue 15): generated bracket × blue-anodised parts, a design and
 *   a finish no pretraining source of the line backbone drew; drawn at the backbone's input size;
 *   `cap` training and `val` validation images per class.
 * - `fmnist5-9`: Fashion-MNIST classes 5–9 (train split capped at `cap`, `val` per class of the
 *   test split).
 * - `parts`: the first parts task (a steel plate drawn at 64 px and loaded at 32), as the old
 *   32-px backbone's tables measured it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileConfig, type CompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { median, repo } from './lib.ts';
import type { InspectionMetrics } from '../runtime/pipeline/inspection.ts';
import type { ShippedBackbone } from '../compiler/backbones/shipped.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { PARTS_VERSION } from '../compiler/data/parts.ts';

/** The benchmark line: a design and a finish the line backbone never saw in pretraining. */
export const BENCH_LINE = { part: 'bracket', material: 'blue-anodised' } as const;
/** Prompt tokens per layer for the VPT methods: short budgets, and tfjs-wasm cost grows with it. */
export const PROMPTS = 8;

export interface TaskSpec {
  backbone: ShippedBackbone;
  /** 'line', 'fmnist5-9' or 'parts'. */
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
  /** Checkpoints and logs go to .cache/bench/<outGroup>/<backbone key>/<name>. */
  outGroup: string;
  name: string;
  /** Read a finished run back instead of training it again (same backbone file, same name). */
  resume?: boolean;
  /** The method's base learning rate instead of recipeFor's (a backbone whose features need another). */
  lr?: number;
}

/**
 * A short key of a backbone's weights file (sha256 prefix): bench runs live under it, so a run
 * read back (resume) is always one trained on these exact weights, never a stand-in's.
 */
export function backboneKey(b: ShippedBackbone): string {
  return `${b.arch}-${createHash('sha256').update(readFileSync(b.weights)).digest('hex').slice(0, 12)}`;
}
export const benchDir = (b: ShippedBackbone, group: string, name: string) => join(repo, '.cache/bench', group, backboneKey(b), name);

/** The data block of a task's compile config; parts tasks inspect (okLabels [ok] by default, thresholdsOf). */
export function taskData(task: string, cap: number, val: number, imgSize: number) {
  if (task === 'line') return { kind: 'parts', ...BENCH_LINE, perClass: cap + val, size: imgSize, seed: 0, valFraction: val / (cap + val) };
  if (task === 'parts') return { kind: 'parts', perClass: Math.round(cap / 0.75), size: 32, renderSize: 64, seed: 0, valFraction: 0.25 };
  if (task === 'fmnist5-9') return { kind: 'fashion-mnist', classes: [5, 6, 7, 8, 9], limitPerClass: cap, valLimitPerClass: val };
  throw new Error(`--tasks: unknown task "${task}"; known: line, fmnist5-9, parts`);
}

/** What each task is, for report headers. */
export function taskText(task: string, cap: number, val: number): string {
  if (task === 'line') return `line = the benchmark line (generated ${BENCH_LINE.part} × ${BENCH_LINE.material} parts, parts generator version ${PARTS_VERSION}, drawn at the backbone's input size; 5 classes ok / scratch / dent / missing_hole / stain; ${cap} training and ${val} validation images per class)`;
  if (task === 'parts') return `parts = the first parts task (a steel plate drawn at 64 px and loaded at 32, version ${PARTS_VERSION}; ${Math.round(cap / 0.75)} images per class, 25 % held out)`;
  return `fmnist5-9 = Fashion-MNIST classes 5–9 (train split capped at ${cap}/class, validation ${val}/class of the test split)`;
}

const withLr = <R extends { optimizer: object }>(r: R, lr: number | undefined): R => (lr ? { ...r, optimizer: { ...r.optimizer, lr } } : r);

/** `linear=0.1,vpt-deep=0.05` → base learning rates per method (bench:transfer --lr). */
export function parseLrs(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kv of text ? text.split(',') : []) {
    const [m, v] = kv.split('=', 2) as [string, string | undefined];
    if (!m || !(Number(v) > 0)) throw new Error(`--lr: "${kv}" is not method=<positive number>`);
    out[m] = Number(v);
  }
  return out;
}

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
    backbone: { arch: s.backbone.arch, weights: s.backbone.weights },
    data: taskData(s.task, s.cap, s.val, vitConfig(s.backbone.arch).imgSize),
    ...(s.shots === 'all' ? {} : { kShot: Number(s.shots) }),
    method: { name: s.method, options: s.method.startsWith('vpt') ? { prompts: PROMPTS } : {} },
    recipe: withLr(recipeFor(s.method, s.shots, s.epochs, s.shotEpochs), s.lr),
    seed: s.seed,
    ...(s.engine ? { engine: s.engine } : {}),
    ...(s.backend ? { backend: s.backend } : {}),
    output: { dir: benchDir(s.backbone, s.outGroup, s.name) },
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
  const p = await prepareJob(taskConfig(s), join(repo, 'bench/transfer.yaml'), { resume: s.resume ?? false, progress: makeProgress('none') });
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
