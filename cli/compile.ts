/**
 * `edgeprompt compile`: train if needed (or continue the interrupted run, or use the finished
 * one: it says which) → refuse a near-chance model → export → verify → optimise → precisions →
 * gate → pack and sign. One fused artifact, or (--form shared) a shared backbone and a prompt
 * pack. Ctrl-C saves the training checkpoint; the same command continues it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { compileTask, type PrecisionResult } from '../compiler/export/compile.ts';
import { compileBackbonePack, type BackbonePackCompileOptions } from '../compiler/export/compile-backbone-pack.ts';
import { makeProgress, type Progress } from '../compiler/train/progress.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { PRECISIONS, type Precision } from '../runtime/artifact/index.ts';
import { inspectionText, type Metrics } from './artifact.ts';
import { zeroShotCommand, type ZeroShotFlags } from './zero-shot.ts';

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

/** Writes an output file, creating its folder (`--out out/model.epk` on a fresh clone). */
function writeOutput(file: string, bytes: Uint8Array): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, bytes);
}

interface CompileFlags extends ZeroShotFlags {
  config?: string;
  zeroShot?: boolean;
  release?: number;
  out?: string;
  form: string;
  pack?: string;
  backbone?: string;
  target?: string;
  precision: Precision[];
  maxDrop: number;
  sign?: string;
  set: string[];
  fresh?: boolean;
  allowWeak?: boolean;
  strict?: boolean;
  progress: 'auto' | 'bar' | 'lines' | 'none';
}

function parsePrecisions(v: string): Precision[] {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of list) if (!(PRECISIONS as readonly string[]).includes(p)) throw new CompilerError('FLAG_INVALID', `--precision: unknown precision "${p}"; choose from ${PRECISIONS.join(', ')}`);
  return list as Precision[];
}

export function addCompileCommand(program: Command, parseNumber: (flag: string, v: string) => number): void {
  program
    .command('compile')
    .description('train (or continue / reuse the run in output.dir when it was trained for this config), export, verify, optimise, build precisions, gate them, pack and sign: one fused artifact, or (--form shared) a shared backbone and a prompt pack')
    .option('-c, --config <file>', 'compile config (YAML); not with --zero-shot')
    .option('--out <file>', 'artifact to write (.epk): the fused model, or with --form shared the backbone')
    .option('--form <form>', 'fused (prompts folded in, fastest) | shared (one backbone serves many tasks; the task is a prompt pack)', 'fused')
    .option('--pack <file>', 'with --form shared: the prompt pack to write (.epp)')
    .option('--backbone <file>', 'with --form shared: build only the pack, for this existing shared-backbone .epk (its precision is measured and gated)')
    .option('--target <profile>', 'device profile (devices/profiles/<name>.yaml or a path)')
    .option('--precision <list>', `comma-separated, from ${PRECISIONS.join(', ')}`, parsePrecisions, ['fp32'] as Precision[])
    .option('--max-drop <pt>', 'refuse a precision losing more validation top-1 than this (points)', (v) => parseNumber('--max-drop', v), 0.5)
    .option('--sign <key>', 'ed25519 private key (PEM) from `edgeprompt keys new`')
    .option('--release <n>', 'release number (overrides the config\'s `release`): monotonic per model, per task for packs; devices refuse lower ones', (v) => parseNumber('--release', v))
    .option('--set <key=value>', 'override a config field (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--fresh', 'replace the run in output.dir and train from scratch')
    .option('--strict', 'stop with an error (exit 2) when training diverges, collapses onto one class or does not learn')
    .option('--allow-weak', 'ship a model whose validation top-1 is below the floor (gates.minTop1; default chance + 25 pt)')
    .option('--progress <mode>', 'auto | bar | lines | none', 'auto')
    .option('--zero-shot', 'a CLIP task defined by words: no training, no images (--classes, --templates, --weights, --arch, --tokenizer)')
    .option('--classes <list>', 'with --zero-shot: comma-separated class names, in output order')
    .option('--templates <template...>', 'with --zero-shot: prompt templates, "{}" is the class name (default "a photo of a {}.")')
    .option('--weights <file>', 'with --zero-shot: CLIP weights (.safetensors, OpenAI/open_clip, Hugging Face or EdgePrompt names); default: the shipped tiny CLIP (with --arch and --tokenizer)')
    .option('--arch <name>', 'with --zero-shot: CLIP arch, e.g. clip_vit_b32')
    .option('--tokenizer <file>', 'with --zero-shot: the tokenizer.json of the weights')
    .option('--source <name>', 'with --zero-shot: weight source when the file does not say (openai: QuickGELU, laion: GELU)')
    .option('--name <name>', 'with --zero-shot: task name in the manifest', 'zero-shot')
    .option('--task-version <v>', 'with --zero-shot: version in the manifest', '1.0.0')
    .option('--ok <labels>', 'with --zero-shot: comma-separated labels that count as a good part')
    .option('--min-confidence <p>', 'with --zero-shot: below this score a prediction is NG', (v) => parseNumber('--min-confidence', v), 0.5)
    .option('--val <dir>', 'with --zero-shot: labelled images (<dir>/<class>/…) to measure top-1 on and calibrate int8 with')
    .action(compileCommand);
}

/** First Ctrl-C: finish the step, save the checkpoint, stop (TRAINING_INTERRUPTED, exit 130); a second quits at once. */
function interruptible(progress: Progress): { signal: AbortSignal; done: () => void } {
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130);
    progress.log('Ctrl-C: stopping; a training run saves its checkpoint first (press again to quit at once)');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: abort.signal, done: () => process.off('SIGINT', onSigint) };
}

