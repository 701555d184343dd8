/**
 * Engine parity on the benchmark task (issue 8 "Done when"): each method trained with
 * `engine: ort` and with `engine: tfjs` (WebAssembly backend) for the same seeds, on the task and
 * recipes of bench/transfer.ts (bench/transfer-task.ts), Fashion-MNIST classes 5–9 from the
 * shipped backbone. Same seed → same initial tensors, same batches and same optimiser on both
 * engines; only VPT-deep's prompt dropout draws its masks from a different RNG per engine
 * (compiler/train/engine-ort.ts), and float summation order differs, so runs are paired by
 * seed but not bit-identical.
 *
 *   npm run bench:engines [-- --seeds 0,1,2 --epochs 8 --cap 100 --val 200 --methods linear,vpt-deep,vpt-shallow,full --reuse]
 *
 * --reuse takes a run's figures from .cache/bench/engines/<name>.json when that file was written
 * for the same spec, so a long table can be filled in over several invocations.
 */
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { fmtSpread, repo, spread, writeReport } from './lib.ts';
import { meanStd, PROMPTS, runTask, type RunResult, type TaskSpec } from './transfer-task.ts';

const { values: f } = parseArgs({
  options: {
    seeds: { type: 'string', default: '0,1,2' },
    epochs: { type: 'string', default: '8' },
    cap: { type: 'string', default: '100' },
    val: { type: 'string', default: '200' },
    methods: { type: 'string', default: 'linear,vpt-deep,vpt-shallow,full' },
    reuse: { type: 'boolean', default: false },
  },
});
const seeds = f.seeds!.split(',').map(Number);
const methods = f.methods!.split(',');
const ENGINES = ['ort', 'tfjs'] as const;
type EngineName = (typeof ENGINES)[number];
const cacheDir = join(repo, '.cache/bench/engines');
mkdirSync(cacheDir, { recursive: true });

interface Run extends RunResult { method: string; seed: number; engineAsked: EngineName }
const runs: Run[] = [];
for (const method of methods)
  for (const seed of seeds)
    for (const engine of ENGINES) {
      const name = `fmnist5-9-${method}-s${seed}-${engine}`;
      // backend wasm on both: the tfjs engine trains on it, the ort engine only folds constants with it.
      const spec: TaskSpec = { task: 'fmnist5-9', shots: 'all', method, seed, cap: Number(f.cap), val: Number(f.val), epochs: Number(f.epochs), shotEpochs: 0, engine, backend: 'wasm', outGroup: 'engines', name };
      const cached = join(cacheDir, `${name}.json`);
      let r: RunResult;
      const old = f.reuse && existsSync(cached) ? (JSON.parse(readFileSync(cached, 'utf8')) as { spec: TaskSpec; result: RunResult }) : null;
      if (old && isDeepStrictEqual(old.spec, spec)) {
        r = old.result;
        console.log(`${name}: reused ${cached}`);
      } else {
        r = await runTask(spec);
        writeFileSync(cached, JSON.stringify({ spec, result: r }, null, 1));
      }
      if (r.engine !== engine) throw new Error(`${name}: asked for engine ${engine} but the trainer ran ${r.engine} (${r.backend})`);
      runs.push({ ...r, method, seed, engineAsked: engine });
      console.log(`${name}: top-1 ${(100 * r.top1).toFixed(2)} %, final train loss ${r.trainLoss.toFixed(4)}, ${r.ips.toFixed(1)} img/s, ${r.seconds.toFixed(0)} s (${r.backend})`);
    }

