/**
 * CLIP prompt methods on the shipped tiny CLIP (issue 16): zero-shot vs CoOp vs VP (inner, outer)
 * vs VPT-shallow vs DAPT, k shots per class, several seeds, on the benchmark line (bracket ×
 * blue-anodised: a design and finish no caption named in pretraining) and Fashion-MNIST 5–9;
 * base-to-new (trained on the first 3 classes, scored on the other 2 by their names alone); and
 * the latency of each exported form ÷ the zero-shot export (the bare image tower with a constant
 * class head), onnxruntime CPU, batch 1, interleaved, min / median / max over invocations.
 *
 *   npm run bench:clip [-- --tasks line,fmnist --shots 1,2,4,8,16 --seeds 1,2,3 --epochs 8 --val-per-class 30 --base-to-new 16]
 *   npm run bench:clip -- --latency-only --epochs 8 --val-per-class 30 [--invocations 3 --rounds 5 --runs 5]
 *
 * Every cell goes to .cache/bench/clip/results.<tasks>.json as soon as it is measured, keyed by its
 * settings, and a re-run skips the cells already there: a long grid can be run in parts (or
 * stopped and continued) and the report always shows every cell measured so far, naming those
 * not run.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { compileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob, type PreparedJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { readSafetensors, type StateDict } from '../compiler/backbones/safetensors.ts';
import { exportTask } from '../compiler/export/task.ts';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { SHIPPED_CLIP } from '../compiler/backbones/shipped-clip.ts';
import { methodByName } from '../compiler/methods/registry.ts';
import { acrossInvocations, fmtSpread, isInvocationChild, repo, spread, timeInterleaved, writeReport } from './lib.ts';

const { values: f } = parseArgs({
  options: {
    tasks: { type: 'string', default: 'line,fmnist' },
    shots: { type: 'string', default: '1,2,4,8,16' },
    seeds: { type: 'string', default: '1,2,3' },
    methods: { type: 'string', default: 'coop,clip-vp-inner,clip-vp-outer,clip-vpt-shallow,dapt' },
    epochs: { type: 'string', default: '8' },
    'base-to-new': { type: 'string', default: '16', description: 'shots for base-to-new (empty: skip)' },
    'val-per-class': { type: 'string', default: '30' },
    invocations: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '10' },
    'lr-factor': { type: 'string', default: '', description: 'each method\'s own lr × this: "0.1" for all, or "coop=0.1,dapt=0.01"' },
    'latency-only': { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
  },
});
const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
const TASKS = list(f.tasks!) as Task[];
const SHOTS = list(f.shots!).map(Number);
const SEEDS = list(f.seeds!).map(Number);
const METHODS = list(f.methods!);
const EPOCHS = Number(f.epochs);
const B2N = f['base-to-new'] ? Number(f['base-to-new']) : 0;
const VAL = Number(f['val-per-class']);
/** lr factor per method (1: the method's own recipe lr, tuned on ViT-B/32 in the papers). */
const LR_FACTOR: Record<string, number> = Object.fromEntries(
  list(f['lr-factor']!).map((x) => (x.includes('=') ? [x.split('=')[0]!, Number(x.split('=')[1])] : ['*', Number(x)])),
);
const factorOf = (method: string) => LR_FACTOR[method] ?? LR_FACTOR['*'] ?? 1;
/** How a method's row is named in the report: with its lr factor when not 1. */
const label = (method: string) => (method !== 'zero-shot' && factorOf(method) !== 1 ? `${method} (lr × ${factorOf(method)})` : method);
const dir = join(repo, '.cache/bench/clip');
/** The issue's grid: what the report always shows, marking what has not been run. */
const FULL_SHOTS = [1, 2, 4, 8, 16];
const FULL_SEEDS = 3;
const FULL_METHODS = ['coop', 'clip-vp-inner', 'clip-vp-outer', 'clip-vpt-shallow', 'dapt'];
/** One results file per task list, so the tasks can run as parallel processes; the report reads them all. */
const resultsFile = join(dir, `results.${TASKS.join('+')}${f['lr-factor'] ? `.lr${f['lr-factor'].replace(/[^\w.=]/g, '_')}` : ''}.json`);

