/**
 * What do prompts cost on the device? ViT-Ti/16 and ViT-S/16 at 224 with 50 vpt-deep and 50
 * vpt-shallow prompts, onnxruntime-node CPU, 2 threads, batch 1, uint8 NHWC input, interleaved
 * rounds in one process: bare backbone vs naive export (prompts as extra tokens) vs fused
 * (deep prompts as constant prefix K/V) vs shared-backbone: as shipped (backbone.epk graph, the
 * pack's prefix K/V and head fed as inputs: compiler/export/shared.ts) and, for comparison, the
 * uncut `shared` export (trained prompts as inputs, K/V computed per frame).
 * Target: fused ÷ bare ≤ 1.02 for deep prompts; shared backbone + pack ≈ fused.
 *
 *   npm run bench:fusion [-- --archs vit_tiny_patch16_224,vit_small_patch16_224 --prompts 50 --rounds 12 --runs 8]
 */
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { exportTask, type ExportForm } from '../compiler/export/task.ts';
import { packFeeds, splitShared } from '../compiler/export/shared.ts';
import { linear } from '../compiler/methods/linear.ts';
import { vptDeep, vptShallow } from '../compiler/methods/vpt.ts';
import type { PromptMethod } from '../compiler/methods/method.ts';
import { mulberry32 } from '../devices/rng.ts';
import { randomVit } from '../test/helpers/random-vit.ts';
import { median, ortVersion, writeReport } from './lib.ts';

const { values: f } = parseArgs({
  options: { archs: { type: 'string', default: 'vit_tiny_patch16_224,vit_small_patch16_224' }, prompts: { type: 'string', default: '50' }, rounds: { type: 'string', default: '12' }, runs: { type: 'string', default: '8' } },
});
await initTf();
const P = Number(f.prompts);
const rows: string[] = [];

for (const arch of f.archs!.split(',')) {
  const cfg = vitConfig(arch, { numClasses: 10 });
  const backbone = new Map([...randomVit(cfg)].filter(([k]) => !k.startsWith('head.')));
  const variants: { label: string; method: PromptMethod<Record<string, unknown>>; form: ExportForm; split?: boolean }[] = [
    { label: 'bare backbone (head only)', method: linear as never, form: 'fused' },
    { label: `vpt-deep ${P}: naive (prompt tokens)`, method: vptDeep as never, form: 'naive' },
    { label: `vpt-deep ${P}: fused (prefix K/V)`, method: vptDeep as never, form: 'fused' },
    { label: `vpt-deep ${P}: shared backbone + prompt pack (prefix K/V as inputs, shipped)`, method: vptDeep as never, form: 'shared', split: true },
    { label: `vpt-deep ${P}: uncut shared export (prompts as inputs, K/V per frame)`, method: vptDeep as never, form: 'shared' },
    { label: `vpt-shallow ${P}: naive = fused (tokens are exact)`, method: vptShallow as never, form: 'fused' },
  ];
  const sessions: { label: string; s: ort.InferenceSession; feeds: Record<string, ort.Tensor> }[] = [];
  const image = new ort.Tensor('uint8', Uint8Array.from({ length: 224 * 224 * 3 }, (_, i) => (i * 31) % 251), [1, 224, 224, 3]);
  for (const v of variants) {
    const options = v.method.resolveOptions(v.method.name.startsWith('vpt') ? { prompts: P } : {});
    const params = await v.method.init({ cfg, numClasses: 10, backbone, rng: mulberry32(1) }, options);
    let bytes = exportTask({ cfg, backbone, method: v.method, options, params }, { form: v.form });
    const feeds: Record<string, ort.Tensor> = { image };
    if (v.split) {
      const split = await splitShared(bytes, params);
      bytes = split.backbone;
      Object.assign(feeds, packFeeds(split.tensors));
    }
    const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 });
    for (const n of s.inputNames) if (!(n in feeds)) feeds[n] = new ort.Tensor('float32', params.get(n)!.data, [...params.get(n)!.shape]);
    sessions.push({ label: v.label, s, feeds });
  }
  const times = sessions.map(() => [] as number[]);
  for (const x of sessions) for (let i = 0; i < 3; i++) await x.s.run(x.feeds);
  for (let r = 0; r < Number(f.rounds); r++)
    for (const [k, x] of sessions.entries()) {
      const t0 = performance.now();
      for (let i = 0; i < Number(f.runs); i++) await x.s.run(x.feeds);
      times[k]!.push((performance.now() - t0) / Number(f.runs));
    }
  const bare = median(times[0]!);
  sessions.forEach((x, k) => {
    const ms = median(times[k]!);
    rows.push(`| ${arch} | ${x.label} | ${ms.toFixed(2)} | ${(ms / bare).toFixed(3)} |`);
    console.log(`${arch} ${x.label}: ${ms.toFixed(2)} ms (×${(ms / bare).toFixed(3)})`);
  });
  await Promise.all(sessions.map((x) => x.s.release()));
}

const file = writeReport(
  'fusion',
  'Prompt cost on the device: bare vs naive vs fused vs shared-backbone',
  `npm run bench:fusion -- --archs ${f.archs} --prompts ${P} --rounds ${f.rounds} --runs ${f.runs}`,
  `onnxruntime-node ${ortVersion()} CPU EP, 2 intra-op threads, graph optimization 'all', batch 1, uint8 NHWC 224×224 input (normalisation folded), random weights, 10-class head.
Medians of ${f.rounds} interleaved rounds × ${f.runs} runs. Target: fused ÷ bare ≤ 1.02 for deep prompts; the shared backbone with its prompt pack (what \`compile --form shared\` ships) should cost what fused costs: the same graph with the prefix K/V as inputs instead of initializers.

| model | export | median latency (ms) | ÷ bare |
|---|---|---|---|
${rows.join('\n')}

Shallow prompts are not folded: from block 1 on they carry image information (their block-0 outputs attend to the patches), so they must run as tokens; only their block-0 keys/values are constant, which saves one small projection.`,
);
console.log(`wrote ${file}`);
