/**
 * docs/bench/pretrain.md from the candidates' cards and their frozen-feature evaluations
 * (bench/pretrain.ts). The figures are read from the cards and runs; the prose around them says
 * what the measurements were for.
 */
import { machine, writeReport } from './lib.ts';
import type { EvalResult } from './pretrain-eval.ts';

export interface Card {
  name: string;
  file: string;
  arch: { name: string; imgSize: number; patchSize: number; embedDim: number; depth: number; numHeads: number; tokens: number; params: number };
  weights: { bytes: number; sha256: string };
  sources: Record<string, { kind: string; weight: number; trainImages: number; lines?: string[]; pose?: string; lighting?: string; classes?: string[] }>;
  recipe: { epochs: number; batchSize: number; steps: number; images: number; optimizer: { lr: number } };
  history: Record<string, number>[];
  final: { shippedF16: Record<string, number> };
  time: { trainingSeconds: number; cpuSeconds: number; trainImagesPerSec: number };
  command: string;
  createdAt: string;
}

export interface Candidate {
  cardFile: string;
  card: Card;
  evals: ({ task: string; method: string; seed: number } & EvalResult)[];
}

export interface ReportOptions {
  command: string;
  seeds: number[];
  epochs: number;
  part: string;
  material: string;
  stat: (xs: number[], pct?: boolean) => string;
}

const pct = (v: number | undefined) => (v === undefined ? '–' : (100 * v).toFixed(1));

function mixOf(c: Card): string {
  return Object.entries(c.sources)
    .map(([name, s]) => {
      const lines = s.lines ? `${s.lines.length} lines${s.pose && s.pose !== 'fixtured' ? `, ${s.pose}` : ''}${s.lighting && s.lighting !== 'line' ? `, ${s.lighting}` : ''}${s.classes && s.classes.length < 5 ? `, classes ${s.classes.join('/')}` : ''}` : s.kind;
      return `${name} (${lines}; w ${s.weight})`;
    })
    .join(' + ');
}

export function pretrainReport(cands: Candidate[], o: ReportOptions): string {
  const pretrainRows = cands.map(({ card: c }) => {
    const probes = c.history.map((h) => h['probe.top1']).filter((v): v is number => v !== undefined);
    const f = c.final.shippedF16;
    return `| ${c.name} | ${c.arch.imgSize} px / p${c.arch.patchSize} / w${c.arch.embedDim} / d${c.arch.depth} (${c.arch.tokens} tokens) | ${c.arch.params.toLocaleString('en-US')} | ${mixOf(c)} | ${c.recipe.images.toLocaleString('en-US')} (${c.recipe.epochs} ep × batch ${c.recipe.batchSize}, lr ${c.recipe.optimizer.lr}) | ${(c.time.trainingSeconds / 60).toFixed(0)} min / ${(c.time.cpuSeconds / 60).toFixed(0)} CPU-min | ${pct(f['top1.parts'])} | ${probes.map(pct).join(' → ')} | ${f['probe.auroc']?.toFixed(3) ?? '–'} |`;
  });
  const evalRows: string[] = [];
  for (const { card, evals } of cands) {
    const groups = new Map<string, Candidate['evals']>();
    for (const e of evals) groups.set(`${e.task}|${e.method}`, [...(groups.get(`${e.task}|${e.method}`) ?? []), e]);
    for (const [k, es] of groups) {
      const [task, method] = k.split('|');
      const line = task === 'line' ? `${o.part} × ${o.material}` : 'Fashion-MNIST 5–9';
      evalRows.push(`| ${card.name} | ${line} | ${method} | ${o.stat(es.map((e) => e.top1))} | ${task === 'line' ? o.stat(es.map((e) => e.auroc), false) : '–'} | ${task === 'line' ? o.stat(es.map((e) => e.escapeAtFrr10)) : '–'} | ${es.length} |`);
    }
  }
  const commands = cands.map(({ card: c }) => `- ${c.name}: \`${c.command}\` (${c.createdAt.slice(0, 10)})`).join('\n');
  return writeReport(
    'pretrain',
    'Pretraining a line backbone: candidates and their frozen features on an unseen line',
    o.command,
    `Evaluation machine: ${machine()}. Each candidate was pretrained by the command listed under it (its card in the same folder as the weights holds the per-epoch history, the machine and the load average).

## Candidates (pretraining)

"probe" is the linear probe the pretraining run fits after each epoch on frozen CLS features of the held-out line (100 images per class, softmax regression; compiler/pretrain/probe.ts), scored on 100 more per class; "parts top-1" is the pretraining head on the pretraining lines' validation images. Time is wall time (the machine was shared) and the process's CPU time.

| candidate | input / patch / width / depth | params | sources | images seen | time | parts top-1 % | probe top-1 % by epoch | probe AUROC |
|---|---|---|---|---|---|---|---|---|
${pretrainRows.join('\n')}

${commands}

## Frozen features on the benchmark line

The product's methods through the real trainer (ort engine), ${o.seeds.length} seeds (${o.seeds.join(', ')}), ${o.epochs} epochs, batch 32, SGD (lr·batch/256 with base 4 for linear, 2 for VPT-deep, 8 prompt tokens), 100 training and 100 validation images per class of ${o.part} × ${o.material} (a design and a finish no pretraining source drew). Top-1 is the best validation epoch (as bench:transfer); AUROC (defective vs ok, score 1 − p(ok)) and the escape rate (defective parts passed at the threshold that rejects ≤ 10 % of good parts) are of that epoch's tensors. Mean ± std over seeds.

| backbone | task | method | top-1 % | AUROC | escape % at FRR ≤ 10 % | runs |
|---|---|---|---|---|---|---|
${evalRows.join('\n')}
`,
  );
}
