/**
 * docs/bench/pretrain.md from the candidates' cards and their frozen-feature evaluations
 * (bench/pretrain.ts). The figures are read from the cards and runs; the prose around them says
 * what the measurements were for.
 */
import { machine, writeReport } from './lib.ts';
import type { EvalResult } from './pretrain-eval.ts';

export interface Line {
  part: string;
  material: string;
}

export interface Card {
  name: string;
  file: string;
  arch: { name: string; imgSize: number; patchSize: number; embedDim: number; depth: number; numHeads: number; tokens: number; params: number };
  weights: { bytes: number; sha256: string };
  sources: Record<string, { kind: string; weight: number; trainImages?: number; lines?: string[]; pose?: string; lighting?: string; classes?: string[]; patches?: number }>;
  heldOut: Line | null;
  validation?: Line | null;
  published?: { epoch: number; chosenBy: string };
  recipe: { epochs: number; batchSize: number; steps: number; images: number; labelSmoothing: number; augment: { randomResizedCrop: boolean; hflip: boolean }; optimizer: { lr: number } };
  history: Record<string, number>[];
  final: { fp32: Record<string, number>; shippedF16: Record<string, number> };
  time: { trainingSeconds: number; cpuSeconds: number; trainImagesPerSec: number };
  command: string;
  config: { recipe: { augment: { cropScale?: number[]; colour?: number } } };
  createdAt: string;
}

export interface Candidate {
  cardFile: string;
  card: Card;
  evals: ({ task: string; method: string; seed: number; lr: number } & EvalResult)[];
  /** The lr sweep on the line's validation split (seed 0), when one ran. */
  sweeps: { method: string; lr: number; top1: number }[];
}

export interface ReportOptions {
  command: string;
  seeds: number[];
  epochs: number;
  part: string;
  material: string;
  stat: (xs: number[], pct?: boolean) => string;
  /** The lines every run was probed on, and each run's probe there (null: its weights are gone). */
  probeLines: Line[];
  lineProbes: LineProbe[];
}

export interface LineProbe {
  run: string;
  results: ({ top1: number; auroc: number } | null)[];
}

const pct = (v: number | undefined) => (v === undefined ? '–' : (100 * v).toFixed(1));
const lineName = (l: Line | null | undefined) => (l ? `${l.part} × ${l.material}` : '–');

function mixOf(c: Card): string {
  return Object.entries(c.sources)
    .map(([name, s]) => {
      const lines = s.lines ? `${s.lines.length} lines${s.pose && s.pose !== 'fixtured' ? `, ${s.pose}` : ''}${s.lighting && s.lighting !== 'line' ? `, ${s.lighting}` : ''}${s.classes && s.classes.length < 5 ? `, classes ${s.classes.join('/')}` : ''}${s.patches ? `, patch term ${s.patches}` : ''}` : s.kind;
      return `${name} (${lines}; w ${s.weight})`;
    })
    .join(' + ');
}

function recipeOf(c: Card): string {
  const r = c.recipe;
  const crop = c.config.recipe.augment.cropScale;
  const colour = c.config.recipe.augment.colour;
  return `${r.images.toLocaleString('en-US')} (${r.epochs} ep × batch ${r.batchSize}, lr ${r.optimizer.lr}, smoothing ${r.labelSmoothing}${crop ? `, crop ${crop.join('–')}` : ''}${colour ? `, colour ${colour}` : ''})`;
}

/**
 * One row per pretraining run: the line its per-epoch probe was fitted on (the validation line
 * when the card has one, else its held-out line), the probe by epoch, and the published epoch.
 */
