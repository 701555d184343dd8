/**
 * Says when a training run is going wrong, from the per-epoch history alone (pure, tested on its
 * own). A newcomer's first run with too high a learning rate shows losses jumping far above what
 * guessing scores and a model that answers one class for everything; the trainer names that, its
 * likely cause and the fix, in the progress output and report.html, and `--strict` stops the run.
 *
 * - TRAINING_DIVERGING: an epoch's mean training loss more than LOSS_START_FACTOR times where the
 *   run started (the first batch's loss before any update, or ln C, what a uniform guess scores,
 *   when that is higher), or training loss rising in each of the last RISING_EPOCHS epochs.
 * - TRAINING_COLLAPSED: ≥ COLLAPSE_SHARE of the validation predictions in one class (which is
 *   not itself most of the data) in two epochs running after the warmup (a fresh head often
 *   favours one class; VPT's first epoch even runs at lr 0).
 * - TRAINING_NOT_LEARNING (end of the run): best validation top-1 no better than always answering
 *   the commonest class, plus NOT_LEARNING_MARGIN.
 */
import type { EpochRecord } from './epoch-record.ts';

export type TrainingWarningCode = 'TRAINING_DIVERGING' | 'TRAINING_COLLAPSED' | 'TRAINING_NOT_LEARNING';

export interface TrainingWarning {
  code: TrainingWarningCode;
  /** The epoch (1-based) at which it was seen. */
  epoch: number;
  /** What was seen, with the numbers. */
  message: string;
  cause: string;
  fix: string;
}

export const RISING_EPOCHS = 3;
/**
 * How far the rising window must climb to count: a fifth above where it started. SGD at batch 32
 * drifts up a few percent over three epochs in runs that learn well (configs/parts-linear.yaml at
 * base lr 1: 1.033 → 1.066 → 1.078 → 1.127, best 67.2 %), while the rate that does overshoot rises
 * by half (base lr 4: 1.417 → 1.470 → 1.679 → 2.080).
 */
export const RISING_MIN_FACTOR = 1.2;
export const LOSS_START_FACTOR = 2;
export const COLLAPSE_SHARE = 0.95;
export const NOT_LEARNING_MARGIN = 0.05;

