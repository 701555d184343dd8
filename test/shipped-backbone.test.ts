/**
 * The shipped tiny backbone (compiler/backbones/weights/, pretrained by
 * tools/pretrain/pretrain_backbone.py) loads under its arch name, and the TypeScript data path
 * (Fashion-MNIST idx → pad to 32 → RGB → Inception normalisation folded into the uint8 graph)
 * reproduces the accuracy its card states. A preprocessing mismatch between the two stacks
 * would show here first.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { initTf } from '../compiler/ops/tf-backend.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { loadVitWeights } from '../compiler/backbones/vit-weights.ts';
import { exportVitBackbone } from '../compiler/export/backbone.ts';
import { loadFashionMnist } from '../compiler/data/fashion-mnist.ts';
import { exportedLogits } from '../compiler/export/verify-task.ts';
import { repoPath } from './helpers/fixtures.ts';

const base = repoPath('compiler/backbones/weights/vit_micro_patch4_32.fmnist04');

test('shipped backbone: timm names load, FMNIST 0–4 top-1 matches its card within 2.5 pt', async (t) => {
  await initTf();
  const card = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as { accuracy: { shipped_fp16: number } };
  const cfg = vitConfig('vit_micro_patch4_32');
  const { stateDict, headDropped } = loadVitWeights(`${base}.safetensors`, cfg);
  t.false(headDropped);
  const test5 = loadFashionMnist({ split: 'test', classes: [0, 1, 2, 3, 4], limit: 300 });
  const logits = await exportedLogits(exportVitBackbone(cfg, stateDict, { input: 'uint8-nhwc' }), test5);
  let ok = 0;
  test5.samples.forEach((s, i) => {
    let best = 0;
    for (let c = 1; c < 5; c++) if (logits[i * 5 + c]! > logits[i * 5 + best]!) best = c;
    if (best === s.label) ok++;
  });
  const top1 = ok / test5.samples.length;
  t.log(`top-1 on ${test5.samples.length} test images: ${(100 * top1).toFixed(2)} % (card: ${(100 * card.accuracy.shipped_fp16).toFixed(2)} % on all 5,000)`);
  t.true(Math.abs(top1 - card.accuracy.shipped_fp16) <= 0.025);
});
