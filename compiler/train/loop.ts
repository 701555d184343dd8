/**
 * The training loop: reads in one sitting and knows nothing method-specific. Parameters live
 * on the host; the engine computes loss and gradients; the optimiser updates; every epoch is
 * evaluated, checkpointed and reported. An abort (Ctrl-C) saves a mid-epoch checkpoint that
 * `resume` continues from the same batch, because batch order is a pure function of
 * (seed, epoch). What happens to a run already in the output folder is planRun's (resume.ts):
 * a finished run is final, a run for another job is refused.
 */
import { join } from 'node:path';
import type { Engine } from './engine.ts';
import type { ImageSample, InitContext, MethodState, PromptMethod, Recipe, SampleRequest } from '../methods/method.ts';
import { mixSeed, mulberry32 } from '../../devices/rng.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { newOptimizerState, optimizerFromTensors, optimizerStep, optimizerTensors, type TrainableTensor } from './optim.ts';
import { lrAt, scaledLr } from './schedule.ts';
import { MetricAccumulator, columnSums, type EvalMetrics } from './metrics.ts';
import { saveCheckpoint, type TrainState } from './checkpoint.ts';
import { planRun, type RunPlan } from './resume.ts';
import type { RunFingerprint } from './fingerprint.ts';
import { encodeSafetensors } from '../backbones/safetensors.ts';
import { writeFileSync, mkdirSync } from 'node:fs';
import { writeReport } from './report.ts';
import type { Progress } from './progress.ts';
import { diagnose, warningLine, type TrainingWarning } from './diagnose.ts';
import { CompilerError } from '../ops/errors.ts';
import type { InspectionRule } from '../../runtime/pipeline/inspection.ts';

export interface Batch {
  x: Float32Array;
  y: Int32Array;
  /** Per-batch inputs the data itself supplies (pretraining's patch labels), besides the method's. */
  inputs?: Map<string, HostTensor>;
}

/** What the loop needs from a dataset: deterministic batches. */
export interface TrainData {
  classes: string[];
  trainSize: number;
  trainBatches(epoch: number, batchSize: number): AsyncIterable<Batch>;
  valBatches(batchSize: number): AsyncIterable<Batch>;
  /** Training images for a method's data-dependent init/state (absent: such methods refuse). */
  sample?(request: SampleRequest): Promise<ImageSample>;
}

export interface TrainJob {
  name: string;
  outDir: string;
  method: PromptMethod<Record<string, unknown>>;
  options: Record<string, unknown>;
  recipe: Recipe;
  arch: string;
  backboneSha256: string;
  seed: number;
  /** Everything that determines the trained tensors; a checkpoint for another fingerprint is refused. */
  fingerprint: RunFingerprint;
  /** Stop after this many epochs without a better validation top-1 (0: never). */
  patience: number;
  /** Continue (or reuse) the run in outDir; false replaces it. */
  resume: boolean;
  config: unknown;
  data: TrainData;
  /** Trainable tensors with their initial values (ignored when resuming). */
  initial: Map<string, HostTensor>;
  makeEngine(params: Map<string, HostTensor>): Engine | Promise<Engine>;
  /** What a method's `initState`/`epochEnd` see besides the current tensors (methods with state). */
  methodContext?: Omit<InitContext, 'rng' | 'sample'>;
  progress: Progress;
  signal?: AbortSignal;
  /**
   * Validation other than top-1 over `data.valBatches` (pretraining: per-source heads, a probe of
   * a held-out line). Called after every epoch (1-based) with the engine's current tensors.
   */
  evaluate?(engine: Engine, batchSize: number, epoch: number): Promise<EvalMetrics>;
  /** The task inspects parts (okLabels as class indices + minConfidence): validation also reports escape / false-reject rates. */
  inspection?: InspectionRule;
  /** A divergence / collapse / no-learning warning stops the run with that error (after saving the checkpoint and report). */
  strict?: boolean;
}

export interface TrainResult {
  state: TrainState;
  /** What was done with the run in outDir: trained from scratch, continued, or used as finished. */
  plan: RunPlan['kind'];
  interrupted: boolean;
  earlyStopped: boolean;
  checkpointDir: string;
  bestParamsFile: string;
}

/** A method's own weight decay for one tensor, when it has one (SPT's head). */
function decayOverride(job: TrainJob, name: string): { weightDecay?: number } {
  const wd = job.method.weightDecayFor?.(name, job.options);
  return wd === undefined ? {} : { weightDecay: wd };
}

/** New warnings about the run so far (compiler/train/diagnose.ts), recorded in the state. */
function check(job: TrainJob, state: TrainState, final: boolean): TrainingWarning[] {
  const valCounts = state.lastConfusion.map((row) => row.reduce((a, b) => a + b, 0));
  const found = diagnose(state.history, { classes: state.classes, valCounts, lr: job.recipe.optimizer.lr, final, bestTop1: state.bestTop1, warmupEpochs: job.recipe.warmupEpochs, ...(state.initialLoss !== undefined && { initialLoss: state.initialLoss }) }, state.warnings ?? []);
  if (found.length) state.warnings = [...(state.warnings ?? []), ...found];
  return found;
}

