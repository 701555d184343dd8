/**
 * CLIP weights: the structure of B/32 and B/16 (parameter counts from the one name table), both
 * name schemes loading to the same tensors, and the errors for foreign or broken files.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clipConfig } from '../compiler/backbones/clip-variants.ts';
import { clipNameTable, clipTensorShapes, convertClipStateDict, countParams, guessClipArch, loadClipWeights } from '../compiler/backbones/clip-weights.ts';
import { readSafetensors, writeSafetensors, type StateDict } from '../compiler/backbones/safetensors.ts';
import { numel } from '../compiler/ops/host-tensor.ts';
import { fixturePath } from './helpers/fixtures.ts';
import { fixtureClip } from './helpers/clip.ts';

const textCount = (shapes: Map<string, number[]>) => countParams(new Map([...shapes].filter(([k]) => k.startsWith('text.'))));

test('ViT-B/32 and ViT-B/16 CLIP have 151,277,313 and 149,620,737 parameters; the text tower 63,428,096', (t) => {
  const b32 = clipTensorShapes(clipConfig('clip_vit_b32', 'quick_gelu'));
  const b16 = clipTensorShapes(clipConfig('clip_vit_b16', 'quick_gelu'));
  t.is(countParams(b32), 151_277_313);
  t.is(countParams(b16), 149_620_737);
  t.is(textCount(b32), 63_428_096);
  t.is(textCount(b16), 63_428_096);
  t.deepEqual(b16.get('pos_embed'), [1, 197, 768]);
  t.deepEqual(b32.get('patch_embed.proj.weight'), [768, 3, 32, 32]);
  t.false(b32.has('patch_embed.proj.bias'), 'conv1 has no bias');
});

test('both foreign schemes name every parameter once: the same count as ours', (t) => {
  for (const arch of ['clip_vit_b32', 'clip_vit_b16']) {
    const rows = clipNameTable(clipConfig(arch, 'quick_gelu'));
    const openai = rows.reduce((s, r) => s + numel(r.openai.shape), 0);
    const hf = rows.reduce((s, r) => s + r.hf.keys.length * numel(r.hf.shape), 0);
    const ours = rows.reduce((s, r) => s + numel(r.shape), 0);
    t.is(openai, ours, arch);
    t.is(hf, ours, arch);
    t.is(new Set(rows.flatMap((r) => r.hf.keys)).size, rows.reduce((s, r) => s + r.hf.keys.length, 0), `${arch}: no HF key used twice`);
  }
});

test('OpenAI and Hugging Face files of the same weights load to identical tensors under our names', (t) => {
  const a = fixtureClip('openai');
  const b = fixtureClip('hf');
  t.is(a.scheme, 'openai');
  t.is(b.scheme, 'hf');
  t.deepEqual([...a.stateDict.keys()].sort(), [...b.stateDict.keys()].sort());
  for (const [k, v] of a.stateDict) {
    const w = b.stateDict.get(k)!;
    t.deepEqual(w.shape, v.shape, k);
    t.true(w.data.every((x, i) => x === v.data[i]), `${k} differs`);
  }
  t.false(b.notes.some((n) => n.includes('position_ids')), 'position_ids is a non-weight key, dropped silently');
  t.is(countParams(new Map([...a.stateDict].map(([k, v]) => [k, [...v.shape]]))), countParams(clipTensorShapes(a.cfg)));
});

test('edgeprompt info recognises CLIP weights under either scheme, and not a ViT', (t) => {
  t.is(guessClipArch(readSafetensors(fixturePath('clip_fixture_openai.safetensors')).tensors), 'CLIP clip_fixture (OpenAI/open_clip names)');
  t.is(guessClipArch(readSafetensors(fixturePath('clip_fixture_hf.safetensors')).tensors), 'CLIP clip_fixture (Hugging Face CLIPModel names)');
  t.is(guessClipArch(readSafetensors(fixturePath('vit_fixture.safetensors')).tensors), null);
});

test('a file in neither layout is refused with one line naming it and the layouts it could be', (t) => {
  const e = t.throws(() => loadClipWeights(fixturePath('vit_fixture.safetensors'), 'clip_fixture', 'openai'));
  t.is((e as { code?: string }).code, 'BAD_FILE');
  t.regex(e.message, /vit_fixture\.safetensors: unknown CLIP weight layout/);
  t.regex(e.message, /visual\.conv1\.weight/);
  t.false(e.message.includes('\n'));
});

test('every missing and mis-shaped tensor is named in one error', (t) => {
  const { tensors } = readSafetensors(fixturePath('clip_fixture_hf.safetensors'));
  const sd: StateDict = new Map(tensors);
  sd.delete('text_model.encoder.layers.1.self_attn.k_proj.weight');
  sd.delete('vision_model.post_layernorm.bias');
  sd.set('visual_projection.weight', { shape: [3, 4], data: new Float32Array(12) });
  const e = t.throws(() => convertClipStateDict(sd, clipConfig('clip_fixture', 'quick_gelu'), 'x.safetensors'));
  t.is((e as { code?: string }).code, 'WEIGHTS_MISMATCH');
  t.regex(e.message, /^x\.safetensors: 3 tensor\(s\) do not fit clip_fixture \(Hugging Face names\)/);
  t.regex(e.message, /missing "text_model\.encoder\.layers\.1\.self_attn\.k_proj\.weight" \[16, 16\]/);
  t.regex(e.message, /missing "vision_model\.post_layernorm\.bias" \[32\]/);
  t.regex(e.message, /"visual_projection\.weight" is \[3, 4\], expected \[24, 32\]/);
});

test('the activation comes from the weight source: explicit, our metadata, or a Hugging Face config.json; never guessed', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-act-'));
  const file = join(dir, 'model.safetensors');
  copyFileSync(fixturePath('clip_fixture_hf.safetensors'), file);
  const e = t.throws(() => loadClipWeights(file, 'clip_fixture'));
  t.is((e as { code?: string }).code, 'CONFIG_INVALID');
  t.regex(e.message, /cannot tell which activation.*backbone\.source.*"openai" \(quick_gelu.*"laion" \(gelu/);
  t.is(loadClipWeights(file, 'clip_fixture', 'laion').cfg.act, 'gelu');
  t.is(loadClipWeights(file, 'clip_fixture', 'openai').cfg.vision.act, 'quick_gelu');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ text_config: { hidden_act: 'quick_gelu' }, vision_config: { hidden_act: 'quick_gelu' } }));
  const viaConfig = loadClipWeights(file, 'clip_fixture');
  t.is(viaConfig.cfg.act, 'quick_gelu');
  t.regex(viaConfig.notes[0]!, /config\.json hidden_act/);
  const ours = join(dir, 'ours.safetensors');
  writeSafetensors(ours, viaConfig.stateDict, { metadata: { 'clip.act': 'gelu' } });
  const back = loadClipWeights(ours, 'clip_fixture');
  t.is(back.scheme, 'ours');
  t.is(back.cfg.act, 'gelu');
  t.throws(() => loadClipWeights(file, 'clip_fixture', 'openclip'), { message: /unknown CLIP weight source "openclip"/ });
});
