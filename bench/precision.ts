/**
 * fp32 vs fp16 vs int8 on a trained task (issue 5): validation top-1, max |Δlogit| against the
 * training graph, file size, and ORT CPU latency (2 threads, batch 1, interleaved) — for the
 * demo task on the shipped backbone and for ViT-Ti/16 at 224 (random weights, latency/size only).
 * The task is compiled through `compileTask`, which reuses a finished checkpoint.
 *
 *   npm run bench:precision [-- --config configs/demo-fmnist.yaml --rounds 10 --runs 20]
 */
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
import { median, ortVersion, repo, writeReport } from './lib.ts';

const { values: f } = parseArgs({ options: { config: { type: 'string', default: 'configs/demo-fmnist.yaml' }, rounds: { type: 'string', default: '10' }, runs: { type: 'string', default: '20' } } });
await initTf();
const precisions: Precision[] = ['fp32', 'fp16', 'int8'];
const profile = loadProfile('x86-cpu');

async function latency(models: Map<Precision, Uint8Array>, size: number): Promise<Map<Precision, number>> {
  const image = new ort.Tensor('uint8', Uint8Array.from({ length: size * size * 3 }, (_, i) => (i * 37) % 251), [1, size, size, 3]);
  const sessions = await Promise.all([...models].map(async ([p, m]) => [p, await ort.InferenceSession.create(m, { intraOpNumThreads: 2, graphOptimizationLevel: 'all', logSeverityLevel: 3 })] as const));
  const times = new Map<Precision, number[]>(sessions.map(([p]) => [p, []]));
  for (const [, s] of sessions) for (let i = 0; i < 5; i++) await s.run({ image });
  for (let r = 0; r < Number(f.rounds); r++)
    for (const [p, s] of sessions) {
      const t0 = performance.now();
      for (let i = 0; i < Number(f.runs); i++) await s.run({ image });
      times.get(p)!.push((performance.now() - t0) / Number(f.runs));
    }
  await Promise.all(sessions.map(([, s]) => s.release()));
  return new Map([...times].map(([p, t]) => [p, median(t)]));
}

// 1. the trained demo task
const r = await compileTask({ configFile: join(repo, f.config!), precisions, maxDropPt: 100, target: 'x86-cpu', progress: makeProgress('lines') });
const models = new Map(r.results.map((x) => [x.precision, x.model!] as const));
const ms = await latency(models, readArtifact(r.artifact).manifest.input.height);
const rows = r.results.map((x) => `| ${r.manifest.name} (${r.manifest.method.name}, ${r.manifest.backbone.arch}) | ${x.precision} | ${(100 * x.verification.top1Exported).toFixed(2)} % | ${x.verification.maxAbsDiff.toExponential(2)} | ${(x.bytes / 1e6).toFixed(2)} MB | ${ms.get(x.precision)!.toFixed(3)} | ${(ms.get('fp32')! / ms.get(x.precision)!).toFixed(2)}× |`);

// 2. ViT-Ti/16 at 224: where int8 should pay (large MatMuls)
const cfg = vitConfig('vit_tiny_patch16_224');
const fp32 = await optimizeOffline(exportVitBackbone(cfg, randomVit(cfg), { input: 'uint8-nhwc' }));
const calib = await makePartsSet({ perClass: 4, size: 224, seed: 3 });
const tiny = new Map<Precision, Uint8Array>();
for (const p of precisions) tiny.set(p, await buildPrecision(p, fp32, calib, profile, 16));
const tms = await latency(tiny, 224);
for (const p of precisions) rows.push(`| vit_tiny_patch16_224, random weights | ${p} | — | — | ${(tiny.get(p)!.byteLength / 1e6).toFixed(2)} MB | ${tms.get(p)!.toFixed(2)} | ${(tms.get('fp32')! / tms.get(p)!).toFixed(2)}× |`);
const choice = precisionChoice(profile);

const file = writeReport(
  'precision',
  'fp32 vs fp16 vs int8',
  `npm run bench:precision -- --config ${f.config} --rounds ${f.rounds} --runs ${f.runs}`,
  `onnxruntime-node ${ortVersion()} CPU EP, 2 intra-op threads, graph optimization 'all', batch 1, uint8 NHWC input; medians of ${f.rounds} interleaved rounds × ${f.runs} runs. Profile x86-cpu: fp16 ${choice.fp16Target === 'gpu' ? 'compute' : 'storage (fp16 weights, fp32 compute: ORT\'s CPU EP has fp16 kernels for LayerNormalization only)'}, int8 QDQ with per-channel ${choice.weightBits}-bit weights on the MatMul weights (ORT fuses them to MatMulIntegerToFloat), uint8 activations calibrated on training images; attention, LayerNorm and softmax stay float.
Top-1 and max |Δlogit| are measured on the task's validation set against the training graph (tfjs).

| model | precision | validation top-1 | max \\|Δlogit\\| | file | latency (ms) | speed-up vs fp32 |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Target (issue 5): int8 ≥ 1.8× faster than fp32 at ≤ 0.5 pt drop. On ORT's CPU EP only the weight MatMuls run in int8; the attention products, softmax, LayerNorm and GELU stay float, which caps the gain on small models whose time is not dominated by the projections.`,
);
console.log(`wrote ${file}`);
