/**
 * Is our ONNX export as fast as PyTorch's? The same random-weight ViT (timm names, written by
 * tools/reference/export_onnx.py) is exported by `torch.onnx.export` and by EdgePrompt's
 * OnnxOps; both run in onnxruntime-node, CPU, 2 intra-op threads, batch 1, interleaved
 * rounds in one process, repeated in fresh processes (min / median / max over invocations).
 * Target: ours ÷ torch ≤ 1.05.
 *
 *   npm run bench:export [-- --archs vit_tiny_patch16_224,vit_small_patch16_224 --rounds 15 --runs 10 --invocations 3]
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
import { acrossInvocations, fmtSpread, isInvocationChild, lastJson, ortVersion, python, repo, spread, timeInterleaved, writeReport } from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    archs: { type: 'string', default: 'vit_tiny_patch16_224,vit_small_patch16_224' },
    rounds: { type: 'string', default: '15' },
    runs: { type: 'string', default: '10' },
    invocations: { type: 'string', default: '3' },
  },
});
const archs = flags.archs!.split(',');
const rounds = Number(flags.rounds);
const runs = Number(flags.runs);
const dir = join(repo, '.cache/bench');
const EXPORTERS = ['torch.onnx.export', 'edgeprompt (all tokens in the last block)', 'edgeprompt (default: CLS-only last block)'];

// The PyTorch side exports once (parent); every invocation loads the same files.
let torchVersion = '';
if (!isInvocationChild()) {
  mkdirSync(dir, { recursive: true });
  for (const arch of archs) torchVersion = lastJson<{ torch: string }>(python('export_onnx.py', ['--arch', arch, '--out', dir])).torch;
}

/** Per arch: median ms and max |Δlogit| vs torch, per exporter, in one process. */
type Timing = Record<string, { ms: number[]; diff: number[] }>;

async function measure(): Promise<Timing> {
  await initTf();
  const out: Timing = {};
  for (const arch of archs) {
    const cfg = vitConfig(arch);
    const { stateDict } = loadVitWeights(join(dir, `${arch}.safetensors`), cfg);
    const models = [readFileSync(join(dir, `${arch}.torch.onnx`)), exportVitBackbone(cfg, stateDict, { clsOnlyLastBlock: false }), exportVitBackbone(cfg, stateDict)];
    const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', logSeverityLevel: 3 };
    const sessions = await Promise.all(models.map((m) => ort.InferenceSession.create(m, opts)));
    const x = new ort.Tensor('float32', Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37)), [1, 3, 224, 224]);
    const outs = await Promise.all(sessions.map((s) => s.run({ input: x })));
    const ref = outs[0]!.logits!.data as Float32Array;
    const ms = await timeInterleaved(sessions.map((s) => () => s.run({ input: x })), rounds, runs);
    out[arch] = { ms, diff: outs.map((o) => maxAbsDiff(o.logits!.data as Float32Array, ref)) };
    console.log(`${arch}: ${EXPORTERS.map((e, k) => `${e} ${ms[k]!.toFixed(2)} ms`).join('; ')}`);
    await Promise.all(sessions.map((s) => s.release()));
  }
  return out;
}

const results = await acrossInvocations(Number(flags.invocations), measure);
const table = [
  '| model | exporter | latency ms (min / median / max) | ÷ torch.onnx.export (min / median / max) | max \\|Δlogit\\| vs torch |',
  '|---|---|---|---|---|',
  ...archs.flatMap((arch) =>
    EXPORTERS.map((e, k) => {
      const ms = results.map((r) => r[arch]!.ms[k]!);
      const ratio = results.map((r) => r[arch]!.ms[k]! / r[arch]!.ms[0]!);
      return `| ${arch} | ${e} | ${fmtSpread(spread(ms), 2)} | ${fmtSpread(spread(ratio))} | ${Math.max(...results.map((r) => r[arch]!.diff[k]!)).toExponential(1)} |`;
    }),
  ),
].join('\n');

const file = writeReport(
  'export-latency',
  'ONNX export latency: EdgePrompt vs torch.onnx.export',
  `npm run bench:export -- --archs ${flags.archs} --rounds ${rounds} --runs ${runs} --invocations ${flags.invocations}`,
  `onnxruntime-node ${ortVersion()} CPU EP, 2 intra-op threads, sequential, graph optimization 'all', batch 1, 224×224, random timm-like weights (1000-class head); PyTorch ${torchVersion}, opset 17.
Each invocation is a fresh process timing the three models in ${rounds} interleaved rounds × ${runs} runs (median); figures are **min / median / max over ${flags.invocations} invocations**, each ratio taken within its invocation. Target: EdgePrompt ÷ torch ≤ 1.05.

${table}

The "all tokens" row computes exactly what the PyTorch graph computes; the default export also trims the last block to the CLS row, which the head alone reads.`,
);
console.log(`wrote ${file}`);
