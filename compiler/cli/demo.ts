/**
 * `npm run demo` until the line-camera demo lands (issue 6): the compile-and-verify path of
 * the foundation on the committed fixture backbone — load timm-named weights, export them
 * through the one model definition, run the export in onnxruntime next to tfjs, and check both
 * against the independent PyTorch reference's logits.
 */
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { vitConfig } from '../backbones/vit-variants.ts';
import { loadVitWeights } from '../backbones/vit-weights.ts';
import { parseSafetensors } from '../backbones/safetensors.ts';
import { exportVitBackbone } from '../export/backbone.ts';
import { verifyBackboneExport } from '../export/verify-backbone.ts';
import { initTf, describeBackend } from '../ops/tf-backend.ts';
import { maxAbsDiff, numel } from '../ops/host-tensor.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

export async function demoCommand(): Promise<void> {
  const step = (s: string) => console.log(`\n▶ ${s}`);
  console.log('EdgePrompt demo (foundation stage): export a ViT through the shared model definition and verify it three ways.');
  console.log(describeBackend(await initTf()));
  const weights = join(root, 'test/fixtures/vit_fixture.safetensors');
  const cfg = vitConfig('vit_fixture_patch8_32');
  step(`load ${weights} (random-weight ViT, ${cfg.depth} blocks, width ${cfg.embedDim}; the pretrained tiny backbone ships with issue 4)`);
  const { stateDict } = loadVitWeights(weights, cfg);
  let params = 0;
  for (const t of stateDict.values()) params += numel(t.shape);
  console.log(`  ${stateDict.size} tensors, ${params.toLocaleString('en-US')} parameters, timm names`);

  step('export to ONNX (weights folded, last block trimmed to the CLS row)');
  const bytes = exportVitBackbone(cfg, stateDict);
  const outDir = join(root, 'out');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'demo-backbone.onnx'), bytes);
  console.log(`  wrote out/demo-backbone.onnx (${(bytes.byteLength / 1e6).toFixed(2)} MB)`);

  step('run the PyTorch reference inputs through onnxruntime and tfjs');
  const io = parseSafetensors(readFileSync(join(root, 'test/fixtures/vit_fixture_io.safetensors'))).tensors;
  const input = io.get('input')!;
  const ref = io.get('logits')!;
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  const t0 = performance.now();
  const out = await session.run({ input: new ort.Tensor('float32', input.data, [...input.shape]) });
  const ms = performance.now() - t0;
  const ortLogits = out.logits!.data as Float32Array;
  const v = await verifyBackboneExport(cfg, stateDict, bytes, input.shape[0], input.data);
  console.log(`  onnxruntime vs PyTorch reference: max |Δlogit| = ${maxAbsDiff(ortLogits, ref.data).toExponential(2)}`);
  console.log(`  onnxruntime vs tfjs:              max |Δlogit| = ${v.maxAbsDiff.toExponential(2)} (top-1 agreement ${(100 * v.top1Agreement).toFixed(0)} %)`);
  console.log(`  batch of ${input.shape[0]} in ${ms.toFixed(1)} ms on the CPU execution provider`);
  await session.release();
  console.log('\nDone. Next: `edgeprompt info out/demo-backbone.onnx`, and `npm test` for the full parity suite.');
}
