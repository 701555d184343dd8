/**
 * Training-step throughput of the trainer's engines next to the PyTorch reference, same model,
 * batch, prompts and threads, in one run: a vpt-deep step (forward, cross-entropy, backward to
 * prompts + head, optimiser update) on the shipped backbone (32 px) and on ViT-Ti/16 at 224,
 * for the `ort` engine (onnxruntime, one intra-op thread per core) and the `tfjs` engine.
 * Also the peak RSS of each engine run (measured in a child process per case and engine, so one
 * case's heap does not inflate the next).
 *
 *   npm run bench:train [-- --cases micro,tiny --engines ort,tfjs --batch 32 --prompts 50 --steps 3 --invocations 3]
 */
import { parseArgs } from 'node:util';
import { availableParallelism, loadavg } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fmtSpread, lastJson, median, python, repo, spread, writeReport } from './lib.ts';

const { values: f } = parseArgs({
  options: {
    cases: { type: 'string', default: 'micro,tiny' },
    engines: { type: 'string', default: 'ort,tfjs' },
    engine: { type: 'string', default: 'tfjs' },
    batch: { type: 'string', default: '32' },
    prompts: { type: 'string', default: '50' },
    steps: { type: 'string', default: '3' },
    child: { type: 'string' },
    invocations: { type: 'string', default: '3' },
  },
});
const ARCH: Record<string, string> = { micro: 'vit_micro_patch4_32', tiny: 'vit_tiny_patch16_224' };
const batch = Number(f.batch);
const prompts = Number(f.prompts);
const steps = Number(f.steps);

interface EngineRun { imagesPerSec: number; stepMs: number[]; peakRssMiB: number; backend: string; micro: number; setupS: number; notes: string[] }

if (f.child) {
  // Child: one engine on one case, JSON on the last line.
  const { initTf, describeBackend } = await import('../compiler/ops/tf-backend.ts');
  const { TfEngine } = await import('../compiler/train/engine-tfjs.ts');
  const { OrtEngine } = await import('../compiler/train/engine-ort.ts');
  const { newOptimizerState, optimizerStep } = await import('../compiler/train/optim.ts');
  const { vptDeep } = await import('../compiler/methods/vpt.ts');
  const { vitConfig } = await import('../compiler/backbones/vit-variants.ts');
  const { mulberry32 } = await import('../devices/rng.ts');
  const { randomVit, randn } = await import('../test/helpers/random-vit.ts');
  const b = await initTf();
  const cfg = vitConfig(ARCH[f.child]!, { numClasses: 10 });
  const backbone = new Map([...randomVit(cfg)].filter(([k]) => !k.startsWith('head.')));
  const opts = vptDeep.resolveOptions({ prompts });
  const params = await vptDeep.init({ cfg, numClasses: 10, backbone, rng: mulberry32(0) }, opts);
  const common = { cfg, backbone, method: vptDeep as never, options: opts as never, params, numClasses: 10, labelSmoothing: 0, seed: 0 };
  const t0 = performance.now();
  const engine = f.engine === 'ort' ? await OrtEngine.create(common) : new TfEngine({ ...common, backend: describeBackend(b) });
  const setupS = (performance.now() - t0) / 1000;
  // A batch-32 ViT-Ti tape overflows the 4 GiB wasm heap: accumulate micro-batches of 8 there.
  const micro = f.engine === 'tfjs' && cfg.imgSize > 64 && b.backend === 'wasm' ? 8 : batch;
  const trainables = [...params].map(([name, t]) => ({ name, shape: [...t.shape], value: Float32Array.from(t.data), decay: name !== 'head.bias' }));
  const recipe = { ...vptDeep.recipe(opts).optimizer, lr: 0.01 };
  const opt = newOptimizerState();
  const xs = Array.from({ length: batch / micro }, (_, i) => randn([micro, 3, cfg.imgSize, cfg.imgSize], 1, i));
  const ys = xs.map((_, i) => Int32Array.from({ length: micro }, (_, j) => (i + j) % 10));
  const times: number[] = [];
  let peak = process.memoryUsage().rss;
  for (let s = 0; s <= steps; s++) {
    const t0 = performance.now();
    let grads: Map<string, Float32Array> | null = null;
    for (const [i, x] of xs.entries()) {
      const r = await engine.step(x, ys[i]!, s);
      if (!grads) grads = r.grads;
      else for (const [k, g] of r.grads) grads.get(k)!.forEach((v, j, a) => (a[j] = v + g[j]!)); // micro-batches: sum
    }
    optimizerStep(recipe, opt, trainables, grads!, recipe.lr);
    engine.setParams(new Map(trainables.map((p) => [p.name, p.value])));
    if (s > 0) times.push(performance.now() - t0); // step 0 is warm-up
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  // maxRSS (KiB) is the kernel's high-water mark, native (ORT) allocations included.
  peak = Math.max(peak, process.resourceUsage().maxRSS * 1024);
  const backend = f.engine === 'ort' ? engine.backend : describeBackend(b);
  const out: EngineRun = { imagesPerSec: batch / (median(times) / 1000), stepMs: times, peakRssMiB: peak / 2 ** 20, backend, micro, setupS, notes: engine instanceof OrtEngine ? engine.notes : [] };
  console.log(JSON.stringify(out));
  process.exit(0);
}

/** One row's figures in one invocation. */
interface Row { model: string; engine: string; ips: number; ratio1: number; ratio2: number; rss: number; note: string }
const self = fileURLToPath(import.meta.url);
const engines = f.engines!.split(',');
const invocations = Number(f.invocations);
const loadBefore = loadavg()[0]!;
const byInvocation: Row[][] = [];
// Each invocation measures every engine in a fresh child process and PyTorch with 1 and 2
// threads, case by case; the ratios are taken within an invocation.
for (let inv = 0; inv < invocations; inv++) {
  const rows: Row[] = [];
  byInvocation.push(rows);
  for (const c of f.cases!.split(',')) {
    const arch = ARCH[c]!;
    const runs = engines.map((engine) => ({
      engine,
      run: lastJson<EngineRun>(execFileSync(process.execPath, ['--import', 'tsx', self, '--child', c, '--engine', engine, '--batch', String(batch), '--prompts', String(prompts), '--steps', String(steps)], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 << 20 })),
    }));
    const torch = [1, 2].map((threads) =>
      lastJson<{ images_per_s: number; torch: string }>(python('train_step_bench.py', ['--arch', arch, '--deep', '--batch', String(batch), '--threads', String(threads), '--prompts', String(prompts), '--classes', '10', '--steps', String(steps), '--warmup', '1'])),
    );
    console.log(`invocation ${inv + 1}/${invocations}, ${arch}: ${runs.map(({ engine, run }) => `${engine} ${run.imagesPerSec.toFixed(2)} img/s (peak RSS ${run.peakRssMiB.toFixed(0)} MiB)`).join(', ')}, PyTorch ${torch.map((t) => t.images_per_s).join(' / ')} img/s (1 / 2 threads)`);
    for (const { engine, run } of runs) {
      const label = engine === 'ort' ? `ort (${run.backend})` : `tfjs (${run.backend.split(' via')[0]!.replace('tfjs backend: ', '')}, 1 thread)`;
      const note = engine === 'ort' ? `graph + sessions ${run.setupS.toFixed(1)} s` : run.micro < batch ? `${batch / run.micro} micro-batches of ${run.micro}` : '';
      rows.push({ model: arch, engine: label, ips: run.imagesPerSec, ratio1: run.imagesPerSec / torch[0]!.images_per_s, ratio2: run.imagesPerSec / torch[1]!.images_per_s, rss: run.peakRssMiB, note });
    }
    torch.forEach((t, i) => rows.push({ model: arch, engine: `PyTorch ${t.torch}, ${i + 1} thread(s)`, ips: t.images_per_s, ratio1: t.images_per_s / torch[0]!.images_per_s, ratio2: t.images_per_s / torch[1]!.images_per_s, rss: NaN, note: '' }));
  }
}
const table = byInvocation[0]!.map((first, k) => {
  const all = byInvocation.map((rows) => rows[k]!);
  const col = (pick: (r: Row) => number, digits: number) => fmtSpread(spread(all.map(pick)), digits);
  const rss = Number.isNaN(first.rss) ? '' : `${Math.max(...all.map((r) => r.rss)).toFixed(0)} MiB`;
  return `| ${first.model} | ${first.engine} | ${col((r) => r.ips, 2)} | ${col((r) => r.ratio1, 3)} | ${col((r) => r.ratio2, 3)} | ${rss} | ${first.note} |`;
});

