/**
 * The pretraining report (issue 15): for each candidate backbone made by `edgeprompt pretrain`
 * (its card says how), the frozen-feature evaluation on the benchmark line — linear probe and
 * VPT-deep through the real trainer, 3 seeds, top-1, AUROC defect-vs-ok, escape rate at ≤ 10 %
 * false rejects — and optionally Fashion-MNIST 5–9 with VPT-deep; then docs/bench/pretrain.md with
 * the candidates' pretraining figures from their cards, and the ablation runs' cards (--ablations:
 * listed with their pretraining figures, not evaluated through the trainer).
 *
 *   npm run bench:pretrain -- --cards a.json,b.json [--ablations c.json,…] [--seeds 0,1,2] [--epochs 30] [--fmnist a.json] [--methods linear,vpt-deep] [--lr-scales 0.25,1,4]
 *
 * The recipe's learning rate is chosen per candidate and method by a sweep (--lr-scales: factors
 * on bench:transfer's SGD base lr, 4 for linear and 2 for VPT-deep, itself scaled by batch / 256;
 * seed 0) on a validation split of the line — another seed's images, none
 * of them a test image — and the chosen lr then trains the 3 seeds that are scored on the test
 * images, at the last epoch. A single value skips the sweep.
 *
 * Every run (candidates and ablations whose weights are still next to their card) is also probed
 * on several lines (--probe-lines part/finish,…): the probe `pretrain` runs after each epoch
 * (compiler/pretrain/probe.ts), on the benchmark and validation lines and on lines that share a
 * pretraining design or finish, to show how much of a run's benchmark figure is that one line.
 *
 * Results are kept per (card sha, task, method, seed, epochs) and per (card sha, probe line) in
 * .cache/bench/pretrain-eval.json, so adding a candidate re-runs only what is new; --fresh ignores
 * them.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { repo } from './lib.ts';
import { meanStd } from './transfer-task.ts';
import { BASE_LR, runEval, type EvalResult, type EvalSpec } from './pretrain-eval.ts';
import { pretrainReport, type Candidate, type LineProbe } from './pretrain-report.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { loadVitWeights } from '../compiler/backbones/vit-weights.ts';
import { probeHeldOut } from '../compiler/pretrain/evaluate.ts';
import { probeLineSets } from '../compiler/pretrain/job.ts';
import { probeLine } from '../compiler/pretrain/config.ts';
import type { ProbeResult } from '../compiler/pretrain/probe.ts';
import { initTf } from '../compiler/ops/tf-backend.ts';

const { values: f } = parseArgs({
  options: {
    cards: { type: 'string' },
    ablations: { type: 'string', default: '' },
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string', default: '30' },
    methods: { type: 'string', default: 'linear,vpt-deep' },
    'lr-scales': { type: 'string', default: '1' },
    fmnist: { type: 'string', default: '' },
    part: { type: 'string', default: 'bracket' },
    material: { type: 'string', default: 'blue-anodised' },
    'probe-lines': { type: 'string', default: 'bracket/blue-anodised,bracket/steel,hex/blue-anodised,plate/steel,plate/brass' },
    fresh: { type: 'boolean', default: false },
  },
});
if (!f.cards) throw new Error('--cards: comma-separated pretraining cards (<name>.json written by edgeprompt pretrain)');
const seeds = f.seeds === 'none' ? [] : f.seeds!.split(',').map(Number); // 'none': only the lr sweep
const epochs = Number(f.epochs);
const methods = f.methods!.split(',') as ('linear' | 'vpt-deep')[];
const store = join(repo, '.cache/bench/pretrain-eval.json');
const lrsFor = (m: 'linear' | 'vpt-deep'): number[] => f['lr-scales']!.split(',').map((x) => Number(x) * BASE_LR[m]);
const done: Record<string, EvalResult> = !f.fresh && existsSync(store) ? (JSON.parse(readFileSync(store, 'utf8')) as Record<string, EvalResult>) : {};
const fmnistCards = new Set(f.fmnist ? f.fmnist.split(',').map((c) => resolve(c)) : []);

const candidates: Candidate[] = [];
for (const cardFile of f.cards.split(',').map((c) => resolve(c))) {
  const card = JSON.parse(readFileSync(cardFile, 'utf8')) as Candidate['card'];
  const weights = join(dirname(cardFile), card.file);
  const evals: Candidate['evals'] = [];
  const tasks: ('line' | 'fmnist5-9')[] = ['line', ...(fmnistCards.has(cardFile) ? (['fmnist5-9'] as const) : [])];
  const run = async (task: EvalSpec['task'], method: EvalSpec['method'], seed: number, lr: number, split: EvalSpec['split']): Promise<EvalResult> => {
    const key = `${card.weights.sha256}|${task}|${task === 'line' ? `${f.part}×${f.material}` : ''}|${method}|${seed}|${epochs}|lr ${lr}|${split}`;
    // JSON keeps NaN (Fashion-MNIST has no ok class: no AUROC, no escape rate) as null.
    let r = done[key] && { ...done[key], auroc: done[key].auroc ?? NaN, escapeAtFrr10: done[key].escapeAtFrr10 ?? NaN };
    if (!r) {
      const name = `${card.name}-${task}-${method}-s${seed}-lr${lr}-${split}`;
      r = await runEval({ weights, arch: card.arch.name, task, method, seed, epochs, lr, split, part: f.part!, material: f.material!, name }, card.arch.imgSize);
      done[key] = r;
      mkdirSync(dirname(store), { recursive: true });
      writeFileSync(store, JSON.stringify(done, null, 1));
    }
    console.log(`${card.name} ${task} ${method} ${split} seed ${seed} lr ${lr}: top-1 ${(100 * r.top1).toFixed(2)} %, AUROC ${r.auroc.toFixed(3)}, escape@FRR≤10% ${(100 * r.escapeAtFrr10).toFixed(1)} %, ${r.seconds.toFixed(0)} s`);
    return r;
  };
  const sweeps: Candidate['sweeps'] = [];
  const chosen = new Map<string, number>();
  for (const method of methods) {
    const lrs = lrsFor(method);
    let best = lrs[0]!;
    let bestTop1 = -1;
    if (lrs.length > 1)
      for (const lr of lrs) {
        const r = await run('line', method, 0, lr, 'validation');
        sweeps.push({ method, lr, top1: r.top1 });
        if (r.top1 > bestTop1) [best, bestTop1] = [lr, r.top1];
      }
    chosen.set(method, best);
  }
  for (const task of tasks)
    for (const method of task === 'line' ? methods : (['vpt-deep'] as const))
      for (const seed of seeds) {
        const lr = chosen.get(method) ?? BASE_LR[method];
        const r = await run(task, method, seed, lr, 'test');
        evals.push({ task, method, seed, lr, ...r });
      }
  candidates.push({ cardFile: relative(repo, cardFile), card, evals, sweeps });
}

const stat = (xs: number[], pct = true) => {
  const { mean, std } = meanStd(xs);
  return pct ? `${(100 * mean).toFixed(1)} ± ${(100 * std).toFixed(1)}` : `${mean.toFixed(3)} ± ${std.toFixed(3)}`;
};
const command = `npm run bench:pretrain -- --cards ${f.cards}${f.ablations ? ` --ablations ${f.ablations}` : ''} --seeds ${f.seeds} --epochs ${epochs} --methods ${f.methods}${f['lr-scales'] !== '1' ? ` --lr-scales ${f['lr-scales']}` : ''}${f.fmnist ? ` --fmnist ${f.fmnist}` : ''} --probe-lines ${f['probe-lines']}`;
const ablationFiles = f.ablations ? f.ablations.split(',').map((c) => resolve(c)) : [];
const ablations = ablationFiles.map((c) => JSON.parse(readFileSync(c, 'utf8')) as Candidate['card']);

// The per-epoch probe of `pretrain` on other lines, for every run whose published weights are kept.
const probeLines = f['probe-lines'] ? f['probe-lines'].split(',').map((l) => { const [part, material] = l.split('/'); return { part: part!, material: material! }; }) : [];
const lineProbes: LineProbe[] = [];
if (probeLines.length) await initTf(); // the probe exports the backbone through OnnxOps, which folds weights with TfOps
const runs = [...ablationFiles.map((file, i) => ({ file, card: ablations[i]! })), ...candidates.map((c) => ({ file: resolve(repo, c.cardFile), card: c.card }))];
for (const { file: cardFile, card } of runs) {
  const weights = join(dirname(cardFile), card.file);
  const results: (ProbeResult | null)[] = [];
  for (const l of probeLines) {
    const key = `${card.weights.sha256}|probe|${l.part}×${l.material}`;
    let r = (done[key] as unknown as ProbeResult | undefined) ?? null;
    if (!r && existsSync(weights)) {
      const cfg = vitConfig(card.arch.name);
      r = await probeHeldOut(cfg, loadVitWeights(weights, cfg).stateDict, await probeLineSets(join(repo, '.cache/pretrain-data'), cfg, probeLine.parse({ ...l, every: 0 })));
      done[key] = r as never;
      writeFileSync(store, JSON.stringify(done, null, 1));
    }
    if (r) console.log(`${card.name} probe ${l.part} × ${l.material}: top-1 ${(100 * r.top1).toFixed(1)} %, AUROC ${r.auroc.toFixed(3)}`);
    results.push(r);
  }
  lineProbes.push({ run: card.name, results });
}
const file = pretrainReport(candidates, ablations, { command, seeds, epochs, part: f.part!, material: f.material!, stat, probeLines, lineProbes });
console.log(`wrote ${file}`);
