/**
 * Is our ONNX export as fast as PyTorch's? The same random-weight ViT (timm names, written by
 * tools/reference/export_onnx.py) is exported by `torch.onnx.export` and by EdgePrompt's
 * OnnxOps; both run in onnxruntime-node, CPU, 2 intra-op threads, batch 1, interleaved
 * rounds in one process. Target: ours ÷ torch ≤ 1.05.
 *
 *   npm run bench:export [-- --archs vit_tiny_patch16_224,vit_small_patch16_224 --rounds 15 --runs 10]
 */
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { loadVitWeights } from '../compiler/backbones/vit-weights.ts';
import { exportVitBackbone } from '../compiler/export/backbone.ts';
import { maxAbsDiff } from '../compiler/ops/host-tensor.ts';
import { lastJson, median, ortVersion, python, repo, writeReport } from './lib.ts';

const { values: flags } = parseArgs({
  options: { archs: { type: 'string', default: 'vit_tiny_patch16_224,vit_small_patch16_224' }, rounds: { type: 'string', default: '15' }, runs: { type: 'string', default: '10' } },
});
const archs = flags.archs!.split(',');
const rounds = Number(flags.rounds);
const runs = Number(flags.runs);
const dir = join(repo, '.cache/bench');
mkdirSync(dir, { recursive: true });
await initTf();

interface Row { arch: string; variant: string; ms: number; ratio: number; diff: number }
const rows: Row[] = [];
let torchVersion = '';

for (const arch of archs) {
  const info = lastJson<{ torch: string }>(python('export_onnx.py', ['--arch', arch, '--out', dir]));
  torchVersion = info.torch;
  const cfg = vitConfig(arch);
  const { stateDict } = loadVitWeights(join(dir, `${arch}.safetensors`), cfg);
  const models: Record<string, Uint8Array> = {
    'torch.onnx.export': readFileSync(join(dir, `${arch}.torch.onnx`)),
    'edgeprompt (all tokens in the last block)': exportVitBackbone(cfg, stateDict, { clsOnlyLastBlock: false }),
    'edgeprompt (default: CLS-only last block)': exportVitBackbone(cfg, stateDict),
  };
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', logSeverityLevel: 3 };
  const sessions = await Promise.all(Object.values(models).map((m) => ort.InferenceSession.create(m, opts)));
  const x = new ort.Tensor('float32', Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37)), [1, 3, 224, 224]);
  const outs = await Promise.all(sessions.map((s) => s.run({ input: x })));
  const ref = outs[0]!.logits!.data as Float32Array;
  const times: number[][] = sessions.map(() => []);
  for (let i = 0; i < 3; i++) for (const s of sessions) await s.run({ input: x }); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const [k, s] of sessions.entries()) {
      const t0 = performance.now();
      for (let i = 0; i < runs; i++) await s.run({ input: x });
      times[k]!.push((performance.now() - t0) / runs);
    }
  }
  const base = median(times[0]!);
  Object.keys(models).forEach((variant, k) => {
    const ms = median(times[k]!);
    rows.push({ arch, variant, ms, ratio: ms / base, diff: maxAbsDiff(outs[k]!.logits!.data as Float32Array, ref) });
    console.log(`${arch} ${variant}: ${ms.toFixed(2)} ms (×${(ms / base).toFixed(3)})`);
  });
  await Promise.all(sessions.map((s) => s.release()));
}

const table = [
  '| model | exporter | median latency (ms) | ÷ torch.onnx.export | max \\|Δlogit\\| vs torch |',
  '|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.arch} | ${r.variant} | ${r.ms.toFixed(2)} | ${r.ratio.toFixed(3)} | ${r.diff.toExponential(1)} |`),
].join('\n');
const file = writeReport(
  'export-latency',
  'ONNX export latency: EdgePrompt vs torch.onnx.export',
  'npm run bench:export',
  `onnxruntime-node ${ortVersion()} CPU EP, 2 intra-op threads, sequential, graph optimization 'all', batch 1, 224×224, random timm-like weights (1000-class head); PyTorch ${torchVersion}, opset 17.
Medians of ${rounds} interleaved rounds × ${runs} runs. Target: EdgePrompt ÷ torch ≤ 1.05.

${table}

The "all tokens" row computes exactly what the PyTorch graph computes; the default export also trims the last block to the CLS row, which the head alone reads.`,
);
console.log(`wrote ${file}`);
