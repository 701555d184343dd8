/**
 * Commands that read artifacts: `verify` and `inspect`, both for an .epk (fused or shared
 * backbone) or an .epp (prompt pack). `compile` lives in compile.ts, `keys` in keys.ts.
 */
import type { Command } from 'commander';
import { CompilerError } from '../compiler/ops/errors.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import {
  checkPackFits,
  isBackbone,
  loadTrustedKeys,
  readFileBytes,
  readModelArtifactFile,
  readSignedFile,
  verifyArtifact,
  type Precision,
  type PromptPack,
} from '../runtime/artifact/index.ts';

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

export function addArtifactCommands(program: Command): void {
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
        if (f.backbone) throw new CompilerError('FLAG_INVALID', `--backbone: ${file} is an artifact, not a prompt pack`);
        const v = verifyArtifact(x.artifact, keys);
        console.log(`${file}: OK — ${x.kind === 'backbone' ? 'shared backbone ' : ''}${x.artifact.manifest.name} ${x.artifact.manifest.version}, signed by key ${v.keyId} (${v.keySource}), model sha256 ${x.artifact.manifest.model.sha256.slice(0, 16)}…`);
        return;
      }
      const v = verifyArtifact(x.pack, keys);
      let fits = '';
      if (f.backbone) {
        const bb = await readModelArtifactFile(f.backbone);
        if (!isBackbone(bb)) throw new CompilerError('FLAG_INVALID', `--backbone ${f.backbone}: is a fused artifact, not a shared backbone`);
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

export type Metrics = { top1: number; maxLogitDiff: number; samples?: number | undefined } & Record<string, number | undefined>;

/** An inspection model's figures (compiler/export/compile.ts inspectionFigures), when the manifest has them. */
export function inspectionText(x: Metrics): string {
  if (x.escapeRate === undefined && x.falseRejectRate === undefined) return '';
  const f = (v: number | undefined) => (v === undefined ? '–' : pct(v));
  const at = x.minConfidenceAtFrr10 === undefined ? 'no threshold holds false rejects ≤ 10 %' : `at minConfidence ${x.minConfidenceAtFrr10.toFixed(4)} (false rejects ≤ 10 %) escape ${f(x.escapeRateAtFrr10)}`;
  return `; escape ${f(x.escapeRate)}, false reject ${f(x.falseRejectRate)} at the manifest threshold, AUROC defect-vs-ok ${x.aurocDefectVsOk?.toFixed(3) ?? '–'}; ${at}`;
}

function printMetrics(metrics: Partial<Record<Precision, Metrics>>): void {
  // samples 0: no labelled images (a zero-shot artifact compiled from words alone).
  for (const [p, x] of Object.entries(metrics)) console.log(`  ${p}: top-1 ${x!.samples === 0 ? 'not measured (no labelled images)' : pct(x!.top1)}, max |Δlogit| ${x!.maxLogitDiff.toExponential(2)}${x!.samples ? ` on ${x!.samples} images` : ''}${inspectionText(x!)}`);
}

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

