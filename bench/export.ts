/**
 * What do prompts cost on the device? ViT-Ti/16 and ViT-S/16 at 224 with 50 vpt-deep and 50
 * vpt-shallow prompts, onnxruntime-node CPU, 2 threads, batch 1, interleaved rounds in one
 * process: bare backbone vs naive export (prompts as extra tokens) vs fused (deep prompts as
 * constant prefix K/V) vs shared-backbone: as shipped (backbone.epk graph, the pack's prefix K/V
 * and head fed as inputs: compiler/export/backbone-pack.ts) and, for comparison, the uncut `shared`
 * export (trained prompts as inputs, K/V computed per frame). The row users compare against is
 * the bare timm backbone exported by `torch.onnx.export` (tools/reference/export_onnx.py, as in
 * bench:export; float NCHW input, normalisation outside the graph).
 * Each invocation is a fresh process; ratios are reported as min / median / max over them.
 * Target: fused ÷ bare ≤ 1.02 for deep prompts; shared backbone + pack ≈ fused.
 *
 *   npm run bench:fusion [-- --archs vit_tiny_patch16_224,vit_small_patch16_224 --prompts 50 --rounds 12 --runs 8 --invocations 3]
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { exportTask, type ExportForm } from '../compiler/export/task.ts';
import { packFeeds, splitBackbonePack } from '../compiler/export/backbone-pack.ts';
import { linear } from '../compiler/methods/linear.ts';
import { vptDeep, vptShallow } from '../compiler/methods/vpt.ts';
import type { PromptMethod } from '../compiler/methods/method.ts';
import { mulberry32 } from '../devices/rng.ts';
import { randomVit } from '../test/helpers/random-vit.ts';
import { acrossInvocations, fmtSpread, isInvocationChild, lastJson, ortVersion, python, repo, spread, timeInterleaved, writeReport } from './lib.ts';

const { values: f } = parseArgs({
  options: {
    archs: { type: 'string', default: 'vit_tiny_patch16_224,vit_small_patch16_224' },
    prompts: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '12' },
    runs: { type: 'string', default: '8' },
    invocations: { type: 'string', default: '3' },
  },
});
const P = Number(f.prompts);
const archs = f.archs!.split(',');
const TORCH = 'bare backbone, torch.onnx.export (float NCHW input)';
const BARE = 'bare backbone (head only)';
const torchDir = join(repo, '.cache/bench');

// The PyTorch export is made once, by the parent; every invocation times the same file.
let torchVersion = '';
if (!isInvocationChild()) {
  mkdirSync(torchDir, { recursive: true });
  try {
    for (const arch of archs) torchVersion = lastJson<{ torch: string }>(python('export_onnx.py', ['--arch', arch, '--out', torchDir])).torch;
  } catch (e) {
    console.warn(`no torch.onnx.export row: ${(e as Error).message}`);
  }
}

/** Median ms per variant label, per arch, in one process. */
type Timing = Record<string, Record<string, number>>;