const pct = (x: number) => (100 * x).toFixed(2);
const pick = (method: string, engine: EngineName) => seeds.map((s) => runs.find((r) => r.method === method && r.seed === s && r.engineAsked === engine)!);
const summary: string[] = [];
const perSeed: string[] = [];
let allSame = true;
for (const method of methods) {
  const o = pick(method, 'ort');
  const t = pick(method, 'tfjs');
  const so = meanStd(o.map((r) => r.top1));
  const st = meanStd(t.map((r) => r.top1));
  const d = o.map((r, i) => r.top1 - t[i]!.top1);
  const md = meanStd(d);
  // Noise criterion: the mean paired difference is within 2 standard errors of one engine's
  // seed mean (pooled std over both engines / √n), with a floor of 1 point for near-zero spread.
  const pooled = Math.sqrt((so.std ** 2 + st.std ** 2) / 2);
  const tol = Math.max(0.01, (2 * pooled) / Math.sqrt(seeds.length));
  const same = Math.abs(md.mean) <= tol;
  allSame &&= same;
  const ipsO = meanStd(o.map((r) => r.ips)).mean;
  const ipsT = meanStd(t.map((r) => r.ips)).mean;
  summary.push(`| ${method} | ${o[0]!.params.toLocaleString('en-US')} | ${pct(so.mean)} ± ${pct(so.std)} | ${pct(st.mean)} ± ${pct(st.std)} | ${md.mean >= 0 ? '+' : ''}${pct(md.mean)} | ${pct(tol)} | ${same ? 'same within noise' : '**differs**'} | ${ipsO.toFixed(1)} | ${ipsT.toFixed(1)} | ${fmtSpread(spread(o.map((r, i) => r.ips / t[i]!.ips)), 1)} |`);
  for (let i = 0; i < seeds.length; i++)
    perSeed.push(`| ${method} | ${seeds[i]} | ${pct(o[i]!.top1)} | ${pct(t[i]!.top1)} | ${d[i]! >= 0 ? '+' : ''}${pct(d[i]!)} | ${o[i]!.trainLoss.toFixed(4)} | ${t[i]!.trainLoss.toFixed(4)} | ${o[i]!.seconds.toFixed(0)} | ${t[i]!.seconds.toFixed(0)} |`);
}
const backends = [...new Set(runs.map((r) => `${r.engine}: ${r.backend}`))].sort();
const left = ['linear', 'vpt-shallow', 'vpt-deep', 'full'].filter((m) => !methods.includes(m));
const totalMin = runs.reduce((a, r) => a + r.seconds, 0) / 60;

const file = writeReport(
  'engines',
  'Engine parity: ort vs tfjs (wasm) top-1 on the benchmark task',
  `nice -n 10 npm run bench:engines -- --seeds ${f.seeds} --epochs ${f.epochs} --cap ${f.cap} --val ${f.val} --methods ${f.methods}${f.reuse ? ' --reuse' : ''}`,
  `Task: the transfer benchmark's (bench/transfer-task.ts): vit_micro_patch4_32 pretrained on Fashion-MNIST classes 0–4, trained on classes 5–9 (train split capped at ${f.cap}/class, validation = ${f.val}/class of the test split), ${f.epochs} epochs, batch 32, 1 warm-up epoch; SGD base lr 4 (linear) / 2 (VPT, weight decay 1e-4), AdamW 5e-4 (full); ${PROMPTS} prompt tokens. Top-1 = best validation accuracy over the epochs; mean ± sample std over seeds ${seeds.join(', ')}.
Engines as run: ${backends.join('; ')}. Images/s: median over epochs of the training loop (forward + backward + optimiser, data included), mean over seeds; the ratio is taken seed by seed (each seed is its own pair of runs, minutes apart) and given as min / median / max; this 2-core machine is shared with other jobs, so throughput is indicative only. ${runs.length} runs took ${totalMin.toFixed(0)} min in all.

Pairing: a seed gives both engines the same initial tensors, batches, augmentation and optimiser (compiler/train/optim.ts runs on the host for both). The runs are still not bit-identical: the engines sum in different orders (onnxruntime's CPU kernels vs tfjs-wasm's), which grows over hundreds of SGD steps, and VPT-deep's prompt dropout (p = 0.1) draws its masks from a different RNG in each engine (the ort engine from mulberry32(seed, 'drop', step), compiler/train/engine-ort.ts; tfjs from its own). Single-step equality of loss and gradients (≤ 1e-4 relative) is checked per method in test/engine-ort.test.ts; this table checks where whole runs end.

Verdict: "same within noise" when |mean(ort − tfjs)| ≤ max(1 pt, 2·s_p/√${seeds.length}), s_p = √((s_ort² + s_tfjs²)/2) the pooled std of top-1 over seeds. ${allSame ? 'Every method passes.' : 'At least one method fails it (see the table).'}

| method | trainable values | ort top-1 % | tfjs top-1 % | mean Δ ort − tfjs (pt) | tolerance (pt) | verdict | ort img/s | tfjs img/s | ort ÷ tfjs (min / median / max over seeds) |
|---|---|---|---|---|---|---|---|---|---|
${summary.join('\n')}

Per seed (Δ = ort − tfjs top-1, final-epoch training loss, wall seconds including data loading and engine set-up):

| method | seed | ort top-1 % | tfjs top-1 % | Δ (pt) | ort train loss | tfjs train loss | ort s | tfjs s |
|---|---|---|---|---|---|---|---|---|
${perSeed.join('\n')}
${left.length ? `\nNot run here: ${left.join(', ')} (tfjs-wasm is too slow on this machine to fit them in the time budget; add them with \`--methods ... --reuse\`).\n` : ''}`,
);
console.log(`wrote ${file}`);
