/**
 * The benchmark task (issue 4 item 7, issue 15 item 7): transfer a backbone (default: the shipped
 * line backbone) to the benchmark line (bracket × blue-anodised parts, never seen in its
 * pretraining) and to Fashion-MNIST classes 5–9, with all (capped) training data and 16 shots per
 * class, 3 seeds, for linear / vpt-shallow / vpt-deep / full. Top-1 is the best validation
 * accuracy over the epochs (as VPT reports). The report is rewritten after every run, so a
 * stopped benchmark leaves the rows it has (with their seeds) and says which are missing.
 *
 *   npm run bench:transfer [-- --backbone vit_micro_patch8_64.factory --tasks line,fmnist5-9 --seeds 0,1,2 --cap 100 --methods linear,vpt-shallow,vpt-deep,full]
 */
import { parseArgs } from 'node:util';
import { median, writeReport } from './lib.ts';
import { meanStd, parseLrs, runTask, taskText } from './transfer-task.ts';
import { DEFAULT_BACKBONE, resolveBackbone } from '../compiler/backbones/shipped.ts';
import { INSPECTION_HEADER, INSPECTION_RULE, inspectionCells, perClassTable } from './inspection-table.ts';
import type { InspectionMetrics } from '../runtime/pipeline/inspection.ts';

const { values: f } = parseArgs({
  options: {
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string', default: '12' },
    shotEpochs: { type: 'string', default: '30' },
    cap: { type: 'string', default: '100' },
    val: { type: 'string', default: '100' },
    methods: { type: 'string', default: 'linear,vpt-shallow,vpt-deep,full' },
    tasks: { type: 'string', default: 'line,fmnist5-9' },
    backbone: { type: 'string', default: DEFAULT_BACKBONE },
    /** Base learning rates per method instead of the defaults, e.g. linear=0.1,vpt-deep=0.05 (a backbone whose features need others). */
    lr: { type: 'string', default: '' },
    /** The report's name: docs/bench/<report>.md. */
    report: { type: 'string', default: 'transfer' },
    shots: { type: 'string', default: 'all,16' },
  },
});
const seeds = f.seeds!.split(',').map(Number);
const cap = Number(f.cap);
const backbone = resolveBackbone(f.backbone!);
const tasks = f.tasks!.split(',');
const lrs = parseLrs(f.lr!);
interface Run { task: string; shots: string; method: string; seed: number; top1: number; ips: number; params: number; seconds: number; classes: string[]; inspection?: InspectionMetrics; warnings: string[] }
const runs: Run[] = [];
// All-data rows before 16-shot, and within each, seed by seed over every task and method: a run
// stopped early has every row measured at least once (the table says how many seeds each has).
// Finished runs are read back (resume), so running the same command again continues.
const planned = f.shots!.split(',').flatMap((shots) => tasks.flatMap((task) => f.methods!.split(',').map((method) => `${task}|${shots}|${method}`)));
for (const shots of f.shots!.split(','))
  for (const seed of seeds)
    for (const task of tasks)
      for (const method of f.methods!.split(',')) {
        // The lr is in the name: a run read back (resume) is always one trained with this lr.
        const name = `${task}-${shots}-${method}${lrs[method] ? `-lr${lrs[method]}` : ''}-s${seed}`;
        const r = await runTask({ backbone, task, shots, method, seed, cap, val: Number(f.val), epochs: Number(f.epochs), shotEpochs: Number(f.shotEpochs), outGroup: 'transfer', name, resume: true, ...(lrs[method] ? { lr: lrs[method] } : {}) });
        const run: Run = { task, shots, method, seed, top1: r.top1, ips: r.ips, params: r.params, seconds: r.seconds, classes: r.classes, warnings: r.warnings, ...(r.inspection && { inspection: r.inspection }) };
        runs.push(run);
        const insp = r.inspection ? `, escape ${(100 * (r.inspection.escapeRate ?? NaN)).toFixed(1)} %, false reject ${(100 * (r.inspection.falseRejectRate ?? NaN)).toFixed(1)} %, AUROC ${r.inspection.auroc?.toFixed(3)}` : '';
        console.log(`${name}: top-1 ${(100 * run.top1).toFixed(2)} %${insp}, ${run.ips.toFixed(1)} img/s, ${run.seconds.toFixed(0)} s${r.warnings.length ? ` (trainer warned: ${r.warnings.join(', ')})` : ''}`);
        console.log(`wrote ${report()}`);
      }

