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
  t.throws(() => adaptVitStateDict(raw, cfg, 'ckpt.safetensors'), { code: 'WEIGHTS_MISMATCH', message: /ckpt\.safetensors: does not fit vit_fixture_patch8_32: 1 tensor\(s\) missing: "blocks\.2\.mlp\.fc2\.bias" \[96\]/ } as never);
});

test('a wrong shape names the key, the actual and the expected shape', (t) => {
  const { cfg, sd } = fixtureVit();
  const raw: StateDict = new Map(sd);
  raw.set('blocks.0.attn.proj.weight', { shape: [96, 95], data: new Float32Array(96 * 95) });
  t.throws(() => adaptVitStateDict(raw, cfg, 'ckpt.safetensors'), { code: 'WEIGHTS_MISMATCH', message: /"blocks\.0\.attn\.proj\.weight" has shape \[96, 95\], vit_fixture_patch8_32 expects \[96, 96\]/ } as never);
});

test('weight loading names every missing and mis-shaped tensor in one message, not the first only (bug: it stopped at the first)', (t) => {
  const { cfg, sd } = fixtureVit();
  const raw: StateDict = new Map(sd);
  raw.delete('blocks.0.norm1.weight');
  raw.delete('blocks.2.mlp.fc2.bias');
  raw.delete('norm.bias');
  raw.set('cls_token', { shape: [1, 1, 95], data: new Float32Array(95) });
  raw.set('blocks.1.attn.qkv.weight', { shape: [96, 96], data: new Float32Array(96 * 96) });
  const e = t.throws(() => adaptVitStateDict(raw, cfg, 'ckpt.safetensors'), { code: 'WEIGHTS_MISMATCH' } as never) as Error;
  t.regex(e.message, /3 tensor\(s\) missing: "blocks\.0\.norm1\.weight" \[96\], "blocks\.2\.mlp\.fc2\.bias" \[96\], "norm\.bias" \[96\]/);
  t.regex(e.message, /2 tensor\(s\) of another shape: "cls_token" has shape \[1, 1, 95\], vit_fixture_patch8_32 expects \[1, 1, 96\]; "blocks\.1\.attn\.qkv\.weight" has shape \[96, 96\], vit_fixture_patch8_32 expects \[288, 96\]/);
  t.false(e.message.includes('\n'), 'one line');
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