type Task = 'line' | 'fmnist';
const LINE = { part: 'bracket', material: 'blue-anodised' };
/** Class words in each task's label order (parts: dent, missing_hole, ok, scratch, stain). */
const WORDS: Record<Task, string[]> = {
  line: ['part with a dent', 'part with a missing hole', 'part with no defect', 'part with a scratch', 'part with a stain'],
  fmnist: ['sandal', 'shirt', 'sneaker', 'bag', 'ankle boot'],
};
const TEMPLATES = ['a photo of a {}.'];
/** Per method: options sized for the tiny CLIP (text context 24), and the method's own lr. */
const METHOD: Record<string, { options: Record<string, unknown>; lr?: number }> = {
  'zero-shot': { options: {} },
  coop: { options: { contextTokens: 8 } },
  'clip-vp-inner': { options: { padSize: 8 } },
  'clip-vp-outer': { options: { padSize: 8 } },
  'clip-vpt-shallow': { options: { prompts: 16 } },
  dapt: { options: { visualPrompts: 16, textContext: 8 } },
};

interface Cell {
  key: string;
  task: Task;
  method: string;
  shots: number;
  seed: number;
  /** 'all' (5 classes) or 'base' / 'new' (base-to-new). */
  split: 'all' | 'base' | 'new';
  top1: number;
  seconds: number;
}
const results: Record<string, Cell> = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, Cell>) : {};
/** Every cell measured so far, by any task list (for the report). */
function allResults(): Cell[] {
  const files = existsSync(dir) ? readdirSync(dir).filter((n) => /^results\..+\.json$/.test(n)) : [];
  const out = new Map<string, Cell>();
  for (const n of files) for (const c of Object.values(JSON.parse(readFileSync(join(dir, n), 'utf8')) as Record<string, Cell>)) out.set(c.key, c);
  for (const c of Object.values(results)) out.set(c.key, c);
  return [...out.values()];
}
const save = () => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(resultsFile, JSON.stringify(results, null, 1));
};
/** The weights' sha256 is part of every cell's key: new weights never reuse old cells. */
const WEIGHTS = createHash('sha256').update(readFileSync(SHIPPED_CLIP.weights)).digest('hex').slice(0, 12);
const SUFFIX = `|e${EPOCHS}|v${VAL}|w${WEIGHTS}`;
const keyOf = (task: Task, method: string, shots: number, seed: number, split: string) => `${task}|${method}${method !== 'zero-shot' && factorOf(method) !== 1 ? `@lr×${factorOf(method)}` : ''}|${shots}|${seed}|${split}${SUFFIX}`;

function data(task: Task, classes?: number[]) {
  if (task === 'fmnist') return { kind: 'fashion-mnist', classes: classes ?? [5, 6, 7, 8, 9], limitPerClass: 100, valLimitPerClass: VAL };
  // perClass 100 + VAL, of which VAL go to validation; all 5 classes (base-to-new selects by label after).
  return { kind: 'parts', ...LINE, perClass: 100 + VAL, size: 64, valFraction: VAL / (100 + VAL), seed: 0 };
}

async function job(task: Task, method: string, shots: number, seed: number, words = WORDS[task], classes?: number[]): Promise<PreparedJob> {
  const m = METHOD[method]!;
  const cfg = compileConfig.parse({
    name: `clip-${task}-${method}-${shots}-${seed}`,
    backbone: { arch: SHIPPED_CLIP.arch, weights: SHIPPED_CLIP.weights, tokenizer: SHIPPED_CLIP.tokenizer },
    text: { templates: TEMPLATES, classNames: words },
    data: data(task, classes),
    ...(method === 'zero-shot' ? {} : { kShot: shots }),
    method: { name: method, options: m.options },
    recipe: method === 'zero-shot' ? {} : { epochs: EPOCHS, batchSize: Math.min(32, shots * words.length), optimizer: { lr: methodByName(method).recipe(METHOD[method]!.options as never).optimizer.lr * factorOf(method) } },
    seed,
    engine: 'ort',
    gates: { minTop1: 0 },
    output: { dir: join(dir, 'runs', `${task}-${method}-lr${factorOf(method)}-${shots}-${seed}-${words.length}${SUFFIX.replaceAll('|', '-')}`) },
  });
  return prepareJob(cfg, join(repo, 'bench/clip.yaml'), { resume: false, progress: makeProgress('none') });
}

