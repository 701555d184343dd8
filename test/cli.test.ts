/** The `edgeprompt` command as a user runs it: a real process, real files. */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath, repoPath } from './helpers/fixtures.ts';

const run = promisify(execFile);
const cli = repoPath('tools/edgeprompt.mjs');

async function edgeprompt(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [cli, ...args], { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test('export-backbone --verify writes a model that info describes', async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'ep-cli-')), 'fixture.onnx');
  const r = await edgeprompt('export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_fixture_patch8_32', '--out', out, '--verify');
  t.is(r.code, 0, r.stderr);
  t.true(existsSync(out));
  const m = /max \|logit\(onnxruntime\) − logit\(tfjs\)\| = ([\d.e+-]+)/.exec(r.stdout);
  t.truthy(m, r.stdout);
  t.true(Number(m![1]) <= 1e-4);
  const info = await edgeprompt('info', out);
  t.is(info.code, 0, info.stderr);
  t.regex(info.stdout, /input {2}input: float32 \[N, 3, 32, 32\]/);
  t.regex(info.stdout, /output logits: float32 \[N, 10\]/);
  t.regex(info.stdout, /LayerNormalization×7/);
});

test('info on a checkpoint recognises the arch', async (t) => {
  const r = await edgeprompt('info', fixturePath('vit_fixture.safetensors'));
  t.is(r.code, 0);
  t.regex(r.stdout, /356,938 parameters/);
  t.regex(r.stdout, /looks like: vit_fixture_patch8_32/);
});

test('errors name the file, tensor or arch and exit 2 without a stack trace', async (t) => {
  const cases: [string[], RegExp][] = [
    [['export-backbone', '--weights', 'missing.safetensors', '--arch', 'vit_tiny_patch16_224', '--out', '/tmp/x.onnx'], /FILE_NOT_FOUND.*missing\.safetensors: no such file/],
    [['export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_tiny_patch16_224', '--out', '/tmp/x.onnx'], /SHAPE_MISMATCH.*"patch_embed\.proj\.weight" has shape \[96, 3, 8, 8\], vit_tiny_patch16_224 expects \[192, 3, 16, 16\]/],
    [['export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_gigantic', '--out', '/tmp/x.onnx'], /UNKNOWN_ARCH.*unknown arch "vit_gigantic"/],
    [['export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_fixture_patch8_32', '--out', '/tmp/x.onnx', '--img-size', 'big'], /BAD_ARGUMENT.*--img-size: expected a non-negative integer, got "big"/],
    [['info', repoPath('package.json')], /BAD_FILE.*unknown file type "\.json"/],
  ];
  for (const [args, re] of cases) {
    const r = await edgeprompt(...args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, re);
    t.notRegex(r.stderr, /\n\s+at /);
  }
});
