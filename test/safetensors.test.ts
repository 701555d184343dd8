import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors, parseSafetensors, readSafetensors } from '../compiler/backbones/safetensors.ts';
import { f16BitsToF32, f32ToF16Bits, maxAbsDiff } from '../compiler/ops/host-tensor.ts';
import { randn } from './helpers/random-vit.ts';

const tensors = { 'blocks.0.attn.qkv.weight': { shape: [6, 2], data: randn([6, 2], 1, 1) }, cls_token: { shape: [1, 1, 2], data: Float32Array.of(0.5, -3) } };

test('F32 round trip is exact and keeps metadata', (t) => {
  const f = parseSafetensors(encodeSafetensors(tensors, { metadata: { arch: 'vit_fixture_patch8_32', note: 'größe' } }));
  t.deepEqual(f.metadata, { arch: 'vit_fixture_patch8_32', note: 'größe' });
  t.deepEqual(f.tensors.get('blocks.0.attn.qkv.weight')!.shape, [6, 2]);
  t.is(maxAbsDiff(f.tensors.get('blocks.0.attn.qkv.weight')!.data, tensors['blocks.0.attn.qkv.weight'].data), 0);
});

test('F16 round trip stays within half precision', (t) => {
  const f = parseSafetensors(encodeSafetensors(tensors, { dtype: 'F16' }));
  const a = f.tensors.get('blocks.0.attn.qkv.weight')!.data;
  t.true(maxAbsDiff(a, tensors['blocks.0.attn.qkv.weight'].data) < 2e-3);
  t.deepEqual([...f.tensors.get('cls_token')!.data], [0.5, -3]);
});

test('half conversion: exact values, rounding to even, overflow, subnormals', (t) => {
  t.is(f32ToF16Bits(1), 0x3c00);
  t.is(f32ToF16Bits(-2), 0xc000);
  t.is(f32ToF16Bits(65504), 0x7bff);
  t.is(f32ToF16Bits(1e6), 0x7c00);
  t.is(f32ToF16Bits(2 ** -24), 0x0001);
  t.is(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie → even
  t.is(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  t.is(f16BitsToF32(0x3555), 0.333251953125);
  t.is(f16BitsToF32(0x0001), 2 ** -24);
});

test('truncated, garbled and missing files fail with the file and tensor named', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ep-st-'));
  const good = encodeSafetensors(tensors);
  const truncated = join(dir, 'truncated.safetensors');
  writeFileSync(truncated, good.subarray(0, good.byteLength - 10));
  t.throws(() => readSafetensors(truncated), { code: 'BAD_FILE', message: /truncated\.safetensors.*"blocks\.0\.attn\.qkv\.weight" ends at byte 208 but the file has 206 \(truncated\?\)/ } as never);
  const garbled = join(dir, 'garbled.safetensors');
  writeFileSync(garbled, Buffer.concat([Buffer.from([16, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"not json      ')]));
  t.throws(() => readSafetensors(garbled), { code: 'BAD_FILE', message: /garbled\.safetensors: not a valid safetensors file: header is not JSON/ } as never);
  t.throws(() => readSafetensors(join(dir, 'absent.safetensors')), { code: 'FILE_NOT_FOUND', message: /absent\.safetensors: no such file/ } as never);
  t.throws(() => parseSafetensors(new Uint8Array(3), 'tiny.bin'), { code: 'BAD_FILE', message: /tiny\.bin.*only 3 bytes/ } as never);
});
