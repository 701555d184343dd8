/**
 * What SA2VP's unfoldable dual pathway costs at inference: the fused artifacts (uint8 NHWC in,
 * as shipped) of the bare backbone (linear head), fused VPT-deep (constant prefix K/V) and
 * SA2VP (weight-only parts folded, the rest runs) on the shipped backbone, in onnxruntime-node,
 * CPU, 2 intra-op threads, batch 1 and 16, interleaved rounds in one process; median ms and
 * ratio to the bare backbone. Latency does not depend on the tensors' values, so freshly
 * initialised ones are used.
 *
 *   npm run bench:sa2vp [-- --rounds 15 --runs 20 --interDim 8 --invocations 3]
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { loadVitWeights } from '../compiler/backbones/vit-weights.ts';
import { METHODS } from '../compiler/methods/registry.ts';
import { exportTask } from '../compiler/export/task.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { mulberry32 } from '../devices/rng.ts';
import { acrossInvocations, fmtSpread, ortVersion, repo, spread, timeInterleaved, writeReport } from './lib.ts';

const { values: f } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, runs: { type: 'string', default: '20' }, interDim: { type: 'string', default: '8' }, invocations: { type: 'string', default: '3' } } });
const rounds = Number(f.rounds);
const runs = Number(f.runs);
await initTf();

const C = 5;
const cfg = vitConfig('vit_micro_patch4_32', { numClasses: C });
const { stateDict } = loadVitWeights(join(repo, 'compiler/backbones/weights/vit_micro_patch4_32.fmnist04.safetensors'), cfg);
const backbone = new Map([...stateDict].filter(([k]) => !k.startsWith('head.')));

async function artifact(name: string, raw: Record<string, unknown>): Promise<Uint8Array> {
  const method = METHODS[name]!;
  const options = method.resolveOptions(raw as never) as Record<string, unknown>;
  const params = await method.init({ cfg, numClasses: C, backbone, rng: mulberry32(1) }, options as never);
  return exportTask({ cfg, backbone, method: method as never, options, params });
}

const models: Record<string, Uint8Array> = {
  'bare backbone (linear head)': await artifact('linear', {}),
  'vpt-deep, 8 prompts (fused prefix K/V)': await artifact('vpt-deep', { prompts: 8 }),
  [`sa2vp, r ${f.interDim}, b2p {0,2,4} (unfused dual pathway)`]: await artifact('sa2vp', { interDim: Number(f.interDim) }),
};
const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', logSeverityLevel: 3 };
const BATCHES = [1, 16];

/** Median ms per [batch][artifact] in one process. */
async function measure(): Promise<number[][]> {
  const sessions = await Promise.all(Object.values(models).map((m) => ort.InferenceSession.create(m, opts)));
  const out: number[][] = [];
  for (const batch of BATCHES) {
    const image = new ort.Tensor('uint8', Uint8Array.from({ length: batch * 32 * 32 * 3 }, (_, i) => (i * 37) % 256), [batch, 32, 32, 3]);
    const ms = await timeInterleaved(sessions.map((s) => () => s.run({ image })), rounds, runs);
    console.log(`batch ${batch}: ${Object.keys(models).map((v, k) => `${v} ${ms[k]!.toFixed(3)} ms`).join('; ')}`);
    out.push(ms);
  }
  for (const s of sessions) await s.release();
  return out;
}

const results = await acrossInvocations(Number(f.invocations), measure);
const rows: string[] = [];
BATCHES.forEach((batch, b) =>
  Object.entries(models).forEach(([variant, bytes], k) => {
    const sum = summarizeModel(bytes);
    const nodes = Object.values(sum.opCounts).reduce((x, y) => x + y, 0);
    const ms = spread(results.map((r) => r[b]![k]!));
    const ratio = spread(results.map((r) => r[b]![k]! / r[b]![0]!));
    rows.push(`| ${batch} | ${variant} | ${fmtSpread(ms)} | ${fmtSpread(ratio, 2)} | ${nodes} | ${(bytes.length / 1024).toFixed(0)} |`);
  }),
);
const file = writeReport(
  'sa2vp-latency',
  'SA2VP artifact latency against the bare backbone and fused VPT-deep (ORT CPU)',
  `npm run bench:sa2vp -- --rounds ${rounds} --runs ${runs} --interDim ${f.interDim} --invocations ${f.invocations}`,
  `Shipped backbone vit_micro_patch4_32 (8×8 tokens + CLS, D 96, depth 6, 3 heads), fused artifacts with uint8 NHWC input, onnxruntime-node ${ortVersion()} CPU EP, 2 intra-op threads, graph optimisation 'all'; median over ${rounds} interleaved rounds of ${runs} runs in each invocation (a fresh process); **min / median / max over ${f.invocations} invocations**, each ratio taken within its invocation; 1-minute load average at the end ${loadavg()[0]!.toFixed(1)} (a shared machine inflates absolute ms; the interleaved ratios hold better).

| batch | artifact | ms (min / median / max) | ÷ bare (min / median / max) | ONNX nodes | size KiB |
|---|---|---|---|---|---|
${rows.join('\n')}

SA2VP cannot fold into prefix K/V (docs/spec/folding.md, docs/spec/sa2vp.md#export): its prompt map depends on the image from layer 0 on, so every layer runs the frozen block twice (base and prompt map) plus a cross-block (LN, 4 projections, masked attention over all ${65} tokens, Mlp_small). Only P₀ = ppt_proj(ppt) + pos, Block₀(P₀), its layer-0 queries and the deep-prompt terms fold; the last layer computes the base CLS row only.`,
);
console.log(`wrote ${file}`);
