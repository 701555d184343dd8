/**
 * The pretraining report (issue 15): for each candidate backbone made by `edgeprompt pretrain`
 * (its card says how), the frozen-feature evaluation on the benchmark line — linear probe and
 * VPT-deep through the real trainer, 3 seeds, top-1, AUROC defect-vs-ok, escape rate at ≤ 10 %
 * false rejects — and optionally Fashion-MNIST 5–9 with VPT-deep; then docs/bench/pretrain.md with
 * the candidates' pretraining figures from their cards.
 *
 *   npm run bench:pretrain -- --cards a.json,b.json [--seeds 0,1,2] [--epochs 30] [--fmnist a.json] [--methods linear,vpt-deep]
 *
 * Results are kept per (card sha, task, method, seed, epochs) in .cache/bench/pretrain-eval.json,
 * so adding a candidate re-runs only what is new; --fresh ignores them.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { repo } from './lib.ts';
import { meanStd } from './transfer-task.ts';
import { runEval, type EvalResult } from './pretrain-eval.ts';
import { pretrainReport, type Candidate } from './pretrain-report.ts';

const { values: f } = parseArgs({
  options: {
    cards: { type: 'string' },
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string', default: '30' },
    methods: { type: 'string', default: 'linear,vpt-deep' },
    fmnist: { type: 'string', default: '' },
    part: { type: 'string', default: 'bracket' },
    material: { type: 'string', default: 'blue-anodised' },
    fresh: { type: 'boolean', default: false },
  },
});
if (!f.cards) throw new Error('--cards: comma-separated pretraining cards (<name>.json written by edgeprompt pretrain)');
const seeds = f.seeds!.split(',').map(Number);
const epochs = Number(f.epochs);
const methods = f.methods!.split(',') as ('linear' | 'vpt-deep')[];
const store = join(repo, '.cache/bench/pretrain-eval.json');
const done: Record<string, EvalResult> = !f.fresh && existsSync(store) ? (JSON.parse(readFileSync(store, 'utf8')) as Record<string, EvalResult>) : {};
const fmnistCards = new Set(f.fmnist ? f.fmnist.split(',').map((c) => resolve(c)) : []);

const candidates: Candidate[] = [];
for (const cardFile of f.cards.split(',').map((c) => resolve(c))) {
  const card = JSON.parse(readFileSync(cardFile, 'utf8')) as Candidate['card'];
  const weights = join(dirname(cardFile), card.file);
  const evals: Candidate['evals'] = [];
  const tasks: ('line' | 'fmnist5-9')[] = ['line', ...(fmnistCards.has(cardFile) ? (['fmnist5-9'] as const) : [])];
  for (const task of tasks)
    for (const method of task === 'line' ? methods : (['vpt-deep'] as const))
      for (const seed of seeds) {
        const key = `${card.weights.sha256}|${task}|${task === 'line' ? `${f.part}×${f.material}` : ''}|${method}|${seed}|${epochs}`;
        let r = done[key];
        if (!r) {
          const name = `${card.name}-${task}-${method}-s${seed}`;
          r = await runEval({ weights, arch: card.arch.name, task, method, seed, epochs, part: f.part!, material: f.material!, name }, card.arch.imgSize);
          done[key] = r;
          mkdirSync(dirname(store), { recursive: true });
          writeFileSync(store, JSON.stringify(done, null, 1));
        }
        evals.push({ task, method, seed, ...r });
        console.log(`${card.name} ${task} ${method} seed ${seed}: top-1 ${(100 * r.top1).toFixed(2)} %, AUROC ${r.auroc.toFixed(3)}, escape@FRR≤10% ${(100 * r.escapeAtFrr10).toFixed(1)} %, ${r.seconds.toFixed(0)} s`);
      }
  candidates.push({ cardFile: relative(repo, cardFile), card, evals });
}

const stat = (xs: number[], pct = true) => {
  const { mean, std } = meanStd(xs);
  return pct ? `${(100 * mean).toFixed(1)} ± ${(100 * std).toFixed(1)}` : `${mean.toFixed(3)} ± ${std.toFixed(3)}`;
};
const command = `npm run bench:pretrain -- --cards ${f.cards} --seeds ${f.seeds} --epochs ${epochs} --methods ${f.methods}${f.fmnist ? ` --fmnist ${f.fmnist}` : ''}`;
const file = pretrainReport(candidates, { command, seeds, epochs, part: f.part!, material: f.material!, stat });
console.log(`wrote ${file}`);