/** Prints new warnings; under --strict the first one ends the run (checkpoint and report are written already). */
function report(job: TrainJob, found: TrainingWarning[]): void {
  for (const w of found) job.progress.log(warningLine(w));
  const w = found[0];
  if (job.strict && w) throw new CompilerError(w.code, `${w.message} (--strict). Likely cause: ${w.cause}. Fix: ${w.fix}; or run without --strict to train on`);
}

/** Keeps a method's per-epoch randomness apart from data order and dropout. */
const METHOD_STREAM = 0x6d657468; // 'meth'

export async function evaluate(engine: Engine, data: TrainData, batchSize: number, inspection?: InspectionRule): Promise<EvalMetrics> {
  const acc = new MetricAccumulator(data.classes.length, inspection);
  for await (const b of data.valBatches(batchSize)) acc.add(await engine.predict(b.x, b.y.length), b.y);
  return acc.result();
}

export async function train(job: TrainJob): Promise<TrainResult> {
  const { recipe, data } = job;
  const ckptDir = join(job.outDir, 'checkpoint');
  const bestFile = join(job.outDir, 'best.safetensors');
  const plan = planRun({ outDir: job.outDir, resume: job.resume, fingerprint: job.fingerprint, epochs: recipe.epochs });
  job.progress.log(plan.line);
  if (plan.kind === 'finished') {
    const s = plan.checkpoint.state;
    return { state: s, plan: plan.kind, interrupted: false, earlyStopped: s.finished === 'early-stop', checkpointDir: ckptDir, bestParamsFile: bestFile };
  }
  mkdirSync(job.outDir, { recursive: true });

  let params = job.initial;
  let optState = newOptimizerState();
  let state: TrainState;
  if (plan.kind === 'continue') {
    const c = plan.checkpoint;
    params = c.params;
    optState = optimizerFromTensors(c.optimizer);
    state = c.state;
  } else {
    const now = new Date().toISOString();
    state = {
      version: 2, fingerprint: job.fingerprint, name: job.name, method: job.method.name, options: job.options, classes: data.classes, arch: job.arch,
      backboneSha256: job.backboneSha256, engine: '', backend: '', seed: job.seed, epoch: 0, stepInEpoch: 0, globalStep: 0,
      bestTop1: -1, bestEpoch: -1, epochsWithoutImprovement: 0, history: [], lastConfusion: [], config: job.config, createdAt: now, updatedAt: now,
    };
  }

  const engine = await job.makeEngine(params);
  state.engine = engine.name;
  state.backend = engine.backend;
  const trainables: TrainableTensor[] = [...engine.params()].map(([name, t]) => ({ name, shape: [...t.shape], value: Float32Array.from(t.data), decay: job.method.decays(name, job.options), ...decayOverride(job, name) }));
  const save = () => saveCheckpoint(ckptDir, state, new Map(trainables.map((p) => [p.name, { shape: p.shape, data: p.value }])), optimizerTensors(optState, trainables));

  // Method state (DA-VPT's class→proxy mapping): made once, updated after every epoch, saved in
  // the checkpoint, and drawn from (seed, epoch) so a resumed run continues identically.
  const { method, options } = job;
  const stateCtx = (epoch: number) => {
    if (!job.methodContext) throw new Error(`${method.name} keeps training state, which needs TrainJob.methodContext`);
    return {
      ...job.methodContext,
      rng: mulberry32(mixSeed(job.seed, epoch, METHOD_STREAM)),
      ...(data.sample ? { sample: (r: SampleRequest) => data.sample!(r) } : {}),
      params: new Map(trainables.map((p) => [p.name, { shape: p.shape, data: p.value }])),
    };
  };
  if (method.initState && !state.methodState) state.methodState = await method.initState(stateCtx(-1), options);
  const methodState = (): MethodState => state.methodState ?? {};

  const batch = recipe.batchSize;
  const stepsPerEpoch = Math.floor(data.trainSize / batch) || 1;
  const baseLr = scaledLr(recipe.optimizer.lr, batch, recipe.optimizer.scaleLrByBatch);
  const perStep = recipe.schedulePer === 'step';
  const schedule = { baseLr, warmup: recipe.warmupEpochs * (perStep ? stepsPerEpoch : 1), total: recipe.epochs * (perStep ? stepsPerEpoch : 1), ...(recipe.warmupLr !== undefined ? { constantWarmupLr: recipe.warmupLr } : {}) };

  let interrupted = false;
  let earlyStopped = false;
  // A method with nothing to train (zero-shot CLIP) is evaluated once: one epoch of record, no steps.
  const epochs = trainables.length ? recipe.epochs : Math.min(recipe.epochs, 1);
  if (!trainables.length && state.epoch < epochs) job.progress.log(`${method.name} has no trainable tensors: one evaluation epoch, no steps`);
  try {
    for (let epoch = state.epoch; epoch < epochs; epoch++) {
      const t0 = performance.now();
      let seen = 0;
      let lossSum = 0;
      let i = 0;
      job.progress.startEpoch(epoch, epochs, trainables.length ? stepsPerEpoch : 0, state.stepInEpoch);
      for await (const b of trainables.length ? data.trainBatches(epoch, batch) : []) {
        if (i++ < state.stepInEpoch) continue; // resume inside an epoch: same order, skip done batches
        if (i > stepsPerEpoch) break;
        const lr = lrAt(schedule, perStep ? state.globalStep : epoch);
        const own = method.batchInputs?.(b.y, methodState(), options);
        const r = await engine.step(b.x, b.y, state.globalStep, b.inputs ? new Map([...(own ?? []), ...b.inputs]) : own);
        if (!Number.isFinite(r.loss)) {
          throw new CompilerError('NAN_LOSS', `training diverged: the loss became ${r.loss} at epoch ${epoch + 1}, step ${i} (lr ${lr.toExponential(2)}); lower recipe.optimizer.lr (now ${recipe.optimizer.lr}) and start over without --resume (compile --fresh)`);
        }
        if (state.globalStep === 0) state.initialLoss = r.loss; // computed before the first update
        optimizerStep(recipe.optimizer, optState, trainables, r.grads, lr);
        engine.setParams(new Map(trainables.map((p) => [p.name, p.value])));
        state.stepInEpoch = i;
        state.globalStep++;
        seen += b.y.length;
        lossSum += r.loss * b.y.length;
        job.progress.step(i, { loss: r.loss, imagesPerSec: seen / ((performance.now() - t0) / 1000), lr });
        if (job.signal?.aborted) {
          interrupted = true;
          break;
        }
      }
      if (interrupted) {
        save();
        job.progress.log(`interrupted: checkpoint saved at epoch ${epoch + 1}, step ${state.stepInEpoch}; continue with --resume`);
        break;
      }
      if (method.epochEnd) state.methodState = await method.epochEnd(stateCtx(epoch), methodState(), epoch, options);
      const m = await (job.evaluate ? job.evaluate(engine, Math.max(batch, 64), epoch + 1) : evaluate(engine, data, Math.max(batch, 64), job.inspection));
      const seconds = (performance.now() - t0) / 1000;
      state.history.push({
        epoch: epoch + 1, lr: lrAt(schedule, perStep ? state.globalStep : epoch), trainLoss: lossSum / Math.max(1, seen), valLoss: m.loss, valTop1: m.top1, perClass: m.perClass,
        predicted: m.predicted ?? columnSums(m.confusion), ...(m.inspection && { inspection: m.inspection }), imagesPerSec: seen / seconds, seconds, ...(m.details ? { details: m.details } : {}),
      });
      state.lastConfusion = m.confusion;
      state.epoch = epoch + 1;
      state.stepInEpoch = 0;
      if (m.top1 > state.bestTop1) {
        state.bestTop1 = m.top1;
        state.bestEpoch = epoch + 1;
        state.epochsWithoutImprovement = 0;
        writeFileSync(bestFile, encodeSafetensors(new Map(trainables.map((p) => [p.name, { shape: p.shape, data: p.value }])), { metadata: { method: state.method, arch: state.arch, classes: state.classes.join(','), epoch: String(epoch + 1), val_top1: m.top1.toFixed(4) } }));
      } else {
        state.epochsWithoutImprovement++;
      }
      earlyStopped = job.patience > 0 && state.epochsWithoutImprovement >= job.patience;
      if (earlyStopped) state.finished = 'early-stop';
      else if (state.epoch === recipe.epochs) state.finished = 'all-epochs';
      const found = trainables.length ? check(job, state, earlyStopped || state.epoch >= recipe.epochs) : []; // nothing trained, nothing to diagnose
      save(); // after `finished` is set: the saved run says it is final
      writeReport(join(job.outDir, 'report.html'), state);
      job.progress.endEpoch(state.history.at(-1)!);
      report(job, found);
      if (earlyStopped) {
        job.progress.log(`early stop: validation top-1 has not improved for ${job.patience} epoch(s) (best ${(100 * state.bestTop1).toFixed(2)} % at epoch ${state.bestEpoch})`);
        break;
      }
    }
  } finally {
    engine.dispose();
    job.progress.stop();
  }
  return { state, plan: plan.kind, interrupted, earlyStopped, checkpointDir: ckptDir, bestParamsFile: bestFile };
}
