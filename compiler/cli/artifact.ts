/**
 * Artifact commands: `compile` (train if needed → export → verify → optimise → precisions →
 * sign), `keys new`, `verify`, `inspect`.
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { compileTask } from '../export/compile.ts';
import { makeProgress } from '../train/progress.ts';
import { CompilerError } from '../ops/errors.ts';
import { summarizeModel } from '../ops/onnx-proto.ts';
import { ArtifactError, PRECISIONS, generateKeyPair, loadTrustedKeys, readArtifactFile, verifyArtifact, writeKeyPair, type Precision } from '../../runtime/artifact/index.ts';

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

function parsePrecisions(v: string): Precision[] {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of list) if (!(PRECISIONS as readonly string[]).includes(p)) throw new CompilerError('BAD_ARGUMENT', `--precision: unknown precision "${p}"; choose from ${PRECISIONS.join(', ')}`);
  return list as Precision[];
}

export function addArtifactCommands(program: Command, parseNumber: (flag: string, v: string) => number): void {
  program
    .command('compile')
    .description('train (unless a finished checkpoint exists), export fused, verify, optimise, build precisions, gate them, pack and sign one artifact')
    .requiredOption('-c, --config <file>', 'compile config (YAML)')
    .requiredOption('--out <file>', 'artifact to write (.epk)')
    .option('--target <profile>', 'device profile (devices/profiles/<name>.yaml or a path)')
    .option('--precision <list>', `comma-separated, from ${PRECISIONS.join(', ')}`, parsePrecisions, ['fp32'] as Precision[])
    .option('--max-drop <pt>', 'refuse a precision losing more validation top-1 than this (points)', (v) => parseNumber('--max-drop', v), 0.5)
    .option('--sign <key>', 'ed25519 private key (PEM) from `edgeprompt keys new`')
    .option('--set <key=value>', 'override a config field (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--progress <mode>', 'auto | bar | lines | none', 'auto')
    .action(async (f: { config: string; out: string; target?: string; precision: Precision[]; maxDrop: number; sign?: string; set: string[]; progress: 'auto' }) => {
      const progress = makeProgress(f.progress);
      const r = await compileTask({ configFile: f.config, sets: f.set, precisions: f.precision, maxDropPt: f.maxDrop, progress, ...(f.target ? { target: f.target } : {}), ...(f.sign ? { signKey: f.sign } : {}) });
      writeFileSync(f.out, r.artifact);
      const m = r.manifest;
      console.log(`\n${m.name} ${m.version}: ${m.method.name} on ${m.backbone.arch}, ${m.labels.length} labels, target ${m.target ?? 'any'}${r.profile ? ` (EPs ${r.profile.executionProviders.map((e) => e.name).join(' → ')})` : ''}`);
      console.log('| precision | validation top-1 | max |Δlogit| vs training graph | model size | shipped |');
      console.log('|---|---|---|---|---|');
      for (const x of r.results) console.log(`| ${x.precision} | ${pct(x.verification.top1Exported)} | ${x.verification.maxAbsDiff.toExponential(2)} | ${(x.bytes / 1e6).toFixed(2)} MB | ${x.precision === m.precision ? 'yes' : x.accepted ? 'passed the gate' : x.reason} |`);
      console.log(`wrote ${f.out} (${(r.artifact.length / 1e6).toFixed(2)} MB, ${m.precision}, ORT-optimised ${r.optimized ? 'yes' : 'no'}, ${r.keyIds.length ? `signed by key ${r.keyIds.join(', ')}` : 'UNSIGNED: devices with trusted keys will refuse it'})`);
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
    .description('check an artifact: structure, model digest and signature against public keys')
    .argument('<file>')
    .requiredOption('--pub <key...>', 'trusted public key(s) (PEM)')
    .action(async (file: string, f: { pub: string[] }) => {
      const a = await readArtifactFile(file);
      const v = verifyArtifact(a, await loadTrustedKeys(f.pub));
      console.log(`${file}: OK — ${a.manifest.name} ${a.manifest.version}, signed by key ${v.keyId} (${v.keySource}), model sha256 ${a.manifest.model.sha256.slice(0, 16)}…`);
    });

  program
    .command('inspect')
    .description('human-readable manifest, metrics, size and graph summary of an artifact')
    .argument('<file>')
    .action(async (file: string) => {
      const a = await readArtifactFile(file);
      const m = a.manifest;
      const g = summarizeModel(a.model);
      console.log(`${file}: ${(a.bytes / 1e6).toFixed(2)} MB, sha256 ${a.sha256}`);
      console.log(`${m.name} ${m.version} — ${m.method.name} ${JSON.stringify(m.method.options)} on ${m.backbone.arch} (backbone ${m.backbone.sha256.slice(0, 12)}…, prompts ${m.prompts.sha256.slice(0, 12)}…)`);
      console.log(`labels: ${m.labels.join(', ')}`);
      console.log(`input: ${m.input.name} ${m.input.dtype} ${m.input.layout} ${m.input.height}×${m.input.width}×${m.input.channels}, resize ${m.input.resize}; outputs ${Object.values(m.outputs).join(', ')}`);
      console.log(`precision ${m.precision} (${m.shape}), target ${m.target ?? 'any'}; thresholds ${JSON.stringify(m.thresholds)}`);
      for (const [p, x] of Object.entries(m.metrics)) console.log(`  ${p}: top-1 ${pct(x!.top1)}, max |Δlogit| ${x!.maxLogitDiff.toExponential(2)}${x!.samples ? ` on ${x!.samples} images` : ''}`);
      console.log(`compiler ${m.compiler.version}, onnxruntime ${m.compiler.ortVersion}, created ${m.createdAt}`);
      console.log(`signatures: ${a.signature.signatures.map((s) => s.keyId).join(', ') || 'none (unsigned)'}`);
      const ops = Object.entries(g.opCounts).sort((x, y) => y[1] - x[1]);
      console.log(`graph: ${ops.reduce((s, [, n]) => s + n, 0)} nodes (${ops.map(([k, n]) => `${k}×${n}`).join(' ')}), ${g.initializers} initializers, ${(g.initializerBytes / 1e6).toFixed(2)} MB of weights`);
    });
}

export { ArtifactError };
