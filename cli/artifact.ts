/**
 * Artifact commands: `compile` (train if needed → export → verify → optimise → precisions →
 * sign; fused, or a shared backbone + prompt pack), `keys new`, `verify`, `inspect` (both take
 * an .epk or an .epp).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { compileTask, type PrecisionResult } from '../compiler/export/compile.ts';
import { compileBackbonePack, type BackbonePackCompileOptions } from '../compiler/export/compile-backbone-pack.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { zeroShotCommand, type ZeroShotFlags } from './zero-shot.ts';
import {
  ArtifactError,
  PRECISIONS,
  checkPackFits,
  generateKeyPair,
  isBackbone,
  loadTrustedKeys,
  readFileBytes,
  readModelArtifactFile,
  readSignedFile,
  verifyArtifact,
  writeKeyPair,
  type Precision,
  type PromptPack,
} from '../runtime/artifact/index.ts';

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

function parsePrecisions(v: string): Precision[] {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of list) if (!(PRECISIONS as readonly string[]).includes(p)) throw new CompilerError('BAD_ARGUMENT', `--precision: unknown precision "${p}"; choose from ${PRECISIONS.join(', ')}`);
  return list as Precision[];
}

export function addArtifactCommands(program: Command, parseNumber: (flag: string, v: string) => number): void {
  program
    .command('compile')
    .description('train (unless a finished checkpoint exists), export, verify, optimise, build precisions, gate them, pack and sign: one fused artifact, or (--form shared) a shared backbone and a prompt pack')
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
    .option('--strict', 'stop with an error (exit 2) when training diverges, collapses onto one class or does not learn')
    .option('--progress <mode>', 'auto | bar | lines | none', 'auto')
    .option('--zero-shot', 'a CLIP task defined by words: no training, no images (--classes, --templates, --weights, --arch, --tokenizer)')
    .option('--classes <list>', 'with --zero-shot: comma-separated class names, in output order')
    .option('--templates <template...>', 'with --zero-shot: prompt templates, "{}" is the class name (default "a photo of a {}.")')
    .option('--weights <file>', 'with --zero-shot: CLIP weights (.safetensors, OpenAI/open_clip, Hugging Face or EdgePrompt names)')
    .option('--arch <name>', 'with --zero-shot: CLIP arch, e.g. clip_vit_b32')
    .option('--tokenizer <file>', 'with --zero-shot: the tokenizer.json of the weights')
    .option('--source <name>', 'with --zero-shot: weight source when the file does not say (openai: QuickGELU, laion: GELU)')
    .option('--name <name>', 'with --zero-shot: task name in the manifest', 'zero-shot')
    .option('--task-version <v>', 'with --zero-shot: version in the manifest', '1.0.0')
    .option('--ok <labels>', 'with --zero-shot: comma-separated labels that count as a good part')
    .option('--min-confidence <p>', 'with --zero-shot: below this score a prediction is NG', (v) => parseNumber('--min-confidence', v), 0.5)
    .option('--val <dir>', 'with --zero-shot: labelled images (<dir>/<class>/…) to measure top-1 on and calibrate int8 with')
    .action(async (f: CompileFlags) => {
      if (f.zeroShot) {
        if (f.config) throw new CompilerError('BAD_ARGUMENT', '--zero-shot and -c: give one; a config trains (its method may be zero-shot too), --zero-shot builds from words alone');
        return zeroShotCommand(f, printResults, signedBy);
      }
      if (!f.config) throw new CompilerError('BAD_ARGUMENT', '-c, --config: required (the compile config), unless --zero-shot');
      const shared = checkCompileFlags(f);
      const progress = makeProgress(f.progress);
      const o = { configFile: f.config!, sets: f.release === undefined ? f.set : [...f.set, `release=${f.release}`], precisions: f.precision, maxDropPt: f.maxDrop, progress, ...(f.target ? { target: f.target } : {}), ...(f.sign ? { signKey: f.sign } : {}), ...(f.strict && { strict: true }) };
      if (shared) return compileBackbonePackCommand(f, { ...o, ...(f.backbone ? { backbone: f.backbone } : {}) });
      const r = await compileTask(o);
      writeFileSync(f.out!, r.artifact);
      const m = r.manifest;
      console.log(`\n${m.name} ${m.version} (release ${m.release}): ${m.method.name} on ${m.backbone.arch}, ${m.labels.length} labels, target ${m.target ?? 'any'}${r.profile ? ` (EPs ${r.profile.executionProviders.map((e) => e.name).join(' → ')})` : ''}`);
      printResults(r.results, m.precision);
      const inspection = inspectionText(m.metrics[m.precision] as Metrics);
      if (inspection) console.log(`inspection on the validation set (${m.precision}, okLabels ${m.thresholds.okLabels!.join(', ')}, minConfidence ${m.thresholds.minConfidence})${inspection}`);
      console.log(`wrote ${f.out} (${(r.artifact.length / 1e6).toFixed(2)} MB, ${m.precision}, ORT-optimised ${r.optimized ? 'yes' : 'no'}, ${signedBy(r.keyIds)})`);
    });

  const keys = program.command('keys').description('signing keys');
  keys
    .command('new')
    .description('generate an ed25519 key pair: <base>.key (private, 0600) and <base>.pub')
    .requiredOption('--out <base>', 'path without extension, e.g. keys/line1')
    .option('--force', 'overwrite existing files')
    .action(async (f: { out: string; force?: boolean }) => {
      const r = await writeKeyPair(generateKeyPair(), f.out, { force: f.force === true });
      console.log(`wrote ${r.privatePath} (keep it secret) and ${r.publicPath} (give it to devices); key id ${r.keyId}`);
    });

  program
    .command('verify')
    .description('check an artifact (.epk) or prompt pack (.epp): structure, digests and signature against public keys; with --backbone, that the pack fits it')
    .argument('<file>')
    .requiredOption('--pub <key...>', 'trusted public key(s) (PEM)')
    .option('--backbone <file>', 'for a prompt pack: the shared-backbone .epk it must fit')
    .action(async (file: string, f: { pub: string[]; backbone?: string }) => {
      const keys = await loadTrustedKeys(f.pub);
      const x = readSignedFile(await readFileBytes(file), file);
      if (x.kind !== 'pack') {
        if (f.backbone) throw new CompilerError('BAD_ARGUMENT', `--backbone: ${file} is an artifact, not a prompt pack`);
        const v = verifyArtifact(x.artifact, keys);
        console.log(`${file}: OK — ${x.kind === 'backbone' ? 'shared backbone ' : ''}${x.artifact.manifest.name} ${x.artifact.manifest.version}, signed by key ${v.keyId} (${v.keySource}), model sha256 ${x.artifact.manifest.model.sha256.slice(0, 16)}…`);
        return;
      }
      const v = verifyArtifact(x.pack, keys);
      let fits = '';
      if (f.backbone) {
        const bb = await readModelArtifactFile(f.backbone);
        if (!isBackbone(bb)) throw new CompilerError('BAD_ARGUMENT', `--backbone ${f.backbone}: is a fused artifact, not a shared backbone`);
        checkPackFits(x.pack, bb);
        fits = `, fits ${f.backbone}`;
      }
      console.log(`${file}: OK — prompt pack ${x.pack.manifest.name} ${x.pack.manifest.version}, signed by key ${v.keyId} (${v.keySource}), for backbone model ${x.pack.manifest.backbone.model.slice(0, 16)}…${fits}`);
    });

  program
    .command('inspect')
    .description('human-readable manifest, metrics, size and graph (or tensor) summary of an artifact (.epk) or prompt pack (.epp)')
    .argument('<file>')
    .action(async (file: string) => {
      const x = readSignedFile(await readFileBytes(file), file);
      if (x.kind === 'pack') return inspectPack(x.pack);
      const a = x.artifact;
      console.log(`${file}: ${(a.bytes / 1e6).toFixed(2)} MB, sha256 ${a.sha256}`);
      if (x.kind === 'backbone') {
        const m = x.artifact.manifest;
        console.log(`${m.name} ${m.version} (release ${m.release}) — SHARED BACKBONE for ${m.method.name} ${JSON.stringify(m.method.options)} tasks on ${m.backbone.arch} (backbone ${m.backbone.sha256.slice(0, 12)}…); runs only with a prompt pack`);
        console.log(`pack inputs: ${m.pack.inputs.map((i) => `${i.name} [${i.shape.join(', ')}]`).join(', ')}`);
      } else {
        const m = x.artifact.manifest;
        console.log(`${m.name} ${m.version} (release ${m.release}) — ${m.method.name} ${JSON.stringify(m.method.options)} on ${m.backbone.arch} (backbone ${m.backbone.sha256.slice(0, 12)}…, prompts ${m.prompts.sha256.slice(0, 12)}…)`);
        console.log(`labels: ${m.labels.join(', ')}`);
      }
      const m = a.manifest;
      console.log(`input: ${m.input.name} ${m.input.dtype} ${m.input.layout} ${m.input.height}×${m.input.width}×${m.input.channels}, resize ${m.input.resize}; outputs ${Object.values(m.outputs).join(', ')}`);
      if (x.kind === 'fused') {
        const t = x.artifact.manifest;
        console.log(`precision ${t.precision} (${t.shape}), target ${t.target ?? 'any'}; thresholds ${JSON.stringify(t.thresholds)}`);
        printMetrics(t.metrics);
      } else console.log(`precision ${m.precision} (shared-backbone), target ${m.target ?? 'any'}`);
      console.log(`compiler ${m.compiler.version}, onnxruntime ${m.compiler.ortVersion}, created ${m.createdAt}`);
      console.log(`signatures: ${a.signature.signatures.map((s) => s.keyId).join(', ') || 'none (unsigned)'}`);
      const g = summarizeModel(a.model);
      const ops = Object.entries(g.opCounts).sort((p, q) => q[1] - p[1]);
      console.log(`graph: ${ops.reduce((n, [, k]) => n + k, 0)} nodes (${ops.map(([k, n]) => `${k}×${n}`).join(' ')}), ${g.initializers} initializers, ${(g.initializerBytes / 1e6).toFixed(2)} MB of weights`);
    });
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
  strict?: boolean;
  progress: 'auto';
}

/** True for --form shared; every flag combination that cannot work is refused before training. */
function checkCompileFlags(f: CompileFlags): boolean {
  if (f.form !== 'fused' && f.form !== 'shared') throw new CompilerError('BAD_ARGUMENT', `--form: unknown form "${f.form}"; choose fused or shared`);
  if (f.form === 'fused') {
    if (f.pack || f.backbone) throw new CompilerError('BAD_ARGUMENT', `${f.pack ? '--pack' : '--backbone'} needs --form shared (a prompt pack runs on a shared backbone)`);
    if (!f.out) throw new CompilerError('BAD_ARGUMENT', '--out: required (the artifact to write, .epk)');
    return false;
  }
  if (!f.pack) throw new CompilerError('BAD_ARGUMENT', '--pack: required with --form shared (the prompt pack to write, .epp)');
  if (!f.out && !f.backbone) throw new CompilerError('BAD_ARGUMENT', '--out: required with --form shared unless --backbone names an existing backbone (the backbone artifact to write, .epk)');
  if (f.out && f.backbone) throw new CompilerError('BAD_ARGUMENT', '--out and --backbone: give one; --backbone builds only a pack for that existing backbone');
  return true;
}