function pretrainRow(c: Card, benchmark: Line): string {
  const byValidation = !!c.validation;
  const key = byValidation ? 'validation' : 'probe';
  const line = byValidation ? c.validation : c.heldOut;
  const isBenchmark = line?.part === benchmark.part && line?.material === benchmark.material;
  const probes = c.history.map((h) => h[`${key}.top1`]).filter((v): v is number => v !== undefined);
  const f = c.final.shippedF16;
  const bench = byValidation && f['probe.top1'] !== undefined ? `${pct(f['probe.top1'])} / ${f['probe.auroc']!.toFixed(3)}` : '–';
  return `| ${c.name} | ${c.arch.imgSize} px / p${c.arch.patchSize} / w${c.arch.embedDim} / d${c.arch.depth} | ${c.arch.params.toLocaleString('en-US')} | ${mixOf(c)} | ${recipeOf(c)} | ${(c.time.trainingSeconds / 60).toFixed(0)} min / ${(c.time.cpuSeconds / 60).toFixed(0)} CPU-min | ${pct(f['top1.parts'])} | ${lineName(line)}${isBenchmark ? ' (benchmark!)' : ''}: ${probes.map(pct).join(' → ')} | ${f[`${key}.auroc`]?.toFixed(3) ?? '–'} | ${c.published?.epoch ?? c.recipe.epochs} | ${bench} |`;
}

const TABLE_HEAD = `| run | input / patch / width / depth | params | sources | images seen (recipe) | time | parts top-1 % | probe line: top-1 % by epoch | probe AUROC (published) | published epoch | benchmark-line probe top-1 % / AUROC (published) |
|---|---|---|---|---|---|---|---|---|---|---|`;

