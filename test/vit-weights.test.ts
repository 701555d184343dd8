import test from 'ava';
import { adaptVitStateDict, vitTensorShapes } from '../compiler/backbones/vit-weights.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import type { StateDict } from '../compiler/backbones/safetensors.ts';
import { fixtureVit } from './helpers/fixtures.ts';
import { randomVit } from './helpers/random-vit.ts';

test('timm key set and shapes for ViT-Ti/16 (params counted as timm does: 5.72 M)', (t) => {
  const shapes = vitTensorShapes(vitConfig('vit_tiny_patch16_224'));
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((p, d) => p * d, 1);
  t.is(n, 5_717_416);
  t.deepEqual(shapes.get('blocks.11.attn.qkv.weight'), [576, 192]);
  t.deepEqual(shapes.get('pos_embed'), [1, 197, 192]);
});

test('a missing tensor names the key and the file', (t) => {
  const { cfg, sd } = fixtureVit();
  const raw: StateDict = new Map(sd);
  raw.delete('blocks.2.mlp.fc2.bias');
  t.throws(() => adaptVitStateDict(raw, cfg, 'ckpt.safetensors'), { code: 'MISSING_TENSOR', message: /ckpt\.safetensors: tensor "blocks\.2\.mlp\.fc2\.bias" \[96\] is missing/ } as never);
});

test('a wrong shape names the key, the actual and the expected shape', (t) => {
  const { cfg, sd } = fixtureVit();
  const raw: StateDict = new Map(sd);
  raw.set('blocks.0.attn.proj.weight', { shape: [96, 95], data: new Float32Array(96 * 95) });
  t.throws(() => adaptVitStateDict(raw, cfg, 'ckpt.safetensors'), { code: 'SHAPE_MISMATCH', message: /"blocks\.0\.attn\.proj\.weight" has shape \[96, 95\], vit_fixture_patch8_32 expects \[96, 96\]/ } as never);
});

test('unknown arch lists the known ones', (t) => {
  t.throws(() => vitConfig('vit_huge_patch99'), { code: 'UNKNOWN_ARCH', message: /unknown arch "vit_huge_patch99"; known: vit_tiny_patch16_224/ } as never);
});

test('a head for another class count is dropped, a new grid resamples pos_embed, extra keys are noted', (t) => {
  const cfg = vitConfig('vit_fixture_patch8_32', { numClasses: 5, imgSize: 64 });
  const raw = randomVit(vitConfig('vit_fixture_patch8_32'));
  raw.set('fc_norm.weight', { shape: [96], data: new Float32Array(96) });
  const r = adaptVitStateDict(raw, cfg, 'x.safetensors');
  t.true(r.headDropped);
  t.false(r.stateDict.has('head.weight'));
  t.deepEqual(r.stateDict.get('pos_embed')!.shape, [1, 65, 96]);
  t.true(r.notes.some((n) => n.includes('pos_embed resampled [1, 17, 96] → [1, 65, 96]')));
  t.true(r.notes.some((n) => n.includes('fc_norm.weight')));
});