const file = writeReport(
  'train-throughput',
  'vpt-deep training step: EdgePrompt engines vs PyTorch (CPU)',
  `npm run bench:train -- --cases ${f.cases} --engines ${f.engines} --batch ${batch} --prompts ${prompts} --steps ${steps} --invocations ${invocations}`,
  `One step = forward with ${prompts} deep prompts per block, cross-entropy on a 10-class head, backward to prompts + head (frozen backbone), batch ${batch}. Median of ${steps} steps after one warm-up, in fresh processes; images/s and ratios are **min / median / max over ${invocations} invocations** (each ratio taken within its invocation), peak RSS the largest. Random weights (speed does not depend on them).
The ort engine is compiler/train/engine-ort.ts (one training graph: forward, loss and backward nodes from compiler/train/autodiff/, run by onnxruntime on its CPU provider with one intra-op thread per core); the tfjs engine is compiler/train/engine-tfjs.ts; both step through the trainer's host-side SGD. PyTorch is tools/reference/train_step_bench.py --deep. Peak RSS is the engine process's high-water mark (getrusage maxRSS, native allocations included). Our engines run the last block for the CLS row only (the head reads nothing else); the PyTorch script runs it for every token.

| model | engine | images/s (min / median / max) | ÷ PyTorch 1 thread | ÷ PyTorch 2 threads | peak RSS | note |
|---|---|---|---|---|---|---|
${table.join('\n')}

Load average (1 min) when the run started: ${loadBefore.toFixed(2)}, when it ended: ${loadavg()[0]!.toFixed(2)}, on ${availableParallelism()} cores. On a shared machine other processes take cores away; multithreaded runs (ort, PyTorch 2 threads) suffer most, because every parallel op waits for its slowest thread.

Product target: ≥ 1.0 against PyTorch with the same threads (the ort row's ÷ PyTorch 2 threads column on this 2-core machine). tfjs-wasm runs one thread in Node; its batched attention matMuls miss XNNPACK's fast path (docs/platform.md, TensorFlow.js in Node).`,
);
console.log(`wrote ${file}`);