async function compileCommand(f: CompileFlags): Promise<void> {
  if (f.zeroShot) {
    if (f.config) throw new CompilerError('FLAG_INVALID', '--zero-shot and -c: give one; a config trains (its method may be zero-shot too), --zero-shot builds from words alone');
    return zeroShotCommand(f, printResults, signedBy);
  }
  if (!f.config) throw new CompilerError('FLAG_INVALID', '-c, --config: required (the compile config), unless --zero-shot');
  const shared = checkCompileFlags(f);
  const progress = makeProgress(f.progress);
  const ctrlC = interruptible(progress);
  const o = {
    configFile: f.config,
    sets: f.release === undefined ? f.set : [...f.set, `release=${f.release}`],
    precisions: f.precision,
    maxDropPt: f.maxDrop,
    progress,
    signal: ctrlC.signal,
    fresh: f.fresh === true,
    allowWeak: f.allowWeak === true,
    ...(f.strict && { strict: true }),
    ...(f.target ? { target: f.target } : {}),
    ...(f.sign ? { signKey: f.sign } : {}),
  };
  try {
    if (shared) return await compileBackbonePackCommand(f, { ...o, ...(f.backbone ? { backbone: f.backbone } : {}) });
    const r = await compileTask(o);
    writeOutput(f.out!, r.artifact);
    const m = r.manifest;
    console.log(`\n${m.name} ${m.version} (release ${m.release}): ${m.method.name} on ${m.backbone.arch}, ${m.labels.length} labels, target ${m.target ?? 'any'}${r.profile ? ` (EPs ${r.profile.executionProviders.map((e) => e.name).join(' → ')})` : ''}`);
    printResults(r.results, m.precision);
    const inspection = inspectionText(m.metrics[m.precision] as Metrics);
    if (inspection) console.log(`inspection on the validation set (${m.precision}, okLabels ${m.thresholds.okLabels!.join(', ')}, minConfidence ${m.thresholds.minConfidence})${inspection}`);
    console.log(`wrote ${f.out} (${(r.artifact.length / 1e6).toFixed(2)} MB, ${m.precision}, ORT-optimised ${r.optimized ? 'yes' : 'no'}, ${signedBy(r.keyIds)})`);
  } finally {
    ctrlC.done();
  }
}

/** True for --form shared; every flag combination that cannot work is refused before training. */
function checkCompileFlags(f: CompileFlags): boolean {
  if (f.form !== 'fused' && f.form !== 'shared') throw new CompilerError('FLAG_INVALID', `--form: unknown form "${f.form}"; choose fused or shared`);
  if (f.form === 'fused') {
    if (f.pack || f.backbone) throw new CompilerError('FLAG_INVALID', `${f.pack ? '--pack' : '--backbone'} needs --form shared (a prompt pack runs on a shared backbone)`);
    if (!f.out) throw new CompilerError('FLAG_INVALID', '--out: required (the artifact to write, .epk)');
    return false;
  }
  if (!f.pack) throw new CompilerError('FLAG_INVALID', '--pack: required with --form shared (the prompt pack to write, .epp)');
  if (!f.out && !f.backbone) throw new CompilerError('FLAG_INVALID', '--out: required with --form shared unless --backbone names an existing backbone (the backbone artifact to write, .epk)');
  if (f.out && f.backbone) throw new CompilerError('FLAG_INVALID', '--out and --backbone: give one; --backbone builds only a pack for that existing backbone');
  return true;
}

async function compileBackbonePackCommand(f: CompileFlags, o: BackbonePackCompileOptions): Promise<void> {
  const r = await compileBackbonePack(o);
  const p = r.pack.manifest;
  const bb = r.backboneManifest;
  console.log(`\n${p.name} ${p.version}: ${p.method.name} on ${bb.backbone.arch}, ${p.labels.length} labels, as a prompt pack for shared backbone ${bb.name} ${bb.version} (model ${bb.model.sha256.slice(0, 12)}…, ${bb.precision})`);
  printResults(r.results, bb.precision);
  if (r.backbone) {
    writeOutput(f.out!, r.backbone.bytes);
    console.log(`wrote ${f.out} (${(r.backbone.bytes.length / 1e6).toFixed(2)} MB, shared backbone, ${bb.precision}, ORT-optimised ${r.optimized ? 'yes' : 'no'}, ${signedBy(r.backbone.keyIds)})`);
  }
  writeOutput(f.pack!, r.pack.bytes);
  console.log(`wrote ${f.pack} (${(r.pack.bytes.length / 1e3).toFixed(1)} kB, prompt pack, ${signedBy(r.pack.keyIds)})`);
}

function printResults(results: readonly PrecisionResult[], shipped: Precision): void {
  console.log('| precision | validation top-1 | max |Δlogit| vs training graph | model size | shipped |');
  console.log('|---|---|---|---|---|');
  for (const x of results) console.log(`| ${x.precision} | ${pct(x.verification.top1Exported)} | ${x.verification.maxAbsDiff.toExponential(2)} | ${(x.bytes / 1e6).toFixed(2)} MB | ${x.precision === shipped ? 'yes' : x.accepted ? 'passed the gate' : x.reason} |`);
}

const signedBy = (keyIds: readonly string[]) => (keyIds.length ? `signed by key ${keyIds.join(', ')}` : 'UNSIGNED: devices with trusted keys will refuse it');
