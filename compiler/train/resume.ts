/**
 * What a training job does with the run already in its output folder, decided once and said in
 * one line: train from scratch (no run, or a fresh start was asked for), continue an interrupted
 * run, or use a finished one as it is (an early stop or the last epoch is final). A run trained
 * for another job (fingerprint.ts) is refused with every differing field before anything is
 * written.
 */
import { existsSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CompilerError } from '../ops/errors.ts';
import { hasCheckpoint, loadCheckpoint, type LoadedCheckpoint } from './checkpoint.ts';
import { fingerprintDiff, type RunFingerprint } from './fingerprint.ts';

export type RunPlan = { kind: 'fresh'; line: string } | { kind: 'continue' | 'finished'; checkpoint: LoadedCheckpoint; line: string };

export interface RunPlanInput {
  outDir: string;
  /** false: start over, replacing a run in outDir. */
  resume: boolean;
  fingerprint: RunFingerprint;
  epochs: number;
}

/** outDir as the user would type it: relative to the working folder when inside it. */
export function displayDir(dir: string): string {
  const r = relative(process.cwd(), dir);
  return r && !r.startsWith('..') ? r : dir;
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

/** What a fresh start replaces; nothing else in outDir (explain/, the user's files) is touched. */
const RUN_FILES = ['checkpoint', 'best.safetensors', 'report.html'];

export function planRun(o: RunPlanInput): RunPlan {
  const where = displayDir(o.outDir);
  const ckptDir = join(o.outDir, 'checkpoint');
  const present = RUN_FILES.some((f) => existsSync(join(o.outDir, f)));
  if (!o.resume) {
    for (const f of RUN_FILES) rmSync(join(o.outDir, f), { recursive: true, force: true });
    return { kind: 'fresh', line: `training from scratch in ${where}${present ? ' (replacing the run that was there)' : ''}` };
  }
  if (!hasCheckpoint(ckptDir)) {
    if (present) for (const f of RUN_FILES) rmSync(join(o.outDir, f), { recursive: true, force: true }); // a run killed before its first checkpoint
    return { kind: 'fresh', line: `training from scratch in ${where} (no earlier run there)` };
  }
  const checkpoint = loadCheckpoint(ckptDir);
  const diff = fingerprintDiff(checkpoint.state.fingerprint, o.fingerprint);
  if (diff.length > 0) {
    throw new CompilerError(
      'CHECKPOINT_MISMATCH',
      `${where}: the run there was trained for another job, refusing to reuse its tensors (${diff.length} difference${diff.length > 1 ? 's' : ''}):\n${diff.map((l) => `  ${l}`).join('\n')}\n` +
        `start over with --fresh (compile) or without --resume (train), which replaces that run, or set another output.dir`,
    );
  }
  const s = checkpoint.state;
  if (s.finished) {
    const how = s.finished === 'early-stop' ? `early stop at epoch ${s.epoch}` : s.epoch === 1 ? 'its 1 epoch' : `all ${s.epoch} epochs`;
    return { kind: 'finished', checkpoint, line: `using the finished run in ${where} (${how}, best validation top-1 ${pct(s.bestTop1)} at epoch ${s.bestEpoch})` };
  }
  const at = `epoch ${s.epoch + 1}${s.stepInEpoch ? `, step ${s.stepInEpoch}` : ''} of ${o.epochs}`;
  return { kind: 'continue', checkpoint, line: `continuing the interrupted run in ${where} at ${at} (${s.globalStep} steps done)` };
}
