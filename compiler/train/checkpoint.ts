/**
 * Checkpoints are plain records (nanoGPT style): the trainable tensors as safetensors (timm /
 * VPT names), the optimiser moments beside them, and a JSON state with everything needed to
 * resume deterministically, including the fingerprint of the job it was trained for
 * (fingerprint.ts) and whether the run finished. Writes go to a temp name and are renamed, so a
 * kill mid-write leaves the previous checkpoint intact.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafetensors, readSafetensors } from '../backbones/safetensors.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { CompilerError } from '../ops/errors.ts';
import type { RunFingerprint } from './fingerprint.ts';
import type { TrainingWarning } from './diagnose.ts';
import type { EpochRecord } from './epoch-record.ts';

/** How a run ended; absent while it can still continue. A finished run is final for `compile` and `train --resume`. */
export type RunEnd = 'early-stop' | 'all-epochs';

export interface TrainState {
  /** 2: with `fingerprint` and `finished` (version 1 checkpoints cannot be checked and are refused). */
  version: 2;
  /** What the run was trained for; resuming compares it with the current job. */
  fingerprint: RunFingerprint;
  finished?: RunEnd;
  name: string;
  method: string;
  options: Record<string, unknown>;
  classes: string[];
  arch: string;
  backboneSha256: string;
  engine: string;
  backend: string;
  seed: number;
  /** Epochs fully completed. */
  epoch: number;
  /** Optimiser steps taken inside the current (incomplete) epoch; 0 at an epoch boundary. */
  stepInEpoch: number;
  globalStep: number;
  bestTop1: number;
  bestEpoch: number;
  epochsWithoutImprovement: number;
  history: EpochRecord[];
  lastConfusion: number[][];
  /** The loss of the first training batch, before any update: where the run started (compiler/train/diagnose.ts). */
  initialLoss?: number;
  /** What compiler/train/diagnose.ts saw going wrong (divergence, collapse, no learning), in order. */
  warnings?: TrainingWarning[];
  /** A method's own training state (PromptMethod.initState/epochEnd), when it keeps one. */
  methodState?: Record<string, unknown>;
  config: unknown;
  createdAt: string;
  updatedAt: string;
}

function atomicWrite(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

export function saveCheckpoint(dir: string, state: TrainState, params: Map<string, HostTensor>, optimizer: Map<string, HostTensor>): void {
  mkdirSync(dir, { recursive: true });
  const meta = { method: state.method, arch: state.arch, classes: state.classes.join(','), backbone_sha256: state.backboneSha256 };
  atomicWrite(join(dir, 'params.safetensors'), encodeSafetensors(params, { metadata: meta }));
  atomicWrite(join(dir, 'optimizer.safetensors'), encodeSafetensors(optimizer));
  atomicWrite(join(dir, 'state.json'), JSON.stringify({ ...state, updatedAt: new Date().toISOString() }, null, 1)); // last: marks the set complete
}

export interface LoadedCheckpoint {
  state: TrainState;
  params: Map<string, HostTensor>;
  optimizer: Map<string, HostTensor>;
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, 'state.json'));
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const file = join(dir, 'state.json');
  if (!existsSync(file)) throw new CompilerError('FILE_NOT_FOUND', `${file}: no checkpoint to resume from (train without --resume first)`);
  let state: TrainState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as TrainState;
  } catch (e) {
    throw new CompilerError('BAD_FILE', `${file}: not a readable checkpoint state (${(e as Error).message})`);
  }
  const version = state.version as number;
  if (version === 1) {
    throw new CompilerError(
      'CHECKPOINT_MISMATCH',
      `${file}: this run was saved by an older EdgePrompt that did not record what it was trained for, so its tensors cannot be checked against this config; start over (compile --fresh, or train without --resume) or set another output.dir`,
    );
  }
  if (version !== 2) throw new CompilerError('BAD_FILE', `${file}: checkpoint version ${String(version)} is not supported (expected 2); was it written by a newer EdgePrompt?`);
  if (!state.fingerprint) throw new CompilerError('BAD_FILE', `${file}: no fingerprint in a version 2 checkpoint (edited by hand?); start over with compile --fresh`);
  return { state, params: readSafetensors(join(dir, 'params.safetensors')).tensors, optimizer: readSafetensors(join(dir, 'optimizer.safetensors')).tensors };
}