/** One sentence on the width-192 candidate's longer run, from its card when it is among the ablations. */
function longNote(all: Card[]): string {
  const c = all.find((x) => x.name === 'e-width192-long');
  if (!c) return '';
  const f = c.final.shippedF16;
  const last = c.history.at(-1) ?? {};
  const short = all.find((x) => x.name === 'e-width192');
  return `Trained 4× as long (\`e-width192-long\`, 20 epochs, ${c.recipe.images.toLocaleString('en-US')} images), the wide ViT learns the pretraining lines further (their top-1 ${pct(last['top1.parts'])} % at the last epoch) and publishes epoch ${c.published?.epoch ?? c.recipe.epochs}, whose benchmark-line probe is ${pct(f['probe.top1'])} % / AUROC ${f['probe.auroc']?.toFixed(3) ?? '–'}${short ? ` against ${pct(short.final.shippedF16['probe.top1'])} % for the 5-epoch run: as with \`b-long\`, learning the pretraining lines longer does not give a new line better features` : ''}.`;
}

export function pretrainReport(cands: Candidate[], ablations: Card[], o: ReportOptions): string {
  const benchmark = { part: o.part, material: o.material };
  const evalRows: string[] = [];
  const sweepRows: string[] = [];
  for (const { card, evals, sweeps } of cands) {
    const groups = new Map<string, Candidate['evals']>();
    for (const e of evals) groups.set(`${e.task}|${e.method}`, [...(groups.get(`${e.task}|${e.method}`) ?? []), e]);
    for (const [k, es] of groups) {
      const [task, method] = k.split('|');
      const line = task === 'line' ? `${o.part} × ${o.material}` : 'Fashion-MNIST 5–9';
      evalRows.push(`| ${card.name} | ${line} | ${method} | ${es[0]!.lr} | ${o.stat(es.map((e) => e.top1))} | ${task === 'line' ? o.stat(es.map((e) => e.auroc), false) : '–'} | ${task === 'line' ? o.stat(es.map((e) => e.escapeAtFrr10)) : '–'} | ${es.length} |`);
    }
    for (const w of sweeps) sweepRows.push(`| ${card.name} | ${w.method} | ${w.lr} | ${pct(w.top1)} |`);
  }
  const all = [...ablations, ...cands.map((c) => c.card)];
  const targetLines: string[] = [];
  for (const { card, evals } of cands) {
    const of = (task: string, method: string) => evals.filter((e) => e.task === task && e.method === method);
    const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / Math.max(1, xs.length);
    const row = (what: string, es: Candidate['evals'], target: string, get: (e: Candidate['evals'][number]) => number, isPct = true) => {
      if (es.length) targetLines.push(`| ${card.name} | ${what} | ${target} | ${isPct ? pct(mean(es.map(get))) + ' %' : mean(es.map(get)).toFixed(3)} | ${es.length} |`);
    };
    row('benchmark line, VPT-deep top-1', of('line', 'vpt-deep'), '≥ 85 %', (e) => e.top1);
    row('benchmark line, linear top-1', of('line', 'linear'), '≥ 75 %', (e) => e.top1);
    row('benchmark line, AUROC defect vs ok (linear)', of('line', 'linear'), '≥ 0.95', (e) => e.auroc, false);
    row('benchmark line, AUROC defect vs ok (VPT-deep)', of('line', 'vpt-deep'), '≥ 0.95', (e) => e.auroc, false);
    row('benchmark line, escape rate at FRR ≤ 10 % (linear)', of('line', 'linear'), 'reported', (e) => e.escapeAtFrr10);
    row('benchmark line, escape rate at FRR ≤ 10 % (VPT-deep)', of('line', 'vpt-deep'), 'reported', (e) => e.escapeAtFrr10);
    row('Fashion-MNIST 5–9, VPT-deep top-1', of('fmnist5-9', 'vpt-deep'), '≥ 70 %', (e) => e.top1);
  }
  const hist = all.filter((c) => c.recipe.images >= 1000).flatMap((c) => c.history);
  const range = (k: string, d: number) => {
    const xs = hist.map((h) => h[k]).filter((v): v is number => typeof v === 'number' && v > 0);
    return xs.length ? `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}` : '–';
  };
  const lineRows = o.lineProbes.map((p) => `| ${p.run} | ${p.results.map((r) => (r ? `${pct(r.top1)} / ${r.auroc.toFixed(3)}` : '–')).join(' | ')} |`);
  const shipped = cands[0]?.card;
  const kindOf = (l: Line): string => {
    if (!shipped) return '';
    if (shipped.heldOut && l.part === shipped.heldOut.part && l.material === shipped.heldOut.material) return 'benchmark line';
    if (shipped.validation && l.part === shipped.validation.part && l.material === shipped.validation.material) return 'validation line: chooses the published epoch';
    const lines = Object.values(shipped.sources).flatMap((s) => s.lines ?? []);
    if (lines.includes(`${l.part} × ${l.material}`)) return 'a pretraining line';
    const design = lines.some((x) => x.startsWith(`${l.part} × `));
    const finish = lines.some((x) => x.endsWith(` × ${l.material}`));
    return `${design ? 'pretraining' : 'unseen'} design, ${finish ? 'pretraining' : 'unseen'} finish`;
  };
  const commands = all.map((c) => `- ${c.name}: \`${c.command}\` (${c.createdAt.slice(0, 10)})`).join('\n');
  return writeReport(
    'pretrain',
    'Pretraining a line backbone: candidates, ablations and their frozen features on an unseen line',
    o.command,
    `Evaluation machine: ${machine()}. The machine was shared with other work while these ran (load averages are in each card): read times as upper bounds. Each run was made by the command listed under the table (its card, next to its weights, holds the per-epoch history, the machine and the load average).

## Issue 15's targets (100 training images per class, mean over seeds)

| backbone | figure | target | measured | runs |
|---|---|---|---|---|
${targetLines.join('\n') || '| – | – | – | – | – |'}

Where a target is missed, the sections below show what was measured on the way: the pretraining runs and ablations, then the product's methods on the frozen features.

## Pretraining runs

The benchmark line ${o.part} × ${o.material} is a design and a finish no pretraining source draws. Nothing is chosen on it: each run is probed after every epoch on a **validation line** (bracket × steel: a finish no source draws either; the formula-driven \`random\` design draws every outline family but the bracket's, so an unseen validation line has to share the bracket design), and the shipped run publishes the epoch whose validation probe scored best. "probe" is a softmax regression fitted on frozen CLS features of 100 images per class of that line and scored on 100 more (compiler/pretrain/probe.ts); "parts top-1" is the pretraining head on the pretraining lines' own validation images. Time is wall time and the process's CPU time. The ablations are short runs that change one thing: the \`a-\` runs against \`a-patch1\`, the \`c-\`, \`d-\` (pretraining seed) and \`e-\` (architecture) runs against the shipped config (each config's comment says what it changes); \`a-init\` is the random initialisation (one step at lr 1e-12).

${TABLE_HEAD}
${all.map((c) => pretrainRow(c, benchmark)).join('\n')}

${commands}

### Reading

- The short runs' pretraining heads stay at or near chance (20 %) on the pretraining lines' own validation images; what the probe finds on an unseen line is what the first epoch's AdamW steps add to the random initialisation (\`a-init\`). In the shipped recipe (batch 32) the second epoch collapses (both heads fall to chance), which is why the shipped run publishes its best validation epoch, the first, instead of its last.
- A longer run of the same objective is not the lever: \`b-long\` (batch 64, 160,000 images seen, 53× the shipped run's, 12 min on a quiet machine) does learn the pretraining lines (their own top-1 20 % → 57 %, Fashion-MNIST 0–4 79 %), but its benchmark-line probe falls to 49.6 % / AUROC 0.756 against the shipped run's 76.0 % / 0.928: the supervised objective on 48 lines teaches the designs' and finishes' own cues, which do not carry to a new design in a new finish. The issue's PyTorch probe saw the same (67 % after 4 epochs, 61 % after 20).
- The product's methods score well below the probe on the same frozen features (tables below), and the gap was largest on the raw output: its features separate the classes by small differences around a large component common to every image, which SGD on a head works through slowly. \`pretrain\` now publishes the output centred per feature and divided by one scale (folded into the final norm and the heads: compiler/pretrain/standardize.ts; the card's \`standardised\`); the table below has the backbone both ways (\`vit_micro_patch8_64.factory.raw\` is the same run published without that step: \`npx edgeprompt pretrain -c configs/pretrain/vit_micro_patch8_64.factory.yaml --set name=vit_micro_patch8_64.factory.raw --set output.standardise=0 --set output.dir=../../.cache/pretrain/raw --set output.weightsDir=../../.cache/pretrain/raw\`). Centring lifts every row (linear most), but the methods stay below the probe's 76 % (the probe fits 300 full-batch Adam steps on standardised features; the trainer runs 10 SGD epochs of the product's recipes), and VPT-deep stays below linear on this 6-block, width-96 backbone.
- The shipped run's 76 % is fragile. Two one-change ablations of its recipe publish epoch 1 as well, and probe the benchmark line at 50.0 % (\`c-nopatch\`: no patch-level term) and 50.2 % (\`c-batch64\`: batch 64, the same steps). **Pretraining seeds** settle it: the same config with seed 1 and 2 (\`d-seed1\`, \`d-seed2\`: initialisation and sampling; the rendered lines are the same) probes the benchmark line at 46.2 % and 61.0 % (AUROC 0.783, 0.822), so over three seeds the shipped recipe gives 61.1 ± 14.9 %, and the shipped backbone is its best seed. Its validation probe at the published epoch (bracket × steel) was 61.4 % against 35.4 % and 40.8 % for the other seeds, so choosing the epoch on a bracket line also chose the run that sees brackets best: the next section shows what that leaves on lines of other designs.
- **Architecture candidates** (same recipe, one change): a twice-as-wide ViT (\`e-width192\`: width 192, 2.7 M parameters, 3.9× the shipped width's) is the only change that starts to learn the pretraining lines within the 5 epochs (their top-1 29 % at the last epoch, where the shipped width stays at chance) and probes the benchmark line at 70.6 % / AUROC 0.919 from its epoch 2, second to the shipped seed; it is better than the shipped backbone on hex × blue-anodised (47.6 % vs 40.4 %) and worse on the other lines. Patch 4 at 64 px (\`e-patch4\`: 16×16 tokens, 4× the shipped grid's) gives 47.6 %: smaller patches do not help this objective at this size. ${longNote(all)}
- **Colour augmentation** (\`f-colour\`, the shipped recipe with \`recipe.augment.colour: 0.5\`, seeds 0, 1, 2) does not help: the benchmark line probes 54.2 / 45.2 / 44.0 % (47.8 % on average against the plain recipe's 61.1 % over the same seeds), and the five lines 40.4 % on average against 47.6 %. Taking the finish away as a cue does not make the runs learn defects instead: like the plain recipe they stay at chance on the pretraining lines' own images (parts top-1 about 20 %), so what these runs hand a new line is mostly the random features moved by a few hundred AdamW steps, and the colour draws do not make those steps more useful.
- Levers the issue lists that are still not measured: per-image random design and finish alone, depth, the patch-level term's weight beyond on/off. Each is one \`edgeprompt pretrain\` of a few minutes on a quiet machine (the shipped recipe about 2 min, \`b-long\` 12 min; the width-192 and patch-4 runs took 7 and 10 min here beside other work); an earlier session's runs were starved on a machine shared by several sessions (load average ${range('load1', 0)} at the ends of their epochs).

## The probe on other lines

Each run's published backbone probed as \`pretrain\` probes after every epoch (a softmax regression on frozen CLS features, 100 + 100 images per class of the line, compiler/pretrain/probe.ts), on the benchmark line and on lines that share more or less with pretraining (what each line is, for ${shipped?.name ?? 'the first candidate'}, under its name). top-1 % / AUROC defect vs ok; – where the run's weights were not kept.

| run | ${o.probeLines.map((l) => `${lineName(l)} (${kindOf(l)})`).join(' | ')} |
|---|${o.probeLines.map(() => '---|').join('')}
${lineRows.join('\n')}

What this shows: no run sees every line. The shipped backbone is best on the benchmark line (76.0 %) and on the validation line it was chosen on (61.4 %), but on blue-anodised hex (a pretraining design in the benchmark line's unseen finish) it probes 40.4 %, and on plate lines, one of them a pretraining line itself (plate × brass), about 52 %; the other seeds and candidates sit between 32 and 50 % on those lines. The benchmark line's figure is therefore partly that line (the bracket design shared with the validation line that chose the epoch), and the features a new line can use are weak in general: the random initialisation (\`a-init\`) probes 29–39 % on these lines (35.4 % on average), and the pretraining runs add 4–21 points to that (the shipped backbone 56.3 % on average over the five lines, its other two seeds 39.6 % and 46.9 %, the width-192 candidate 51.0 %). The example configs, the demo and docs/bench/retune.md all train on the benchmark line (blue-anodised brackets), the line this backbone sees best; a line of another design would start lower.

## Frozen features on the benchmark line

The product's methods through the real trainer (ort engine), ${o.seeds.length} seeds (${o.seeds.join(', ')}), ${o.epochs} epochs, batch 32, SGD with warmup + cosine, 8 prompt tokens per layer for VPT-deep, 100 training images per class of ${o.part} × ${o.material}, scored on 100 other images per class **at the last epoch** (no epoch is picked on the scored images). The learning rate (SGD base lr, scaled by batch / 256) was chosen by a sweep on a validation split — 100 + 100 images per class of the same line drawn from another seed, none of them a scored image — with seed 0:

| backbone | method | base lr | validation top-1 % |
|---|---|---|---|
${sweepRows.join('\n') || '| – | – | – | – |'}

AUROC is defective vs ok (score 1 − p(ok)); the escape rate is the share of defective parts passed at the threshold that rejects ≤ 10 % of good parts. Mean ± std over seeds. Fashion-MNIST 5–9 uses 100 training images per class and the first 100 per class of t10k, with the lr the line's sweep chose.

| backbone | task | method | base lr | top-1 % | AUROC | escape % at FRR ≤ 10 % | runs |
|---|---|---|---|---|---|---|---|
${evalRows.join('\n')}
`,
  );
}