async function measure(): Promise<Timing> {
  await initTf();
  const out: Timing = {};
  for (const arch of archs) {
    const cfg = vitConfig(arch, { numClasses: 10 });
    const backbone = new Map([...randomVit(cfg)].filter(([k]) => !k.startsWith('head.')));
    const variants: { label: string; method: PromptMethod<Record<string, unknown>>; form: ExportForm; split?: boolean }[] = [
      { label: BARE, method: linear as never, form: 'fused' },
      { label: `vpt-deep ${P}: naive (prompt tokens)`, method: vptDeep as never, form: 'naive' },
      { label: `vpt-deep ${P}: fused (prefix K/V)`, method: vptDeep as never, form: 'fused' },
      { label: `vpt-deep ${P}: shared backbone + prompt pack (prefix K/V as inputs, shipped)`, method: vptDeep as never, form: 'shared', split: true },
      { label: `vpt-deep ${P}: uncut shared export (prompts as inputs, K/V per frame)`, method: vptDeep as never, form: 'shared' },
      { label: `vpt-shallow ${P}: naive = fused (tokens are exact)`, method: vptShallow as never, form: 'fused' },
    ];
    const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
    const image = new ort.Tensor('uint8', Uint8Array.from({ length: 224 * 224 * 3 }, (_, i) => (i * 31) % 251), [1, 224, 224, 3]);
    const sessions: { label: string; s: ort.InferenceSession; feeds: Record<string, ort.Tensor> }[] = [];
    for (const v of variants) {
      const options = v.method.resolveOptions(v.method.name.startsWith('vpt') ? { prompts: P } : {});
      const params = await v.method.init({ cfg, numClasses: 10, backbone, rng: mulberry32(1) }, options);
      let bytes = exportTask({ cfg, backbone, method: v.method, options, params }, { form: v.form });
      const feeds: Record<string, ort.Tensor> = { image };
      if (v.split) {
        const split = await splitBackbonePack(bytes, params);
        bytes = split.backbone;
        Object.assign(feeds, packFeeds(split.tensors));
      }
      const s = await ort.InferenceSession.create(bytes, opts);
      for (const n of s.inputNames) if (!(n in feeds)) feeds[n] = new ort.Tensor('float32', params.get(n)!.data, [...params.get(n)!.shape]);
      sessions.push({ label: v.label, s, feeds });
    }
    const torchFile = join(torchDir, `${arch}.torch.onnx`);
    if (existsSync(torchFile)) {
      const x = new ort.Tensor('float32', Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37)), [1, 3, 224, 224]);
      sessions.push({ label: TORCH, s: await ort.InferenceSession.create(readFileSync(torchFile), opts), feeds: { input: x } });
    }
    const ms = await timeInterleaved(sessions.map((x) => () => x.s.run(x.feeds)), Number(f.rounds), Number(f.runs));
    out[arch] = Object.fromEntries(sessions.map((x, k) => [x.label, ms[k]!]));
    console.log(`${arch}: ${sessions.map((x, k) => `${x.label} ${ms[k]!.toFixed(2)} ms`).join('; ')}`);
    await Promise.all(sessions.map((x) => x.s.release()));
  }
  return out;
}

const runs = await acrossInvocations(Number(f.invocations), measure);
const rows: string[] = [];
for (const arch of archs) {
  const labels = Object.keys(runs[0]![arch]!);
  for (const label of labels) {
    const ms = runs.map((r) => r[arch]![label]!);
    const perBare = fmtSpread(spread(runs.map((r) => r[arch]![label]! / r[arch]![BARE]!)));
    const perTorch = labels.includes(TORCH) ? fmtSpread(spread(runs.map((r) => r[arch]![label]! / r[arch]![TORCH]!))) : '—';
    rows.push(`| ${arch} | ${label} | ${fmtSpread(spread(ms), 2)} | ${perBare} | ${perTorch} |`);
  }
}

/** What the torch row says, from the figures (median over invocations of ours ÷ torch, bare). */
function torchVsOurs(): string {
  const r = archs.filter((a) => runs[0]![a]![TORCH] !== undefined).map((a) => `${a} ${spread(runs.map((x) => x[a]![BARE]! / x[a]![TORCH]!)).median.toFixed(3)}`);
  return r.length ? `its latency ÷ the torch.onnx.export backbone's is, median over invocations: ${r.join(', ')} (below 1: a fused task starts from a faster backbone than the plain PyTorch export).` : 'no torch.onnx.export row in this run (PyTorch missing).';
}

const file = writeReport(
  'fusion',
  'Prompt cost on the device: bare vs naive vs fused vs shared-backbone',
  `npm run bench:fusion -- --archs ${f.archs} --prompts ${P} --rounds ${f.rounds} --runs ${f.runs} --invocations ${f.invocations}`,
  `onnxruntime-node ${ortVersion()} CPU EP, 2 intra-op threads, graph optimization 'all', batch 1, uint8 NHWC 224×224 input (normalisation folded), random weights, 10-class head; the torch.onnx.export row is the same arch with random weights exported by PyTorch ${torchVersion} (opset 17, 1000-class head, float NCHW input).
Each invocation is a fresh process timing every model in ${f.rounds} interleaved rounds × ${f.runs} runs (median); every figure below is **min / median / max over ${f.invocations} invocations**, each ratio taken within its invocation. Target: fused ÷ bare ≤ 1.02 for deep prompts; the shared backbone with its prompt pack (what \`compile --form shared\` ships) should cost what fused costs: the same graph with the prefix K/V as inputs instead of initializers.

| model | export | latency ms (min / median / max) | ÷ bare (ours) | ÷ torch.onnx.export bare |
|---|---|---|---|---|
${rows.join('\n')}

Shallow prompts are not folded: from block 1 on they carry image information (their block-0 outputs attend to the patches), so they must run as tokens; only their block-0 keys/values are constant, which saves one small projection. Our bare backbone computes only the CLS row in the last block and reads uint8 NHWC (normalisation folded into the patch projection); ${torchVsOurs()}`,
);
console.log(`wrote ${file}`);