/** Trains (unless zero-shot) and returns the best validation top-1 and the prepared job + best tensors. */
async function trainCell(task: Task, method: string, shots: number, seed: number, words?: string[], classes?: number[]) {
  const t0 = performance.now();
  const p = await job(task, method, shots, seed, words, classes);
  const r = await train(p.job);
  return { p, top1: r.state.bestTop1, best: readSafetensors(r.bestParamsFile).tensors, seconds: (performance.now() - t0) / 1000 };
}

/** Top-1 of trained tensors on another job's data and class words (base-to-new: the new classes). */
async function scoreOn(p: PreparedJob, params: StateDict): Promise<number> {
  const fresh = new Map(p.job.initial);
  for (const [k, v] of params) if (fresh.has(k)) fresh.set(k, v);
  const engine = await p.job.makeEngine(fresh);
  let hit = 0;
  let n = 0;
  try {
    const C = p.job.data.classes.length;
    for await (const b of p.job.data.valBatches(100)) {
      const z = await engine.predict(b.x, b.y.length);
      for (let i = 0; i < b.y.length; i++) {
        const row = z.subarray(i * C, (i + 1) * C);
        hit += Number(row.indexOf(Math.max(...row)) === b.y[i]);
        n++;
      }
    }
  } finally {
    engine.dispose();
  }
  return hit / n;
}

async function grid(): Promise<void> {
  await initTf();
  for (const task of TASKS) {
    const zk = keyOf(task, 'zero-shot', 0, 0, 'all');
    if (!results[zk]) {
      const c = await trainCell(task, 'zero-shot', 0, 1);
      results[zk] = { key: zk, task, method: 'zero-shot', shots: 0, seed: 0, split: 'all', top1: c.top1, seconds: c.seconds };
      save();
      console.log(`${task} zero-shot: ${(100 * c.top1).toFixed(1)} %`);
    }
    // Shots from the highest down, so the cells the doc needs first (16, then 4 …) come first.
    for (const shots of [...SHOTS].sort((a, b) => b - a)) {
      for (const seed of SEEDS) {
        for (const method of METHODS) {
          const k = keyOf(task, method, shots, seed, 'all');
          if (results[k]) continue;
          const c = await trainCell(task, method, shots, seed);
          results[k] = { key: k, task, method: label(method), shots, seed, split: 'all', top1: c.top1, seconds: c.seconds };
          save();
          console.log(`${task} ${method} ${shots}-shot seed ${seed}: ${(100 * c.top1).toFixed(1)} % (${c.seconds.toFixed(0)} s)`);
        }
      }
    }
  }
  if (B2N > 0) await baseToNew();
}

/** Base = the first 3 classes, new = the last 2 (their words only). Fashion-MNIST: 5–7 / 8–9. */
async function baseToNew(): Promise<void> {
  for (const task of TASKS.filter((t) => t === 'fmnist')) {
    const base = [5, 6, 7];
    const fresh = [8, 9];
    for (const seed of SEEDS) {
      for (const method of ['zero-shot', ...METHODS]) {
        const kb = keyOf(task, method, B2N, seed, 'base');
        const kn = keyOf(task, method, B2N, seed, 'new');
        if (results[kb] && results[kn]) continue;
        const c = await trainCell(task, method, B2N, seed, WORDS.fmnist.slice(0, 3), base);
        const pn = await job(task, method, B2N, seed, WORDS.fmnist.slice(3), fresh);
        const top1New = await scoreOn(pn, c.best);
        results[kb] = { key: kb, task, method: label(method), shots: B2N, seed, split: 'base', top1: c.top1, seconds: c.seconds };
        results[kn] = { key: kn, task, method: label(method), shots: B2N, seed, split: 'new', top1: top1New, seconds: 0 };
        save();
        console.log(`${task} base-to-new ${method} seed ${seed}: base ${(100 * c.top1).toFixed(1)} %, new ${(100 * top1New).toFixed(1)} %`);
      }
    }
  }
}

