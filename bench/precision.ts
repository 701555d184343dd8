/**
 * fp32 vs fp16 vs int8 on a trained task (issue 5): validation top-1, max |Δlogit| against the
 * training graph, file size, and ORT CPU latency (2 threads, batch 1, interleaved) — for the
 * demo task on the shipped backbone and for ViT-Ti/16 at 224 (random weights, latency/size only).
 * The task is compiled through `compileTask`, which reuses a finished checkpoint.
 *
 *   npm run bench:precision [-- --config configs/demo-fmnist.yaml --rounds 10 --runs 20 --invocations 3]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { compileTask } from '../compiler/export/compile.ts';
import { buildPrecision, precisionChoice } from '../compiler/export/precisions.ts';
import { exportVitBackbone } from '../compiler/export/backbone.ts';
import { optimizeOffline } from '../compiler/export/optimize.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { makePartsSet } from '../compiler/data/parts.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { randomVit } from '../test/helpers/random-vit.ts';
import { loadProfile } from '../runtime/config/profile.ts';
import { readArtifact } from '../runtime/artifact/index.ts';
import type { Precision } from '../runtime/artifact/index.ts';
import { acrossInvocations, fmtSpread, isInvocationChild, ortVersion, repo, spread, timeInterleaved, writeReport } from './lib.ts';

const { values: f } = parseArgs({ options: { config: { type: 'string', default: 'configs/demo-fmnist.yaml' }, rounds: { type: 'string', default: '10' }, runs: { type: 'string', default: '20' }, invocations: { type: 'string', default: '3' } } });
await initTf();
const precisions: Precision[] = ['fp32', 'fp16', 'int8'];
const profile = loadProfile('x86-cpu');

const cache = join(repo, '.cache/bench/precision');
const modelFile = (set: string, p: Precision) => join(cache, `${set}.${p}.onnx`);
const SETS = ['task', 'tiny'] as const;

/** Median ms per precision of each model set, timed interleaved in one process (an invocation). */
async function measure(): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  for (const set of SETS) {
    const size = JSON.parse(readFileSync(join(cache, `${set}.json`), 'utf8')).size as number;
    const image = new ort.Tensor('uint8', Uint8Array.from({ length: size * size * 3 }, (_, i) => (i * 37) % 251), [1, size, size, 3]);
    const sessions = await Promise.all(precisions.map((p) => ort.InferenceSession.create(readFileSync(modelFile(set, p)), { intraOpNumThreads: 2, graphOptimizationLevel: 'all', logSeverityLevel: 3 })));
    const ms = await timeInterleaved(sessions.map((s) => () => s.run({ image })), Number(f.rounds), Number(f.runs), 5);
    await Promise.all(sessions.map((s) => s.release()));
    out[set] = Object.fromEntries(precisions.map((p, k) => [p, ms[k]!]));
    console.log(`${set}: ${precisions.map((p, k) => `${p} ${ms[k]!.toFixed(3)} ms`).join(', ')}`);
  }
  return out;
}

// The parent compiles once and writes the models; every invocation times the same files.
const rows: string[] = [];
if (!isInvocationChild()) {
  mkdirSync(cache, { recursive: true });
  // 1. the trained demo task
  const r = await compileTask({ configFile: join(repo, f.config!), precisions, maxDropPt: 100, target: 'x86-cpu', progress: makeProgress('lines') });
  for (const x of r.results) writeFileSync(modelFile('task', x.precision), x.model!);
  writeFileSync(join(cache, 'task.json'), JSON.stringify({ size: readArtifact(r.artifact).manifest.input.height }));
  // 2. ViT-Ti/16 at 224: where int8 should pay (large MatMuls)
  const cfg = vitConfig('vit_tiny_patch16_224');
  const fp32 = await optimizeOffline(exportVitBackbone(cfg, randomVit(cfg), { input: 'uint8-nhwc' }));
  const calib = await makePartsSet({ perClass: 4, size: 224, seed: 3 });
  for (const p of precisions) writeFileSync(modelFile('tiny', p), await buildPrecision(p, fp32, calib, profile, 16));
  writeFileSync(join(cache, 'tiny.json'), JSON.stringify({ size: 224 }));
  const ms = await acrossInvocations(Number(f.invocations), measure);
  const cols = (set: string, p: Precision) => `${fmtSpread(spread(ms.map((m) => m[set]![p]!)))} | ${fmtSpread(spread(ms.map((m) => m[set]!.fp32! / m[set]![p]!)), 2)}×`;
  for (const x of r.results) rows.push(`| ${r.manifest.name} (${r.manifest.method.name}, ${r.manifest.backbone.arch}) | ${x.precision} | ${(100 * x.verification.top1Exported).toFixed(2)} % | ${x.verification.maxAbsDiff.toExponential(2)} | ${(x.bytes / 1e6).toFixed(2)} MB | ${cols('task', x.precision)} |`);
  for (const p of precisions) rows.push(`| vit_tiny_patch16_224, random weights | ${p} | — | — | ${(readFileSync(modelFile('tiny', p)).byteLength / 1e6).toFixed(2)} MB | ${cols('tiny', p)} |`);
} else await acrossInvocations(Number(f.invocations), measure); // in a child: measures, then exits

const choice = precisionChoice(profile);

const file = writeReport(
  'precision',
  'fp32 vs fp16 vs int8',
  `npm run bench:precision -- --config ${f.config} --rounds ${f.rounds} --runs ${f.runs} --invocations ${f.invocations}`,
  `onnxruntime-node ${ortVersion()} CPU EP, 2 intra-op threads, graph optimization 'all', batch 1, uint8 NHWC input; in each invocation (a fresh process) medians of ${f.rounds} interleaved rounds × ${f.runs} runs; latency and speed-up are **min / median / max over ${f.invocations} invocations**, each speed-up taken within its invocation. Profile x86-cpu: fp16 ${choice.fp16Target === 'gpu' ? 'compute' : 'storage (fp16 weights, fp32 compute: ORT\'s CPU EP has fp16 kernels for LayerNormalization only)'}, int8 QDQ with per-channel ${choice.weightBits}-bit weights on the MatMul weights (ORT fuses them to MatMulIntegerToFloat), uint8 activations calibrated on training images; attention, LayerNorm and softmax stay float.
Top-1 and max |Δlogit| are measured on the task's validation set against the training graph (tfjs).

| model | precision | validation top-1 | max \\|Δlogit\\| | file | latency ms (min / median / max) | speed-up vs fp32 (min / median / max) |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Target (issue 5): int8 ≥ 1.8× faster than fp32 at ≤ 0.5 pt drop. On ORT's CPU EP only the weight MatMuls run in int8; the attention products, softmax, LayerNorm and GELU stay float, which caps the gain on small models whose time is not dominated by the projections.`,
);
console.log(`wrote ${file}`);
