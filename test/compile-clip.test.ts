/**
 * CLIP tasks through `edgeprompt compile` as a user runs it (real processes, real files) on the
 * fixture CLIP: `--zero-shot` from words alone gives a signed artifact that the unchanged runtime
 * serves (`run` with a synthetic camera, results over MQTT); a DAPT config trains, exports,
 * verifies and signs; bad input is one line and exit 2.
 */
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readArtifact } from '../runtime/artifact/index.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { startAedes } from './helpers/brokers.ts';
import { zeroShotCommand, type ZeroShotFlags } from '../cli/zero-shot.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { fixturePath, repoPath } from './helpers/fixtures.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ep-clip-'));
async function edgeprompt(...args: string[]) {
  try {
    const r = await run(process.execPath, [repoPath('tools/edgeprompt.mjs'), ...args], { timeout: 170_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr };
  }
}
const clipFlags = ['--weights', fixturePath('clip_fixture_openai.safetensors'), '--arch', 'clip_fixture', '--tokenizer', fixturePath('clip_fixture_tokenizer.json'), '--source', 'openai'];

test.serial('compile --zero-shot: words in, a signed artifact out, served by the unchanged runtime', async (t) => {
  t.timeout(120_000);
  const k = await edgeprompt('keys', 'new', '--out', join(dir, 'line1'));
  t.is(k.code, 0, k.out);
  const epk = join(dir, 'zs.epk');
  const c = await edgeprompt('compile', '--zero-shot', '--classes', 'ok,scratch,dent', '--templates', 'a {} part.', 'my {}', '--ok', 'ok', '--name', 'line1-zs', ...clipFlags, '--sign', join(dir, 'line1.key'), '--out', epk, '--progress', 'lines');
  t.is(c.code, 0, c.out);
  t.regex(c.out, /fp32: top-1 not measured \(no labelled images; --val <folder> measures it\), agrees with fp32 on 100\.0 % of 40 check images/);
  const a = readArtifact(readFileSync(epk), epk);
  t.deepEqual(a.manifest.labels, ['ok', 'scratch', 'dent']);
  t.like(a.manifest, { name: 'line1-zs', method: { name: 'zero-shot', options: { classNames: ['ok', 'scratch', 'dent'], templates: ['a {} part.', 'my {}'] } }, thresholds: { okLabels: ['ok'], minConfidence: 0.5 } });
  t.like(a.manifest.metrics.fp32, { top1: 0, samples: 0, top1AgreementWithFp32: 1 });
  const v = await edgeprompt('verify', epk, '--pub', join(dir, 'line1.pub'));
  t.is(v.code, 0, v.out);
  const i = await edgeprompt('inspect', epk);
  t.regex(i.out, /fp32: top-1 not measured \(no labelled images\)/);

  // The device side, unchanged: a synthetic camera, the signed artifact, results over MQTT.
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const results: ResultPayload[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: 'clip-1' }, (m) => void results.push(m.result));
  t.teardown(() => sub.close());
  await sub.ready;
  const N = 5;
  writeFileSync(join(dir, 'device.yaml'), ['device: clip-1', `artifact: ${epk}`, 'trustedKeys: [line1.pub]', 'profile: x86-cpu', 'cameras:', `  - { id: cam1, kind: synthetic, fps: 20, count: ${N} }`, `mqtt: { url: "${broker.url}", protocolVersion: 4, reconnectPeriodMs: 100 }`, 'outbox: { kind: memory }', ''].join('\n'));
  const child = spawn(process.execPath, ['--import', 'tsx', repoPath('runtime/cli.ts'), 'run', '-c', join(dir, 'device.yaml')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'info' } });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  t.is(code, 0, stderr);
  await new Promise((r) => setTimeout(r, 200));
  t.is(results.length, N, stderr);
  t.true(results.every((r) => ['ok', 'scratch', 'dent'].includes(r.label)));
});

test.serial('a DAPT config trains, exports, verifies and signs end to end', async (t) => {
  t.timeout(170_000);
  const config = join(dir, 'dapt.yaml');
  writeFileSync(
    config,
    `name: tiny-dapt
backbone: { arch: clip_fixture, weights: ${fixturePath('clip_fixture_hf.safetensors')}, tokenizer: ${fixturePath('clip_fixture_tokenizer.json')}, source: openai }
text: { templates: ["a {}."], classNames: [dent, hole, ok, scratch, stain] }
data: { kind: parts, perClass: 6, size: 32, seed: 1, valFraction: 0.25 }
method: { name: dapt, options: { visualPrompts: 4, textContext: 4, prototypeShots: 2 } }
recipe: { epochs: 2, batchSize: 8 }
thresholds: { okLabels: [ok], minConfidence: 0.5 }
gates: { minTop1: 0 }   # two epochs on 30 images: the pipeline is checked here, not the accuracy
output: { dir: out-dapt }
`,
  );
  const c = await edgeprompt('compile', '-c', config, '--out', join(dir, 'dapt.epk'), '--sign', join(dir, 'line1.key'), '--progress', 'lines');
  t.is(c.code, 0, c.out);
  t.regex(c.out, /activation quick_gelu \(backbone\.source openai\)/);
  t.regex(c.out, /\| fp32 \| [\d.]+ % \| [\d.e+-]+ \| [\d.]+ MB \| yes \|/);
  const a = readArtifact(readFileSync(join(dir, 'dapt.epk')), 'dapt.epk');
  t.deepEqual(a.manifest.labels, ['dent', 'missing_hole', 'ok', 'scratch', 'stain']);
  t.like(a.manifest.method, { name: 'dapt', options: { classNames: ['dent', 'hole', 'ok', 'scratch', 'stain'] } });
  t.true(a.manifest.metrics.fp32!.maxLogitDiff <= 1e-4);
});

