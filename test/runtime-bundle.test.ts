// The device bundle: tools/build-runtime.mjs produces one .mjs without compiler/ or tfjs, which
// prints its help and runs a device end to end (signed artifact → ORT → aedes) as a real process.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateKeyPair, publicKeyPem } from '../runtime/artifact/index.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { startAedes } from './helpers/brokers.ts';
import { repoPath } from './helpers/fixtures.ts';
import { makeArtifact, tempDir, writeArtifact } from './helpers/runtime-models.ts';

const run = promisify(execFile);
// Inside the repo, so the bundle finds onnxruntime-node and serialport in node_modules like a deploy does.
const outdir = repoPath(`dist/.test-${process.pid}`);
const bundle = join(outdir, 'edgeprompt-runtime.mjs');

test.before(async () => {
  await run(process.execPath, [repoPath('tools/build-runtime.mjs'), '--outdir', outdir]);
});
test.after.always(() => rm(outdir, { recursive: true, force: true }));

test('the bundle holds no tfjs and no compiler code, and ships the device profiles', async (t) => {
  const text = await readFile(bundle, 'utf8');
  t.false(/@tensorflow|tfjs/.test(text), 'no tfjs in the runtime bundle');
  t.false(text.includes('compiler/'), 'no compiler sources');
  t.true(text.startsWith("import { createRequire as __cr } from 'node:module'"), 'createRequire banner');
  t.regex(text, /from\s*"onnxruntime-node"/, 'onnxruntime-node stays external');
  const map = JSON.parse(await readFile(bundle + '.map', 'utf8')) as { sources: string[] };
  t.false(map.sources.some((s) => /compiler\/|@tensorflow/.test(s)));
  t.deepEqual((await run('ls', [join(outdir, 'profiles')])).stdout.trim().split('\n'), ['jetson-agx-orin.yaml', 'jetson-orin-nano.yaml', 'x86-cpu.yaml']);
});

test('node dist/edgeprompt-runtime.mjs --help', async (t) => {
  const { stdout } = await run(process.execPath, [bundle, '--help']);
  t.regex(stdout, /Usage: edgeprompt-runtime/);
  t.regex(stdout, /run \[options\]/);
  t.regex(stdout, /watch \[options\]/);
  const e = await t.throwsAsync(run(process.execPath, [bundle, 'run', '-c', '/nonexistent/device.yaml']));
  t.is((e as { code?: number }).code, 2);
  t.regex((e as { stderr?: string }).stderr ?? '', /error \[CONFIG_UNREADABLE\]: \/nonexistent\/device\.yaml/);
});

test('the bundle runs a device: synthetic camera → signed model → MQTT, and exits when the camera ends', async (t) => {
  t.timeout(20_000);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const key = generateKeyPair();
  const packed = makeArtifact({}, { privateKey: key.privateKey });
  await writeArtifact(dir, 'model.epk', packed);
  await writeFile(join(dir, 'release.pub'), publicKeyPem(key.publicKey));
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const results: ResultPayload[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: 'bundle-1' }, (m) => void results.push(m.result));
  t.teardown(() => sub.close());
  await sub.ready;
  const N = 20;
  await writeFile(
    join(dir, 'device.yaml'),
    [
      'device: bundle-1',
      'artifact: model.epk',
      'trustedKeys: [release.pub]',
      'profile: x86-cpu',
      'cameras:',
      `  - { id: cam1, kind: synthetic, fps: 40, count: ${N} }`,
      `mqtt: { url: "${broker.url}", protocolVersion: 4, reconnectPeriodMs: 100 }`,
      'outbox: { kind: file, dir: outbox }',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, ['--enable-source-maps', bundle, 'run', '-c', join(dir, 'device.yaml')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'info' } });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  t.is(code, 0, stderr);
  t.regex(stderr, /runtime: ready/);
  await new Promise((r) => setTimeout(r, 200));
  t.is(results.length, N, 'every frame reported before the process exited');
  t.deepEqual(results.map((r) => r.seq), Array.from({ length: N }, (_, i) => i));
  t.true(results.every((r) => r.model.sha256 === packed.sha256));
});
