// The device bundle: tools/build-runtime.mjs produces one .mjs without compiler/ or tfjs (and the
// inference worker's .mjs beside it), which prints its help and runs a device end to end (signed
// artifact → ORT in the bundled worker → aedes) as a real process.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateKeyPair, publicKeyPem } from '../runtime/artifact/index.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { startAedes, until } from './helpers/brokers.ts';
import { repoPath } from './helpers/fixtures.ts';
import { makeArtifact, tempDir, writeArtifact } from './helpers/runtime-models.ts';

const run = promisify(execFile);
// Inside the repo, so the bundle finds onnxruntime-node and serialport in node_modules like a deploy does.
const outdir = repoPath(`dist/.test-${process.pid}`);
const bundle = join(outdir, 'edgeprompt-runtime.mjs');
const workerBundle = join(outdir, 'edgeprompt-runtime-worker.mjs');

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
  const worker = await readFile(workerBundle, 'utf8');
  t.regex(worker, /from\s*"onnxruntime-node"/, 'the worker imports onnxruntime-node itself');
  t.false(/@tensorflow|tfjs|compiler\//.test(worker));
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

/**
 * A device that runs N synthetic frames through the bundle and reports them to `broker`, with
 * inference in the worker thread (an inline x86 profile; the shipped x86-cpu one runs in-thread).
 */
async function deviceDir(dir: string, brokerUrl: string, n: number) {
  const key = generateKeyPair();
  const packed = makeArtifact({}, { privateKey: key.privateKey });
  await writeArtifact(dir, 'model.epk', packed);
  await writeFile(join(dir, 'release.pub'), publicKeyPem(key.publicKey));
  await writeFile(
    join(dir, 'device.yaml'),
    [
      'device: bundle-1',
      'artifact: model.epk',
      'trustedKeys: [release.pub]',
      'profile: { schemaVersion: 1, name: x86-worker, arch: x64, precisions: [fp32], executionProviders: [{ name: cpu }], threads: { inference: worker, intraOp: 1 } }',
      'cameras:',
      `  - { id: cam1, kind: synthetic, fps: 40, count: ${n} }`,
      `mqtt: { url: "${brokerUrl}", protocolVersion: 4, reconnectPeriodMs: 100 }`,
      'outbox: { kind: file, dir: outbox }',
      '',
    ].join('\n'),
  );
  return packed;
}

test('the bundle runs inference in its worker, found next to it: without the worker file it refuses to start, saying so', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  // The bundle alone (no worker beside it), still inside the repo so it finds node_modules.
  const lone = repoPath(`dist/.test-${process.pid}-lone`);
  await mkdir(lone, { recursive: true });
  t.teardown(() => rm(lone, { recursive: true, force: true }));
  await copyFile(bundle, join(lone, 'edgeprompt-runtime.mjs'));
  await deviceDir(dir, 'mqtt://127.0.0.1:1', 1);
  const e = await t.throwsAsync(run(process.execPath, [join(lone, 'edgeprompt-runtime.mjs'), 'run', '-c', join(dir, 'device.yaml')]));
  t.not((e as { code?: number }).code, 0);
  t.regex((e as { stderr?: string }).stderr ?? '', /the inference worker is missing: .*edgeprompt-runtime-worker\.mjs/);
});

test('the bundle runs a device: synthetic camera → signed model → MQTT, and exits when the camera ends', async (t) => {
  t.timeout(20_000);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const results: ResultPayload[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: 'bundle-1' }, (m) => void results.push(m.result));
  t.teardown(() => sub.close());
  await sub.ready;
  const N = 20;
  const packed = await deviceDir(dir, broker.url, N);
  const child = spawn(process.execPath, ['--enable-source-maps', bundle, 'run', '-c', join(dir, 'device.yaml')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'info' } });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  t.is(code, 0, stderr);
  t.regex(stderr, /runtime: ready/);
  // Bug (flaky under load): this asserted N results, but a free-running camera's frames that come
  // while inference is busy are dropped by design (newest frame wins), and at load 20-30 some were.
  // What must hold whatever the load: every frame is processed or counted as dropped, and every
  // processed frame was reported before the process exited (the stop line says how many).
  const stopped = stderr.split('\n').filter((l) => l.includes('runtime: stopped')).map((l) => JSON.parse(l) as { cameras: Record<string, { framesIn: number; processed: number; dropped: number; failures: number }>; outboxDepth: number })[0];
  t.truthy(stopped, stderr);
  const cam = stopped!.cameras.cam1!;
  t.is(cam.framesIn, N);
  t.is(cam.processed + cam.dropped, N, JSON.stringify(cam));
  t.is(cam.failures, 0);
  t.is(stopped!.outboxDepth, 0, 'nothing left in the outbox');
  await until(() => results.length >= cam.processed, 'every processed frame at the subscriber', 10_000).catch(() => {});
  t.is(results.length, cam.processed, 'every processed frame reported before the process exited');
  t.deepEqual(results.map((r) => r.seq), Array.from({ length: cam.processed }, (_, i) => i));
  t.true(results.every((r) => r.model.sha256 === packed.sha256));
  if (cam.dropped > 0) t.log(`${cam.dropped} of ${N} frames dropped (inference busy: newest frame wins)`);
});
