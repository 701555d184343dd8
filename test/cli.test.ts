/** The `edgeprompt` command as a user runs it: a real process, real files. */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath, repoPath } from './helpers/fixtures.ts';
import { errorReport } from '../cli/errors.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { ArtifactError } from '../runtime/artifact/index.ts';

const run = promisify(execFile);
const cli = repoPath('tools/edgeprompt.mjs');

/**
 * Runs the CLI. Bug (flaky under load): a 60 s kill timer ended `export-backbone --verify` at load
 * 20-30 (exit code null, killed); the limit now only catches a hung command, and a kill says so.
 */
async function edgeprompt(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [cli, ...args], { timeout: 170_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number | null; signal?: string | null; stdout: string; stderr: string };
    if (x.code === null) return { code: -1, stdout: x.stdout, stderr: `killed by ${x.signal} after the 170 s limit\n${x.stderr}` };
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
    [['export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_tiny_patch16_224', '--out', '/tmp/x.onnx'], /WEIGHTS_MISMATCH.*"patch_embed\.proj\.weight" has shape \[96, 3, 8, 8\], vit_tiny_patch16_224 expects \[192, 3, 16, 16\]/],
    [['export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_gigantic', '--out', '/tmp/x.onnx'], /UNKNOWN_ARCH.*unknown arch "vit_gigantic"/],
    [['export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_fixture_patch8_32', '--out', '/tmp/x.onnx', '--img-size', 'big'], /FLAG_INVALID.*--img-size: expected a non-negative integer, got "big"/],
    [['export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_fixture_patch8_32', '--out', '/tmp/x.onnx', '--num-classes', '5'], /FLAG_INVALID.*--num-classes 5: the checkpoint's head has 10 classes \(head\.weight \[10, 96\]\); export cannot invent a trained head/],
    // Issue 14's case: a bad method option was a ZodError stack trace and exit 1.
    [['train', '-c', repoPath('configs/fmnist-vpt-deep.yaml'), '--set', 'method.options.prompts=-3'], /^edgeprompt: error \[CONFIG_INVALID\]: .*configs\/fmnist-vpt-deep\.yaml: invalid compile config: method\.options\.prompts: Too small: expected number to be >0 \(got -3\) \(from --set\)\n$/],
    [['info', repoPath('package.json')], /BAD_FILE.*unknown file type "\.json"/],
  ];
  for (const [args, re] of cases) {
    const r = await edgeprompt(...args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, re);
    t.notRegex(r.stderr, /\n\s+at /);
  }
});

test('export-backbone keeps the checkpoint\'s head unless told otherwise, and says which', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ep-cli-head-'));
  const kept = await edgeprompt('export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_fixture_patch8_32', '--out', join(dir, 'a.onnx'));
  t.is(kept.code, 0, kept.stderr);
  t.regex(kept.stdout, /head: kept the checkpoint's head \(10 classes, head\.weight \[10, 96\]\)/);
  const features = await edgeprompt('export-backbone', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'vit_fixture_patch8_32', '--out', join(dir, 'f.onnx'), '--num-classes', '0');
  t.is(features.code, 0, features.stderr);
  t.regex(features.stdout, /head: dropped \(--num-classes 0\), the model outputs features \(the checkpoint's head had 10 classes\)/);
  const info = await edgeprompt('info', join(dir, 'f.onnx'));
  t.notRegex(info.stdout, /\[N, 10\]/);
});

test('keys new creates a missing folder (0700) and names a write failure as one (bug: KEY_UNREADABLE … ENOENT)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ep-cli-keys-'));
  const r = await edgeprompt('keys', 'new', '--out', join(dir, 'keys/line1'));
  t.is(r.code, 0, r.stderr);
  t.is(statSync(join(dir, 'keys')).mode & 0o777, 0o700);
  t.is(statSync(join(dir, 'keys/line1.key')).mode & 0o777, 0o600);
  t.true(existsSync(join(dir, 'keys/line1.pub')));
  writeFileSync(join(dir, 'plain'), 'not a folder');
  const bad = await edgeprompt('keys', 'new', '--out', join(dir, 'plain/line1'));
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^edgeprompt: error \[KEY_WRITE_FAILED\]: .*plain: cannot create the folder for the key pair \((ENOTDIR|EEXIST)\); check the path and its permissions\n$/);
});

test('a diverging run stops with NAN_LOSS naming the epoch and step and suggesting a lower lr', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ep-cli-nan-'));
  const cfg = join(dir, 'nan.yaml');
  writeFileSync(
    cfg,
    `name: nan
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: fashion-mnist, classes: [5, 7, 9], limitPerClass: 16, valLimitPerClass: 8 }
method: { name: vpt-deep, options: { prompts: 2 } }
recipe: { epochs: 2, batchSize: 8, warmupEpochs: 0, optimizer: { lr: 1.0e+30 } }
output: { dir: out }
`,
  );
  const r = await edgeprompt('train', '-c', cfg, '--progress', 'lines');
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /edgeprompt: error \[NAN_LOSS\]: training diverged: the loss became (NaN|Infinity) at epoch 1, step \d+ \(lr [\d.e+]+\); lower recipe\.optimizer\.lr \(now 1e\+30\)/);
  t.notRegex(r.stderr, /\n\s+at /);
});

test('exit codes: 2 for bad input, 1 for a failure of ours (coded: no stack), 130 after Ctrl-C, a stack only for an uncoded error', (t) => {
  t.deepEqual(errorReport(new CompilerError('CONFIG_INVALID', 'x.yaml: bad')), { exitCode: 2, text: 'edgeprompt: error [CONFIG_INVALID]: x.yaml: bad' });
  const ours = errorReport(new CompilerError('PARITY_FAILED', 'the fused export does not match'));
  t.is(ours.exitCode, 1);
  t.regex(ours.text, /^edgeprompt: error \[PARITY_FAILED\]: the fused export does not match\n\(a failure of EdgePrompt, not of your input/);
  t.notRegex(ours.text, /\n\s+at /);
  t.is(errorReport(new CompilerError('TRAINING_INTERRUPTED', 'interrupted')).exitCode, 130);
  t.is(errorReport(new ArtifactError('SIGNATURE_INVALID', 'a.epk', 'tampered')).exitCode, 2);
  const bug = errorReport(new TypeError('x is undefined'));
  t.is(bug.exitCode, 1);
  t.regex(bug.text, /TypeError: x is undefined\n\s+at /);
});

test('data line-video writes the camera stand-in the README runs the device on (into a new folder)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ep-cli-video-'));
  const r = await edgeprompt('data', 'line-video', '--out', join(dir, 'out/line.mp4'), '--per-class', '2');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /wrote .*out\/line\.mp4: 10 frames of 128×128 at 10 fps, 2 per class of /);
  t.true(statSync(join(dir, 'out/line.mp4')).size > 1000);
  const bad = await edgeprompt('data', 'line-video', '--out', join(dir, 'x.mp4'), '--items', 'cars');
  t.is(bad.code, 2);
  t.regex(bad.stderr, /FLAG_INVALID.*--items: expected one of demo, parts, got "cars"/);
});