/** Writes docs/bench/<report>.md from the runs so far (rows with every seed; missing rows listed). */
function report(): string {
  const stats = (xs: number[]) => {
    const { mean, std } = meanStd(xs);
    return `${(100 * mean).toFixed(2)} ± ${(100 * std).toFixed(2)}`;
  };
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const k = `${r.task}|${r.shots}|${r.method}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const rows = [...groups].map(([k, rs]) => {
    const [task, shots, method] = k.split('|');
    const warned = [...new Set(rs.flatMap((r) => r.warnings))];
    const seedsRun = rs.length < seeds.length ? ` (${rs.length} of ${seeds.length} seeds)` : '';
    return `| ${task} | ${shots === 'all' ? `all (${cap}/class)` : `${shots}-shot`} | ${method} | ${stats(rs.map((r) => r.top1))}${seedsRun} | ${rs.map((r) => (100 * r.top1).toFixed(1)).join(' / ')} | ${inspectionCells(rs.map((r) => r.inspection))} | ${rs[0]!.params.toLocaleString('en-US')} | ${median(rs.map((r) => r.ips)).toFixed(1)} | ${warned.join(', ') || '–'} |`;
  });
  const missing = planned.filter((k) => !groups.has(k)).map((k) => k.split('|').join(' · '));
  const perClass = perClassTable([...groups].map(([k, rs]) => ({ label: k.split('|').join(' · '), classes: rs[0]!.classes, runs: rs.map((r) => r.inspection) })));
  const command = `npm run bench:transfer -- --backbone ${f.backbone} --tasks ${f.tasks} --shots ${f.shots} --methods ${f.methods} --seeds ${f.seeds} --cap ${cap} --val ${f.val} --epochs ${f.epochs} --shotEpochs ${f.shotEpochs}${f.lr ? ` --lr ${f.lr}` : ''}${f.report === 'transfer' ? '' : ` --report ${f.report}`}`;
  const body = `Backbone: ${backbone.name} (${backbone.arch}, pretrained on ${backbone.pretrainedOn}). Engine: auto (ort when it builds, else tfjs). Seeds ${seeds.join(', ')}; top-1 = best validation accuracy over epochs, mean ± sample std over seeds.
Tasks: ${tasks.map((t) => taskText(t, cap, Number(f.val))).join('; ')}. "16-shot" samples 16 training images per class per seed from the same training set; validation is the same.
Budgets: ${f.epochs} epochs (batch 32) on all data, ${f.shotEpochs} epochs (batch 16) for 16-shot, 1 warm-up epoch; SGD lr·batch/256 with base 2 (VPT) / 4 (linear), AdamW 5e-4 for full${f.lr ? `, **except the base learning rates given by --lr: ${f.lr}**` : ''}; 8 prompt tokens.
${missing.length ? `\n**Not run (the run stopped before them; the command above runs them):** ${missing.join('; ')}.\n` : ''}
| task | data | method | top-1 % | per seed | ${INSPECTION_HEADER} | trainable values | train img/s | trainer warnings |
|---|---|---|---|---|${INSPECTION_RULE}|---|---|---|
${rows.join('\n')}

Inspection columns (parts tasks): at the best epoch, on the validation set, okLabels [ok] at minConfidence 0.5 (a part passes when its top label is ok and p(ok) ≥ 0.5): escape = defective parts passed ÷ defective parts; false reject = good parts failed ÷ good parts; AUROC = P(p(ok) of a good part > that of a defective one); the last column applies the strictest minConfidence that keeps false rejects ≤ 10 % ("n/a" when even 0 does not: too many good parts get a defect as their top label). Trainer warnings: compiler/train/diagnose.ts (divergence, collapse, no learning) in any seed. What these numbers say about each method: docs/methods.md.
${perClass ? `\nPer-class recall on parts (mean over seeds; in brackets the share sent to the reject gate):\n\n${perClass}\n` : ''}`;
  return writeReport(f.report!, `Transfer from ${backbone.name}: linear vs VPT-shallow vs VPT-deep vs full fine-tuning`, command, body);
}