/** ms per image of each exported form (16 shots, seed 1, the line), interleaved in one process. */
async function latency(): Promise<Record<string, number>> {
  await initTf();
  const forms = ['zero-shot', ...METHODS];
  const models: Uint8Array[] = [];
  for (const method of forms) {
    const p = await job('line', method, 16, 1);
    const best = join(p.job.outDir, 'best.safetensors');
    const params = existsSync(best) ? readSafetensors(best).tensors : (await train(p.job), readSafetensors(best).tensors);
    models.push(exportTask({ cfg: p.cfg, backbone: p.backbone, method: p.job.method, options: p.job.options, params, ...(p.clip ? { clip: p.clip } : {}) }));
  }
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', logSeverityLevel: 3 };
  const sessions = await Promise.all(models.map((m) => ort.InferenceSession.create(m, opts)));
  const x = new ort.Tensor('uint8', Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 37) % 256), [1, 64, 64, 3]);
  const ms = await timeInterleaved(sessions.map((s) => () => s.run({ [s.inputNames[0]!]: x })), Number(f.rounds), Number(f.runs));
  await Promise.all(sessions.map((s) => s.release()));
  return Object.fromEntries(forms.map((m, i) => [m, ms[i]!]));
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n − 1), as the other method pages; 0 for one run. */
const std = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));
const pct = (xs: number[]) => (xs.length ? `${(100 * mean(xs)).toFixed(1)} ± ${(100 * std(xs)).toFixed(1)} (${xs.length})` : 'not run');

