/**
 * Every prompt method on the benchmark task (issue 7): the shipped backbone transferred to
 * Fashion-MNIST classes 5–9 (and the generated parts set), all capped data and 16 shots, 3
 * seeds. Per method: validation top-1 mean ± std, trainable values, training images/s (ort
 * engine), the fused artifact's latency ÷ the bare backbone (onnxruntime CPU, 2 threads,
 * batch 1, interleaved rounds, min / median / max over fresh processes) and its fp32 ONNX size.
 *
 * A variant is `method` or `method:key=value;key=value` (method options, e.g.
 * `spt-deep:init=kmeans`; `lr=…` overrides the learning rate and `opt=adamw|sgd` the optimiser, for
 * sweeps and ablations). linear / full / vpt-* use the transfer benchmark's recipes
 * (bench/transfer-task.ts) so the rows compare with docs/bench/transfer.md; the other methods
 * keep their own default optimiser (docs/spec/<method>.md) with the same epochs, batch and warmup.
 * Runs live in .cache/bench/methods/<run>; finished ones are reused, so an interrupted
 * benchmark continues where it stopped (delete that folder after changing a method).
 *
 *   npm run bench:methods [-- --tasks fmnist5-9 --shots all,16 --seeds 0,1,2 --variants linear,vpt-deep,vp-outer]
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { prepareJob, type PreparedJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { exportTask } from '../compiler/export/task.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { BACKBONE, meanStd } from './transfer-task.ts';
import { PARTS_VERSION } from '../compiler/data/parts.ts';
import { BENCH_LR, configFor, parseVariant, type Variant } from './methods-config.ts';
import { acrossInvocations, fmtSpread, isInvocationChild, median, ortVersion, repo, spread, timeInterleaved, writeReport } from './lib.ts';
import { INSPECTION_HEADER, INSPECTION_RULE, bestInspection, inspectionCells, perClassTable } from './inspection-table.ts';
import type { InspectionMetrics } from '../runtime/pipeline/inspection.ts';

const { values: f } = parseArgs({
  options: {
    tasks: { type: 'string', default: 'fmnist5-9' },
    shots: { type: 'string', default: 'all,16' },
    seeds: { type: 'string', default: '0,1,2' },
    variants: { type: 'string', default: 'linear,full,vpt-shallow,vpt-deep,vp-inner,vp-outer,spt-deep:init=random,spt-deep:init=mean,spt-deep:init=max,spt-deep:init=kmeans,da-vpt,da-vpt-bias,sa2vp' },
    cap: { type: 'string', default: '100' },
    val: { type: 'string', default: '200' },
    epochs: { type: 'string', default: '8' },
    shotEpochs: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '20' },
    invocations: { type: 'string', default: '3' },
    /** The report's name: docs/bench/<report>.md (e.g. methods-parts for the parts task). */
    report: { type: 'string', default: 'methods' },
  },
});

const shape = { cap: Number(f.cap), val: Number(f.val), epochs: Number(f.epochs), shotEpochs: Number(f.shotEpochs), outGroup: 'methods' };

interface Row {
  variant: Variant;
  task: string;
  shots: string;
  top1: number[];
  ips: number[];
  /** Parts: the best epoch's inspection figures per seed. */
  inspection: (InspectionMetrics | undefined)[];
  classes: string[];
  warnings: Set<string>;
  params: number;
  /** First seed's job and trained tensors, exported for the latency columns. */
  job?: PreparedJob;
  best?: string;
}

// Latency and size of each variant's fused artifact (first task/shots/seed that trained it),
// written once by the parent; every invocation (a fresh process) times all of them together, so
// every ratio comes from the same minutes of this noisy machine.
const latencyDir = join(repo, '.cache/bench/methods-latency');
const BARE = 'bare';