export interface DiagnoseContext {
  classes: readonly string[];
  /** Validation images per class (the confusion matrix's row sums). */
  valCounts: readonly number[];
  /** The base learning rate of the recipe (what the user would lower). */
  lr: number;
  /** The run has ended (all epochs, or early stop): also judge the result. */
  final: boolean;
  /** Best validation top-1 so far. */
  bestTop1: number;
  /** The first batch's loss before any update (absent: ln C stands in). */
  initialLoss?: number;
  /** Epochs of learning-rate warmup: no collapse is judged on them. */
  warmupEpochs?: number;
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const lowerLr = (lr: number) => `lower recipe.optimizer.lr (now ${lr}; try ${Number((lr / 10).toPrecision(2))}), or add recipe.warmupEpochs`;

function diverging(h: readonly EpochRecord[], c: DiagnoseContext): TrainingWarning | null {
  const last = h.at(-1);
  if (!last) return null;
  const chance = Math.log(Math.max(2, c.classes.length));
  const start = Math.max(chance, c.initialLoss ?? 0);
  const cause = 'the learning rate is too high for this backbone and batch: updates overshoot, the logits grow and the loss jumps instead of falling';
  if (last.trainLoss > LOSS_START_FACTOR * start) {
    const where = start > chance ? `where the run started (${start.toFixed(3)})` : `what guessing scores (ln ${c.classes.length} = ${chance.toFixed(3)})`;
    return { code: 'TRAINING_DIVERGING', epoch: last.epoch, message: `epoch ${last.epoch}: mean training loss ${last.trainLoss.toFixed(3)} is more than ${LOSS_START_FACTOR}× ${where}`, cause, fix: lowerLr(c.lr) };
  }
  if (h.length > RISING_EPOCHS) {
    const w = h.slice(-RISING_EPOCHS - 1).map((r) => r.trainLoss);
    if (w.every((v, i) => i === 0 || v > w[i - 1]!) && w.at(-1)! > RISING_MIN_FACTOR * w[0]!) {
      return { code: 'TRAINING_DIVERGING', epoch: last.epoch, message: `training loss rose in each of the last ${RISING_EPOCHS} epochs (${w.map((v) => v.toFixed(3)).join(' → ')})`, cause, fix: lowerLr(c.lr) };
    }
  }
  return null;
}

/** The class holding ≥ COLLAPSE_SHARE of an epoch's predictions, when that class is not most of the data. */
function collapsedOnto(r: EpochRecord | undefined, c: DiagnoseContext): number | null {
  const p = r?.predicted;
  if (!p || c.classes.length < 2) return null;
  const total = p.reduce((a, b) => a + b, 0);
  const n = c.valCounts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const k = p.indexOf(Math.max(...p));
  const share = p[k]! / total;
  const truthShare = n > 0 ? (c.valCounts[k] ?? 0) / n : 0;
  return share >= COLLAPSE_SHARE && truthShare < 0.5 ? k : null;
}

function collapsed(h: readonly EpochRecord[], c: DiagnoseContext): TrainingWarning | null {
  if ((h.at(-2)?.epoch ?? 0) <= (c.warmupEpochs ?? 0)) return null;
  const k = collapsedOnto(h.at(-1), c);
  if (k === null || collapsedOnto(h.at(-2), c) !== k) return null;
  const last = h.at(-1)!;
  const share = last.predicted![k]! / last.predicted!.reduce((a, b) => a + b, 0);
  return {
    code: 'TRAINING_COLLAPSED',
    epoch: last.epoch,
    message: `epochs ${last.epoch - 1}–${last.epoch}: ${pct(share)} of validation images are predicted "${c.classes[k]}" (per-class top-1 ${c.classes.map((n, i) => `${n} ${pct(last.perClass[i] ?? 0)}`).join(', ')})`,
    cause: 'the model answers one class for everything: usually a learning rate so high that the head\'s logits blow up and one class wins, less often training data dominated by that class',
    fix: `${lowerLr(c.lr)}; check the per-class image counts`,
  };
}

function notLearning(h: readonly EpochRecord[], c: DiagnoseContext): TrainingWarning | null {
  const last = h.at(-1);
  if (!c.final || !last) return null;
  const n = c.valCounts.reduce((a, b) => a + b, 0);
  const majority = n > 0 ? Math.max(...c.valCounts) / n : 1 / Math.max(1, c.classes.length);
  if (c.bestTop1 >= majority + NOT_LEARNING_MARGIN) return null;
  return {
    code: 'TRAINING_NOT_LEARNING',
    epoch: last.epoch,
    message: `best validation top-1 ${pct(Math.max(0, c.bestTop1))} after ${last.epoch} epoch(s) is no better than always answering the commonest class (${pct(majority)})`,
    cause: 'the learning rate is too high (the loss jumps) or too low (it hardly moves), the budget is too short, or the backbone\'s features do not separate these classes',
    fix: 'read the loss curve in report.html: jumping → lower recipe.optimizer.lr; falling slowly → raise it or recipe.epochs; flat → a backbone pretrained on images like these',
  };
}

/** The warnings the history shows now, at most one per code, skipping codes already in `seen`. */
export function diagnose(history: readonly EpochRecord[], c: DiagnoseContext, seen: readonly TrainingWarning[] = []): TrainingWarning[] {
  const known = new Set(seen.map((w) => w.code));
  return [diverging(history, c), collapsed(history, c), notLearning(history, c)].filter((w): w is TrainingWarning => w !== null && !known.has(w.code));
}

/** One line for the progress output. */
export const warningLine = (w: TrainingWarning): string => `warning [${w.code}] ${w.message}. Likely cause: ${w.cause}. Fix: ${w.fix}.`;