function report(lat: Record<string, number>[] | null): void {
  const all = allResults().filter((c) => c.key.endsWith(SUFFIX));
  const cells = (task: Task, method: string, shots: number, split = 'all') => all.filter((c) => c.task === task && c.method === method && c.split === split && (method === 'zero-shot' || c.shots === shots)).map((c) => c.top1);
  const missing: string[] = [];
  const missingShots = new Set<number>();
  // The issue's whole grid is always shown; what this or an earlier run did not reach reads "not run".
  const shown = [...new Set([...FULL_SHOTS, ...SHOTS])].sort((a, b) => a - b);
  const tables = (['line', 'fmnist'] as Task[]).map((task) => {
    const head = `| method | ${shown.map((s) => `${s} shot${s > 1 ? 's' : ''}`).join(' | ')} |\n|---|${shown.map(() => '---').join('|')}|`;
    const rows = ['zero-shot', ...FULL_METHODS.map(label)].map((m) => `| ${m} | ${shown.map((s) => {
      const v = cells(task, m, s);
      if (m !== 'zero-shot' && v.length < FULL_SEEDS) {
        missing.push(`${task} ${m} ${s}-shot: ${FULL_SEEDS - v.length} of ${FULL_SEEDS} seeds`);
        missingShots.add(s);
      }
      return pct(v);
    }).join(' | ')} |`);
    return `### ${task === 'line' ? `Benchmark line (${LINE.part} × ${LINE.material})` : 'Fashion-MNIST 5–9'}\n\nTop-1 % on ${VAL} validation images per class, mean ± sample std over seeds (runs in brackets); zero-shot needs no shots (one figure, repeated).\n\n${head}\n${rows.join('\n')}`;
  });
  const b2n = B2N
    ? `## Base-to-new (Fashion-MNIST, ${B2N} shots)\n\nTrained on sandal, shirt, sneaker (base); scored on bag and ankle boot (new) by their words only: the trained prompts (text context, visual prompts) with the new classes' text head. Mean ± sample std over seeds.\n\n| method | base top-1 % | new top-1 % |\n|---|---|---|\n${['zero-shot', ...FULL_METHODS.map(label)].map((m) => `| ${m} | ${pct(cells('fmnist', m, B2N, 'base'))} | ${pct(cells('fmnist', m, B2N, 'new'))} |`).join('\n')}`
    : '';
  // Cells run with another lr (--lr-factor): one small table, so a sweep is on the page too.
  const swept = all.filter((c) => c.method.includes('(lr ×'));
  const sweep = swept.length
    ? `## Learning-rate factors tried\n\nThe same cells with each method's own lr multiplied (\`--lr-factor\`), top-1 %, mean ± sample std (runs).\n\n| task | method | shots | top-1 % |\n|---|---|---|---|\n${[...new Set(swept.map((c) => `${c.task}|${c.method}|${c.shots}`))].sort().map((k) => {
        const [task, method, shots] = k.split('|');
        return `| ${task} | ${method} | ${shots} | ${pct(swept.filter((c) => `${c.task}|${c.method}|${c.shots}` === k).map((c) => c.top1))} |`;
      }).join('\n')}`
    : '';
  const latTable = lat
    ? `## Latency of each exported form\n\nThe fused artifacts of the benchmark line's 16-shot seed-1 runs, onnxruntime-node CPU, 2 intra-op threads, batch 1 (uint8 64×64 NHWC in, logits out), interleaved rounds in one process; figures are min / median / max over ${lat.length} invocations, ratios taken within each. The zero-shot export is the bare image tower with a constant class head (C×E), so its ratio is the reference 1. CoOp's export is the same graph as zero-shot's (a constant class head; only its values differ), so their ratio shows how noisy the machine was while measuring (it was shared with other work: load average ${loadavg()[0]!.toFixed(0)} when this page was written).\n\n| form | ms per image | ÷ zero-shot |\n|---|---|---|\n${Object.keys(lat[0]!).map((m) => `| ${m} | ${fmtSpread(spread(lat.map((l) => l[m]!)), 3)} | ${fmtSpread(spread(lat.map((l) => l[m]! / l['zero-shot']!)))} |`).join('\n')}`
    : '## Latency of each exported form\n\nNot measured in this run (`--latency-only` measures it from the 16-shot line runs).';
  const body = `Backbone: the shipped tiny CLIP \`${SHIPPED_CLIP.arch}\` (compiler/backbones/weights/clip_tiny_p8_64.factory.*, sha256 ${WEIGHTS}…; its card says how it was pretrained). Class words: templates ${JSON.stringify(TEMPLATES)}; the line's classes "${WORDS.line.join('", "')}", Fashion-MNIST "${WORDS.fmnist.join('", "')}". Training: the product's trainer (ort engine), each method's own recipe (SGD, Dassl schedule) but **${EPOCHS} epochs** (the papers use 50–200; this machine is shared) and batch min(32, 5·k); k training images per class drawn by the seed; best validation epoch reported. Options sized for the tiny CLIP: CoOp 8 context vectors, DAPT 16 visual prompts + 8 text vectors, VP pad 8 px (30 at 224), VPT-shallow 16 prompts.

${tables.join('\n\n')}

${b2n}

${sweep}

${latTable}

## Not run

${missing.length ? missing.map((m) => `- ${m}`).join('\n') : '- (every cell of the grid above was run)'}

Cells not run are run, and this page rewritten, by the same command with the missing shots (finished cells are kept in .cache/bench/clip/results.*.json and skipped): \`npm run bench:clip -- --tasks line,fmnist --shots ${[...missingShots].sort((a, b) => a - b).join(',') || FULL_SHOTS.join(',')} --seeds 1,2,3 --epochs ${EPOCHS} --val-per-class ${VAL} --base-to-new ${B2N || 16}\`, then \`npm run bench:clip -- --latency-only --epochs ${EPOCHS} --val-per-class ${VAL}\` for the latency table.`;
  const file = writeReport('clip', 'CLIP prompt methods on the shipped tiny CLIP', `npm run bench:clip -- --tasks ${f.tasks} --shots ${f.shots} --seeds ${f.seeds} --epochs ${EPOCHS} --base-to-new ${f['base-to-new']} --val-per-class ${VAL}`, body);
  console.log(`wrote ${file}`);
}

if (f['latency-only'] || isInvocationChild()) {
  const lat = await acrossInvocations(Number(f.invocations), latency);
  writeFileSync(join(dir, 'latency.json'), JSON.stringify(lat));
  report(lat);
} else {
  if (!f['report-only']) await grid();
  report(existsSync(join(dir, 'latency.json')) ? (JSON.parse(readFileSync(join(dir, 'latency.json'), 'utf8')) as Record<string, number>[]) : null);
}