async function measure(): Promise<Record<string, number>> {
  const { labels, size: S } = JSON.parse(readFileSync(join(latencyDir, 'models.json'), 'utf8')) as { labels: string[]; size: number };
  const image = new ort.Tensor('uint8', Uint8Array.from({ length: S * S * 3 }, (_, i) => (i * 31) % 251), [1, S, S, 3]);
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const sessions = await Promise.all(labels.map((_, k) => ort.InferenceSession.create(readFileSync(join(latencyDir, `${k}.onnx`)), opts)));
  const ms = await timeInterleaved(sessions.map((s) => () => s.run({ image })), Number(f.rounds), Number(f.runs), 5);
  await Promise.all(sessions.map((s) => s.release()));
  return Object.fromEntries(labels.map((l, k) => [l, ms[k]!]));
}
if (isInvocationChild()) await acrossInvocations(Number(f.invocations), measure); // measures, then exits

const variants = f.variants!.split(',').map(parseVariant);
const seeds = f.seeds!.split(',').map(Number);
const rows: Row[] = [];
for (const task of f.tasks!.split(','))
  for (const shots of f.shots!.split(','))
    for (const variant of variants) {
      const row: Row = { variant, task, shots, top1: [], ips: [], inspection: [], classes: [], warnings: new Set(), params: 0 };
      rows.push(row);
      for (const seed of seeds) {
        const config = configFor(variant, task, shots, seed, shape);
        const t0 = performance.now();
        // resume: a run whose checkpoint already finished is read back, not retrained, so an
        // interrupted benchmark continues (delete .cache/bench/methods to start over).
        const p = await prepareJob(config, join(repo, 'bench/methods.yaml'), { resume: true, progress: makeProgress('none') });
        const r = await train(p.job);
        row.top1.push(r.state.bestTop1);
        row.ips.push(median(r.state.history.map((h) => h.imagesPerSec)));
        row.inspection.push(bestInspection(r.state));
        row.classes = r.state.classes;
        for (const w of r.state.warnings ?? []) row.warnings.add(w.code);
        row.params = [...p.job.initial.values()].reduce((a, t) => a + t.data.length, 0);
        if (!row.job) [row.job, row.best] = [p, r.bestParamsFile];
        console.log(`${config.name}: top-1 ${(100 * r.state.bestTop1).toFixed(1)} %, ${row.ips.at(-1)!.toFixed(0)} img/s, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      }
    }

rmSync(latencyDir, { recursive: true, force: true });
mkdirSync(latencyDir, { recursive: true });
const sizes = new Map<string, number>();
const labels: string[] = [];
const writeModel = (label: string, bytes: Uint8Array) => {
  writeFileSync(join(latencyDir, `${labels.length}.onnx`), bytes);
  labels.push(label);
  sizes.set(label, bytes.length);
};
// The bare backbone: the linear method's export (backbone + head, nothing else).
const bareJob = rows.find((r) => r.variant.method === 'linear')?.job;
if (bareJob) {
  const { cfg, backbone } = bareJob;
  const head = (await METHODS.linear!.init({ cfg, numClasses: cfg.numClasses, backbone, rng: () => 0.5 }, {} as never)) as never;
  writeModel(BARE, exportTask({ cfg, backbone, method: METHODS.linear as never, options: {}, params: head }));
}
for (const row of rows) {
  if (sizes.has(row.variant.label) || !row.job) continue;
  const { cfg, backbone, job } = row.job;
  writeModel(row.variant.label, exportTask({ cfg, backbone, method: job.method, options: job.options, params: readSafetensors(row.best!).tensors }));
}
writeFileSync(join(latencyDir, 'models.json'), JSON.stringify({ labels, size: rows.find((r) => r.job)?.job!.cfg.imgSize ?? 0 }));
const latency = await acrossInvocations(Number(f.invocations), measure);
const msOf = (label: string) => spread(latency.map((l) => l[label]!));
const perBare = (label: string) => (bareJob ? fmtSpread(spread(latency.map((l) => l[label]! / l[BARE]!)), 2) : '–');

const pct = (xs: number[]) => {
  const { mean, std } = meanStd(xs.map((x) => 100 * x));
  return `${mean.toFixed(1)} ± ${std.toFixed(1)}`;
};
const table = rows.map((r) => {
  const size = sizes.get(r.variant.label);
  const lat = size === undefined ? '– | –' : `${fmtSpread(msOf(r.variant.label))} | ${perBare(r.variant.label)}`;
  return `| ${r.task} | ${r.shots} | ${r.variant.label} | ${pct(r.top1)} | ${r.top1.map((x) => (100 * x).toFixed(1)).join(' / ')} | ${inspectionCells(r.inspection)} | ${r.params.toLocaleString('en-US')} | ${median(r.ips).toFixed(0)} | ${lat} | ${size === undefined ? '–' : (size / 1024).toFixed(0)} | ${[...r.warnings].join(', ') || '–'} |`;
});
const perClass = perClassTable(rows.map((r) => ({ label: `${r.task} · ${r.shots} · ${r.variant.label}`, classes: r.classes, runs: r.inspection })));
const command = `npm run bench:methods -- --tasks ${f.tasks} --shots ${f.shots} --seeds ${f.seeds} --variants ${f.variants} --cap ${f.cap} --val ${f.val} --epochs ${f.epochs} --shotEpochs ${f.shotEpochs} --invocations ${f.invocations}${f.report === 'methods' ? '' : ` --report ${f.report}`}`;
const tasks = f.tasks!.split(',');
const validation = [
  ...(tasks.includes('fmnist5-9') ? [`Fashion-MNIST 5–9: validation ${f.val} per class from the test split`] : []),
  ...(tasks.includes('parts') ? [`parts (generated set version ${PARTS_VERSION}, a steel plate drawn at 64 px and loaded at 32): ${Math.round(Number(f.cap) / 0.75)} images per class, validation the held-out 25 %`] : []),
].join('; ');
const file = writeReport(
  f.report!,
  'Prompt methods on the benchmark task',
  command,
  `Shipped backbone ${BACKBONE} (pretrained on Fashion-MNIST 0–4) transferred to the task; training set capped at ${f.cap} images per class (16-shot rows: 16); ${validation}; ${f.epochs} epochs (16-shot: ${f.shotEpochs}), ort engine; top-1 is the best validation accuracy over the epochs (as VPT reports), mean ± sample std over seeds ${f.seeds}.
Optimisers: linear / full / vpt-* use bench:transfer's recipes, the others their own defaults (docs/spec/), with these learning-rate overrides from seed-0 sweeps (see BENCH_LR in bench/methods-config.ts): ${JSON.stringify(BENCH_LR)}.
Latency: each method's fused fp32 artifact (uint8 NHWC input at the backbone's size, batch 1), onnxruntime-node ${ortVersion()} CPU, 2 intra-op threads, median of ${f.rounds} interleaved rounds × ${f.runs} runs in each invocation (a fresh process), ÷ the bare backbone (backbone + linear head) measured in the same rounds; **min / median / max over ${f.invocations} invocations**. Size: the fp32 ONNX model.

| task | shots | method | top-1 % (mean ± std) | per seed | ${INSPECTION_HEADER} | trainable values | train img/s | latency ms (min / median / max) | ÷ bare (min / median / max) | ONNX KiB | trainer warnings |
|---|---|---|---|---|${INSPECTION_RULE}|---|---|---|---|---|---|
${table.join('\n')}
${tasks.includes('parts') ? `\nInspection columns (parts): at the best epoch, on the validation set, okLabels [ok] at minConfidence 0.5: escape = defective parts passed ÷ defective parts; false reject = good parts failed ÷ good parts; AUROC = P(p(ok) of a good part > that of a defective one); the last column at the strictest minConfidence holding false rejects ≤ 10 %. Trainer warnings: compiler/train/diagnose.ts in any seed.\n\nPer-class recall on parts (mean over seeds; in brackets the share failed):\n\n${perClass}` : ''}`,
);
console.log(`wrote ${file}`);