async function compileBackbonePackCommand(f: CompileFlags, o: BackbonePackCompileOptions): Promise<void> {
  const r = await compileBackbonePack(o);
  const p = r.pack.manifest;
  const bb = r.backboneManifest;
  console.log(`\n${p.name} ${p.version}: ${p.method.name} on ${bb.backbone.arch}, ${p.labels.length} labels, as a prompt pack for shared backbone ${bb.name} ${bb.version} (model ${bb.model.sha256.slice(0, 12)}…, ${bb.precision})`);
  printResults(r.results, bb.precision);
  if (r.backbone) {
    writeFileSync(f.out!, r.backbone.bytes);
    console.log(`wrote ${f.out} (${(r.backbone.bytes.length / 1e6).toFixed(2)} MB, shared backbone, ${bb.precision}, ORT-optimised ${r.optimized ? 'yes' : 'no'}, ${signedBy(r.backbone.keyIds)})`);
  }
  writeFileSync(f.pack!, r.pack.bytes);
  console.log(`wrote ${f.pack} (${(r.pack.bytes.length / 1e3).toFixed(1)} kB, prompt pack, ${signedBy(r.pack.keyIds)})`);
}

function printResults(results: readonly PrecisionResult[], shipped: Precision): void {
  console.log('| precision | validation top-1 | max |Δlogit| vs training graph | model size | shipped |');
  console.log('|---|---|---|---|---|');
  for (const x of results) console.log(`| ${x.precision} | ${pct(x.verification.top1Exported)} | ${x.verification.maxAbsDiff.toExponential(2)} | ${(x.bytes / 1e6).toFixed(2)} MB | ${x.precision === shipped ? 'yes' : x.accepted ? 'passed the gate' : x.reason} |`);
}

