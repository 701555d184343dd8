/**
 * Training-step throughput of the trainer's engines next to the PyTorch reference, same model,
 * batch, prompts and threads, in one run: a vpt-deep step (forward, cross-entropy, backward to
 * prompts + head, optimiser update) on the shipped backbone (32 px) and on ViT-Ti/16 at 224.
 * Also the peak RSS of each engine run (measured in a child process per case, so one case's
 * heap does not inflate the next).
 *
 *   npm run bench:train [-- --cases micro,tiny --batch 32 --prompts 50 --steps 3]
 */
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lastJson, median, python, repo, writeReport } from './lib.ts';

const { values: f } = parseArgs({
  options: {
    cases: { type: 'string', default: 'micro,tiny' },
    batch: { type: 'string', default: '32' },
    prompts: { type: 'string', default: '50' },
    steps: { type: 'string', default: '3' },
    child: { type: 'string' },
  },
});
const ARCH: Record<string, string> = { micro: 'vit_micro_patch4_32', tiny: 'vit_tiny_patch16_224' };
const batch = Number(f.batch);
const prompts = Number(f.prompts);
const steps = Number(f.steps);

interface EngineRun { imagesPerSec: number; stepMs: number[]; peakRssMiB: number; backend: string; micro: number }

if (f.child) {
  // Child: one engine case, JSON on the last line.
  const { initTf, describeBackend } = await import('../compiler/ops/tf-backend.ts');
  const { TfEngine } = await import('../compiler/train/engine-tfjs.ts');
  const { vptDeep } = await import('../compiler/methods/vpt.ts');
  const { vitConfig } = await import('../compiler/backbones/vit-variants.ts');
  const { mulberry32 } = await import('../compiler/data/rng.ts');
  const { randomVit, randn } = await import('../test/helpers/random-vit.ts');
  const b = await initTf();
  const cfg = vitConfig(ARCH[f.child]!, { numClasses: 10 });
  const backbone = new Map([...randomVit(cfg)].filter(([k]) => !k.startsWith('head.')));
  const opts = vptDeep.resolveOptions({ prompts });
  const params = vptDeep.init({ cfg, numClasses: 10, backbone, rng: mulberry32(0) }, opts);
  const engine = new TfEngine({ cfg, backbone, method: vptDeep as never, options: opts as never, params, numClasses: 10, labelSmoothing: 0, seed: 0, backend: describeBackend(b) });
  // A batch-32 ViT-Ti tape overflows the 4 GiB wasm heap: accumulate micro-batches of 8 there.
  const micro = cfg.imgSize > 64 && b.backend === 'wasm' ? 8 : batch;
  const xs = Array.from({ length: batch / micro }, (_, i) => randn([micro, 3, cfg.imgSize, cfg.imgSize], 1, i));
  const ys = xs.map((_, i) => Int32Array.from({ length: micro }, (_, j) => (i + j) % 10));
  const times: number[] = [];
  let peak = process.memoryUsage().rss;
  for (let s = 0; s <= steps; s++) {
    const t0 = performance.now();
    xs.forEach((x, i) => engine.step(x, ys[i]!, s)); // gradients summed by the loop in real training; the cost is the same
    if (s > 0) times.push(performance.now() - t0); // step 0 is warm-up
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const out: EngineRun = { imagesPerSec: batch / (median(times) / 1000), stepMs: times, peakRssMiB: peak / 2 ** 20, backend: describeBackend(b), micro };
  console.log(JSON.stringify(out));
  process.exit(0);
}

interface Row { model: string; engine: string; ips: number; ratio1: number; ratio2: number; rss: string; note: string }
const rows: Row[] = [];
const self = fileURLToPath(import.meta.url);
for (const c of f.cases!.split(',')) {
  const arch = ARCH[c]!;
  const tf = lastJson<EngineRun>(execFileSync(process.execPath, ['--import', 'tsx', self, '--child', c, '--batch', String(batch), '--prompts', String(prompts), '--steps', String(steps)], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 << 20 }));
  const torch = [1, 2].map((threads) =>
    lastJson<{ images_per_s: number; torch: string }>(python('train_step_bench.py', ['--arch', arch, '--deep', '--batch', String(batch), '--threads', String(threads), '--prompts', String(prompts), '--classes', '10', '--steps', String(steps), '--warmup', '1'])),
  );
  console.log(`${arch}: tfjs ${tf.imagesPerSec.toFixed(2)} img/s (peak RSS ${tf.peakRssMiB.toFixed(0)} MiB), PyTorch ${torch.map((t) => t.images_per_s).join(' / ')} img/s (1 / 2 threads)`);
  rows.push({ model: arch, engine: `tfjs (${tf.backend.split(' via')[0]!.replace('tfjs backend: ', '')}, 1 thread)`, ips: tf.imagesPerSec, ratio1: tf.imagesPerSec / torch[0]!.images_per_s, ratio2: tf.imagesPerSec / torch[1]!.images_per_s, rss: `${tf.peakRssMiB.toFixed(0)} MiB`, note: tf.micro < batch ? `${batch / tf.micro} micro-batches of ${tf.micro}` : '' });
  torch.forEach((t, i) => rows.push({ model: arch, engine: `PyTorch ${t.torch}, ${i + 1} thread(s)`, ips: t.images_per_s, ratio1: t.images_per_s / torch[0]!.images_per_s, ratio2: t.images_per_s / torch[1]!.images_per_s, rss: '', note: '' }));
}

const file = writeReport(
  'train-throughput',
  'vpt-deep training step: EdgePrompt engines vs PyTorch (CPU)',
  `npm run bench:train -- --cases ${f.cases} --batch ${batch} --prompts ${prompts} --steps ${steps}`,
  `One step = forward with ${prompts} deep prompts per block, cross-entropy on a 10-class head, backward to prompts + head (frozen backbone), batch ${batch}. Median of ${steps} steps after one warm-up. Random weights (speed does not depend on them).
The tfjs engine is the trainer's (compiler/train/engine-tfjs.ts); PyTorch is tools/reference/train_step_bench.py --deep. Peak RSS is the engine process's.

| model | engine | images/s | ÷ PyTorch 1 thread | ÷ PyTorch 2 threads | peak RSS | note |
|---|---|---|---|---|---|---|
${rows.map((r) => `| ${r.model} | ${r.engine} | ${r.ips.toFixed(2)} | ${r.ratio1.toFixed(3)} | ${r.ratio2.toFixed(3)} | ${r.rss} | ${r.note} |`).join('\n')}

Product target: ≥ 1.0 against PyTorch with the same threads. tfjs-wasm runs one thread in Node; its batched attention matMuls run at ~1 GFLOP/s (STACK.md §3). The \`ort\` engine (issue 8) is the planned way past this: training graphs emitted by OnnxOps and run by onnxruntime's multithreaded kernels.`,
);
console.log(`wrote ${file}`);