test.serial('bad CLIP input through the CLI: one line naming the field or file, exit 2, no stack trace', async (t) => {
  const cases: [string[], RegExp][] = [
    [['compile', '--zero-shot', '--classes', 'ok,a very very long scratch name', ...clipFlags, '--out', join(dir, 'x.epk')], /class "a very very long scratch name" with template "a photo of a \{\}\.": .* is \d+ tokens with SOT and EOT, but the text tower's context holds 16/],
    [['compile', '--zero-shot', '--classes', 'ok,dent', '--weights', fixturePath('vit_fixture.safetensors'), '--arch', 'clip_fixture', '--tokenizer', fixturePath('clip_fixture_tokenizer.json'), '--source', 'openai', '--out', join(dir, 'x.epk')], /vit_fixture\.safetensors: unknown CLIP weight layout/],
  ];
  for (const [args, re] of cases) {
    const r = await edgeprompt(...args);
    t.is(r.code, 2, r.out);
    t.regex(r.out, re);
    t.notRegex(r.out, /\n\s+at /, 'no stack trace');
  }
  const noTok = join(dir, 'notok.yaml');
  writeFileSync(noTok, `name: x\nbackbone: { arch: clip_fixture, weights: ${fixturePath('clip_fixture_openai.safetensors')}, source: openai }\ndata: { kind: parts, perClass: 4 }\nmethod: { name: coop }\noutput: { dir: out-x }\n`);
  const r = await edgeprompt('compile', '-c', noTok, '--out', join(dir, 'x.epk'));
  t.is(r.code, 2);
  t.regex(r.out, /notok\.yaml: invalid compile config: backbone\.tokenizer: a CLIP backbone \(clip_fixture\) needs the tokenizer\.json its weights were trained with/);
});

test('bad --zero-shot flags are refused before any work, each naming the flag', async (t) => {
  const base: ZeroShotFlags = { out: join(dir, 'x.epk'), classes: 'ok,dent', weights: fixturePath('clip_fixture_openai.safetensors'), arch: 'clip_fixture', tokenizer: fixturePath('clip_fixture_tokenizer.json'), source: 'openai', taskVersion: '1', minConfidence: 0.5, precision: ['fp32'], maxDrop: 0.5, progress: 'none' as never };
  const cases: [Partial<ZeroShotFlags>, RegExp][] = [
    [{ classes: 'ok' }, /^--classes: one class \("ok"\) cannot be classified; give at least two/],
    [{ classes: ' , ' }, /^--classes: the class list is empty/],
    [{ classes: undefined }, /^--classes: required with --zero-shot/],
    [{ tokenizer: undefined }, /^--tokenizer: required with --zero-shot/],
    [{ ok: 'good' }, /^--ok: "good" is not one of --classes \(ok, dent\)/],
    [{ out: undefined }, /^--out: required/],
    [{ tokenizer: fixturePath('vit_fixture_io.safetensors') }, /vit_fixture_io\.safetensors: not JSON/],
    [{ weights: '/nonexistent.safetensors' }, /^--weights \/nonexistent\.safetensors: no such file/],
  ];
  for (const [patch, re] of cases) {
    const e = await t.throwsAsync(zeroShotCommand({ ...base, ...patch } as ZeroShotFlags, () => {}, () => ''));
    t.regex(e!.message, re);
    t.truthy((e as { code?: string }).code);
  }
});

test('a CLIP method in a config with a ViT backbone is refused, naming method.name', async (t) => {
  const vitCfg = join(dir, 'vitcoop.yaml');
  writeFileSync(vitCfg, `name: x\nbackbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }\ndata: { kind: parts, perClass: 4 }\nmethod: { name: coop }\noutput: { dir: out-y }\n`);
  const e = await t.throwsAsync(prepareJob(loadCompileConfig(vitCfg), vitCfg, { resume: false, progress: makeProgress('none') }));
  t.regex(e!.message, /vitcoop\.yaml: invalid compile config: method\.name: coop needs a CLIP backbone \(backbone\.arch clip_\*, with backbone\.tokenizer\); vit_fixture_patch8_32 is a ViT/);
});