type Metrics = { top1: number; maxLogitDiff: number; samples?: number | undefined } & Record<string, number | undefined>;

/** An inspection model's figures (compiler/export/compile.ts inspectionFigures), when the manifest has them. */
function inspectionText(x: Metrics): string {
  if (x.escapeRate === undefined && x.falseRejectRate === undefined) return '';
  const f = (v: number | undefined) => (v === undefined ? '–' : pct(v));
  const at = x.minConfidenceAtFrr10 === undefined ? 'no threshold holds false rejects ≤ 10 %' : `at minConfidence ${x.minConfidenceAtFrr10.toFixed(4)} (false rejects ≤ 10 %) escape ${f(x.escapeRateAtFrr10)}`;
  return `; escape ${f(x.escapeRate)}, false reject ${f(x.falseRejectRate)} at the manifest threshold, AUROC defect-vs-ok ${x.aurocDefectVsOk?.toFixed(3) ?? '–'}; ${at}`;
}

function printMetrics(metrics: Partial<Record<Precision, Metrics>>): void {
  // samples 0: no labelled images (a zero-shot artifact compiled from words alone).
  for (const [p, x] of Object.entries(metrics)) console.log(`  ${p}: top-1 ${x!.samples === 0 ? 'not measured (no labelled images)' : pct(x!.top1)}, max |Δlogit| ${x!.maxLogitDiff.toExponential(2)}${x!.samples ? ` on ${x!.samples} images` : ''}${inspectionText(x!)}`);
}

const signedBy = (keyIds: readonly string[]) => (keyIds.length ? `signed by key ${keyIds.join(', ')}` : 'UNSIGNED: devices with trusted keys will refuse it');

function inspectPack(pack: PromptPack): void {
  const m = pack.manifest;
  console.log(`${pack.file}: ${(pack.bytes / 1e3).toFixed(1)} kB, sha256 ${pack.sha256}`);
  console.log(`${m.name} ${m.version} (release ${m.release}) — PROMPT PACK, ${m.method.name} ${JSON.stringify(m.method.options)} on ${m.backbone.arch} (backbone ${m.backbone.sha256.slice(0, 12)}…, prompts ${m.prompts.sha256.slice(0, 12)}…)`);
  console.log(`fits the shared backbone whose model.onnx has sha256 ${m.backbone.model}`);
  console.log(`labels: ${m.labels.join(', ')}`);
  console.log(`thresholds ${JSON.stringify(m.thresholds)}`);
  printMetrics(m.metrics);
  console.log(`compiler ${m.compiler.version}, onnxruntime ${m.compiler.ortVersion}, created ${m.createdAt}`);
  console.log(`signatures: ${pack.signature.signatures.map((s) => s.keyId).join(', ') || 'none (unsigned)'}`);
  const n = [...pack.tensors.values()].reduce((k, t) => k + t.data.length, 0);
  console.log(`tensors: ${pack.tensors.size} (${n} float32 values): ${[...pack.tensors].map(([k, t]) => `${k} [${t.shape.join(', ')}]`).join(', ')}`);
}

export { ArtifactError };
