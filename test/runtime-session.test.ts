// ORT sessions over real artifacts (the fixture ViT exported by the compiler), execution-provider
// fallback, batching, and hot reload that keeps the old model when the new one is refused; the
// inference worker (the default engine) against the in-thread one, its errors, crashes and exit.
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { mainEngine } from '../runtime/session/main-engine.ts';
import { inferenceWorker, workerEngine, type WorkerCrash } from '../runtime/session/worker-engine.ts';
import { EventRelay } from '../runtime/app/events.ts';
import { generateKeyPair, loadTrustedKeys, publicKeyPem, readArtifact } from '../runtime/artifact/index.ts';
import { loadProfile, loadProfileFile, listProfiles, preferredPrecision } from '../runtime/config/profile.ts';
import { ModelHost, ModelSession, SessionError } from '../runtime/session/index.ts';
import { repoPath } from './helpers/fixtures.ts';
import { cpuProfile, fixtureModel, LABELS, makeArtifact, referenceLabel, SIZE, solid, tempDir, writeArtifact } from './helpers/runtime-models.ts';

const key = generateKeyPair();
const RED = [255, 0, 0] as const;
const GREEN = [0, 255, 0] as const;

test('EP fallback: cuda fails here, cpu runs, both are reported', async (t) => {
  const a = readArtifact(makeArtifact().bytes, 'fixture.epk');
  const profile = cpuProfile({ executionProviders: [{ name: 'cuda' }, { name: 'cpu' }] });
  const warnings: object[] = [];
  const log = { debug() {}, info() {}, warn: (o: object) => void warnings.push(o), error() {} };
  const s = await ModelSession.create(a, { profile, log });
  t.teardown(() => s.release());
  t.is(s.ep, 'cpu');
  t.deepEqual(s.attempts.map((x) => [x.ep, x.ok]), [['cuda', false], ['cpu', true]]);
  t.regex(s.attempts[0]!.error!, /cuda/i, 'the cuda failure says why');
  t.is(warnings.length, 1);
  const r = await s.run([solid(RED)]);
  t.is(r.predictions[0]!.label, (await referenceLabel(RED)).label);
});

test('EP_ALL_FAILED lists every provider tried', async (t) => {
  const a = readArtifact(makeArtifact().bytes, 'fixture.epk');
  const profile = cpuProfile({ executionProviders: [{ name: 'tensorrt' }, { name: 'cuda' }] });
  const e = await t.throwsAsync(ModelSession.create(a, { profile }), { instanceOf: SessionError });
  t.is(e?.code, 'EP_ALL_FAILED');
  t.deepEqual(e?.attempts.map((x) => x.ep), ['tensorrt', 'cuda']);
  t.regex(e!.message, /tensorrt: .*; cuda: /);
});

for (const inference of ['worker', 'main'] as const) test(`a batch of frames gives the same predictions as one at a time; top-k is sorted (inference in the ${inference} thread)`, async (t) => {
  const s = await ModelSession.create(readArtifact(makeArtifact().bytes), { profile: cpuProfile({ threads: { intraOp: 1, inference } }) });
  t.teardown(() => s.release());
  const frames = [solid(RED), solid(GREEN), solid([0, 0, 255]), solid([10, 20, 30])];
  const batch = await s.run(frames, 3);
  t.is(batch.predictions.length, 4);
  for (const [i, f] of frames.entries()) {
    const one = (await s.run([f], 3)).predictions[0]!;
    const b = batch.predictions[i]!;
    t.is(b.label, one.label);
    t.true(Math.abs(b.score - one.score) < 1e-5);
    t.is(b.topK.length, 3);
    t.true(b.topK[0]!.score >= b.topK[1]!.score && b.topK[1]!.score >= b.topK[2]!.score);
    t.is(b.topK[0]!.label, b.label);
    t.is(b.probs.length, LABELS.length);
  }
  // A frame that is a view into a bigger buffer (as cameras deliver them) works without a copy.
  const big = new Uint8Array(SIZE * SIZE * 3 * 2);
  big.set(solid(RED), SIZE * SIZE * 3);
  t.is((await s.run([big.subarray(SIZE * SIZE * 3)])).predictions[0]!.label, (await referenceLabel(RED)).label);
});

test('a frame of the wrong size is BAD_FRAME naming the expected size', async (t) => {
  const s = await ModelSession.create(readArtifact(makeArtifact().bytes), { profile: cpuProfile({ warmupRuns: 0 }) });
  t.teardown(() => s.release());
  const e = await t.throwsAsync(s.run([new Uint8Array(10)]), { instanceOf: SessionError });
  t.is(e?.code, 'BAD_FRAME');
  t.regex(e!.message, /32x32x3 = 3072/);
});

test('a manifest that disagrees with the graph is SESSION_IO_MISMATCH (not an EP failure)', async (t) => {
  const a = readArtifact(makeArtifact({ labels: ['a', 'b', 'c'], input: { name: 'pixels', height: 32, width: 32, channels: 3, layout: 'NHWC', dtype: 'uint8', resize: 'stretch' } }).bytes, 'wrong.epk');
  const e = await t.throwsAsync(ModelSession.create(a, { profile: cpuProfile() }), { instanceOf: SessionError });
  t.is(e?.code, 'SESSION_IO_MISMATCH');
  t.regex(e!.message, /input pixels is not a graph input/);
  t.regex(e!.message, /10 classes but the manifest has 3 labels/);
});

test('reload: a bad artifact keeps the old model running; a good one swaps in', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const good = await writeArtifact(dir, 'v1.epk', makeArtifact({ version: '1' }, { privateKey: key.privateKey }));
  const host = new ModelHost({ profile: cpuProfile(), trustedKeys: await loadTrustedKeys([publicKeyPem(key.publicKey)]) });
  t.teardown(() => host.close());
  const rejected: string[] = [];
  host.on('rejected', (e) => rejected.push((e as { code?: string }).code ?? '?'));
  await host.load(good);
  const v1 = host.current!;
  t.is(v1.manifest.version, '1');

  const wrongKey = await writeArtifact(dir, 'bob.epk', makeArtifact({ version: '2' }, { privateKey: generateKeyPair().privateKey }));
  const unsigned = await writeArtifact(dir, 'unsigned.epk', makeArtifact({ version: '3' }));
  const truncated = await writeArtifact(dir, 'cut.epk', makeArtifact({ version: '4' }, { privateKey: key.privateKey }).bytes.subarray(0, 5000));
  const garbageModel = await writeArtifact(dir, 'garbage.epk', makeArtifact({ version: '5' }, { privateKey: key.privateKey }, new Uint8Array(4096).fill(7)));
  const resized = await writeArtifact(dir, 'big.epk', makeArtifact({ version: '6', input: { name: 'image', height: 64, width: 64, channels: 3, layout: 'NHWC', dtype: 'uint8', resize: 'stretch' } }, { privateKey: key.privateKey }));
  for (const [file, code] of [
    [wrongKey, 'SIGNATURE_UNKNOWN_KEY'],
    [unsigned, 'ARTIFACT_UNSIGNED'],
    [truncated, 'ARTIFACT_TRUNCATED'],
    [garbageModel, 'EP_ALL_FAILED'],
    [resized, 'RELOAD_INCOMPATIBLE'],
    [join(dir, 'missing.epk'), 'ARTIFACT_UNREADABLE'],
  ] as const) {
    await t.throwsAsync(host.load(file), { code } as never, file);
    t.is(host.current, v1, `${file}: the old session stays`);
    t.is((await host.classify([solid(RED)], 1)).session, v1, 'and keeps classifying');
  }
  t.deepEqual(rejected, ['SIGNATURE_UNKNOWN_KEY', 'ARTIFACT_UNSIGNED', 'ARTIFACT_TRUNCATED', 'EP_ALL_FAILED', 'RELOAD_INCOMPATIBLE', 'ARTIFACT_UNREADABLE']);

  // A reload while a run is in flight: the run finishes on v1, the next one runs on v2.
  const inflight = host.classify([solid(GREEN)], 1);
  await host.load(await writeArtifact(dir, 'v2.epk', makeArtifact({ version: '2' }, { privateKey: key.privateKey })));
  t.is((await inflight).session, v1);
  t.is(host.current!.manifest.version, '2');
  t.is((await host.classify([solid(GREEN)], 1)).session.manifest.version, '2');
  await t.throwsAsync(v1.run([solid(RED)]), { code: 'SESSION_RELEASED' } as never, 'the old session was released after its last run');
});

test('shipped device profiles validate; names resolve; unknown names list the known ones', (t) => {
  const dir = repoPath('devices/profiles');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  t.deepEqual(files.sort(), ['jetson-agx-orin.yaml', 'jetson-orin-nano.yaml', 'x86-cpu.yaml']);
  for (const f of files) {
    const p = loadProfileFile(join(dir, f));
    t.is(`${p.name}.yaml`, f);
  }
  const nano = loadProfile('jetson-orin-nano');
  t.deepEqual(nano.executionProviders.map((e) => e.name), ['tensorrt', 'cuda', 'cpu']);
  t.is(preferredPrecision(nano), 'fp16');
  t.false(nano.threads.spinning);
  t.true(listProfiles().includes('x86-cpu'));
  const e = t.throws(() => loadProfile('jetson-nano-2gb', { from: 'configs/device.yaml' }));
  t.is((e as { code?: string }).code, 'PROFILE_NOT_FOUND');
  t.regex(e!.message, /configs\/device\.yaml: profile "jetson-nano-2gb" not found.*known profiles: jetson-agx-orin, jetson-orin-nano, x86-cpu/);
});

test('the worker and the in-thread engine give the same probabilities, batched and alone', async (t) => {
  const a = readArtifact(makeArtifact().bytes);
  const [w, m] = await Promise.all((['worker', 'main'] as const).map((inference) => ModelSession.create(a, { profile: cpuProfile({ threads: { intraOp: 1, inference } }) })));
  t.teardown(() => Promise.all([w!.release(), m!.release()]));
  const frames = [solid(RED), solid(GREEN), solid([0, 0, 255])];
  for (const batch of [frames, [frames[1]!]]) {
    const [pw, pm] = [(await w!.run(batch)).predictions, (await m!.run(batch)).predictions];
    pw.forEach((p, i) => {
      t.is(p.label, pm[i]!.label);
      t.true(p.probs.every((x, j) => Math.abs(x - pm[i]!.probs[j]!) <= 1e-6), `frame ${i}: ${[...p.probs]} vs ${[...pm[i]!.probs]}`);
    });
  }
  // The frames were copied for the worker, not moved: the caller's buffers are intact.
  t.is(frames[0]!.length, SIZE * SIZE * 3);
  t.deepEqual([...frames[0]!.subarray(0, 3)], [...RED]);
});

test('an ORT error in the worker rejects that run with ORT\'s message, like in-thread; the session keeps working', async (t) => {
  const messages: string[] = [];
  for (const engine of [workerEngine(), mainEngine]) {
    const s = await engine.open(fixtureModel(), { executionProviders: ['cpu'], intraOpNumThreads: 1 }, 'fixture.onnx');
    t.teardown(() => s.release());
    const wrong = new ort.Tensor('uint8', engine.frameBuffer(16 * 16 * 3), [1, 16, 16, 3]); // the model takes 32x32
    const e = await t.throwsAsync(s.run({ image: wrong }, ['probs']));
    messages.push(e!.message);
    const right = engine.frameBuffer(SIZE * SIZE * 3);
    right.set(solid(RED));
    const out = await s.run({ image: new ort.Tensor('uint8', right, [1, SIZE, SIZE, 3]) }, ['probs']);
    t.deepEqual(out.probs!.dims, [1, LABELS.length], `${engine.kind}: runs after the error`);
  }
  t.regex(messages[0]!, /invalid dimensions for input: image[\s\S]*Got: 16 Expected: 32/);
  t.is(messages[0], messages[1]);
});

test.serial('a crashed inference worker: runs in flight reject with the reason, the host reports it, a new worker reopens the model', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const errors: { obj: object; msg: string }[] = [];
  const log = { debug() {}, info() {}, warn() {}, error: (obj: object, msg: string) => void errors.push({ obj, msg }) };
  const host = new ModelHost({ profile: cpuProfile(), trustedKeys: await loadTrustedKeys([publicKeyPem(key.publicKey)]), log });
  t.teardown(() => host.close());
  await host.load(await writeArtifact(dir, 'v1.epk', makeArtifact({}, { privateKey: key.privateKey })));
  const before = (await host.classify([solid(RED)], 3)).predictions[0]!;
  const worker = inferenceWorker();
  const thread = worker.threadId;
  t.not(thread, null);

  const crashed = once(host, 'workerCrashed') as Promise<[WorkerCrash]>;
  const restarted = once(host, 'workerRestarted');
  worker.crashForTest();
  const e = await t.throwsAsync(host.classify([solid(RED)], 3), { instanceOf: SessionError });
  t.is(e?.code, 'INFERENCE_FAILED');
  t.regex(e!.message, /v1\.epk: inference failed on cpu: the inference worker exited \(code 1: crash requested \(test\)\) during a run of .*v1\.epk; it is restarted/);
  const [crash] = await crashed;
  t.like(crash, { code: 1, error: 'crash requested (test)', reopening: 1 });
  t.true(crash.inFlight >= 1);
  t.is(errors[0]?.msg, 'model: the inference worker crashed; restarting it');
  // What the device reports over MQTT for it (runtime.ts relays the host's event).
  const published: { type: string; code?: string; message?: string }[] = [];
  new EventRelay({ publishEvent: (e) => void published.push(e) }).workerCrashed(crash);
  t.like(published, [{ type: 'error', code: 'INFERENCE_WORKER_CRASHED' }]);
  t.regex(published[0]!.message!, /^the inference worker exited \(code 1: crash requested \(test\)\); \d+ run\(s\) in flight failed; reopening 1 session\(s\) in a new worker$/);
  await restarted;
  t.not(worker.threadId, null);
  t.not(worker.threadId, thread, 'a new worker thread');
  const after = (await host.classify([solid(RED)], 3)).predictions[0]!;
  t.is(after.label, before.label);
  t.deepEqual([...after.probs], [...before.probs], 'the reopened model gives the same result');
});

test.serial('closing the host terminates the inference worker; a process that never closes still exits', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const file = await writeArtifact(dir, 'v1.epk', makeArtifact({}, { privateKey: key.privateKey }));
  const host = new ModelHost({ profile: cpuProfile(), trustedKeys: await loadTrustedKeys([publicKeyPem(key.publicKey)]) });
  await host.load(file);
  await host.classify([solid(RED)], 1);
  t.not(inferenceWorker().threadId, null);
  await host.close();
  t.is(inferenceWorker().threadId, null, 'no worker left after close');

  // In a child process: one run, then either close() or nothing; either way the process ends by
  // itself (the worker holds the event loop only while a request is outstanding).
  const mod = (p: string) => JSON.stringify(pathToFileURL(repoPath(p)).href);
  for (const close of [true, false]) {
    const script = join(dir, `child-${close}.mts`); // .mts: an ES module (top-level await) outside the package
    await writeFile(
      script,
      [
        `import { ModelHost } from ${mod('runtime/session/host.ts')};`,
        `import { inferenceWorker } from ${mod('runtime/session/worker-engine.ts')};`,
        `import { cpuProfile, solid } from ${mod('test/helpers/runtime-models.ts')};`,
        `const host = new ModelHost({ profile: cpuProfile(), trustedKeys: [], allowUnsigned: true });`,
        `await host.load(${JSON.stringify(join(dir, 'unsigned.epk'))});`,
        `const r = await host.classify([solid([255, 0, 0])], 1);`,
        close ? `await host.close(); console.log(r.predictions[0].label, inferenceWorker().threadId);` : `console.log(r.predictions[0].label, inferenceWorker().threadId !== null);`,
      ].join('\n'),
    );
    await writeArtifact(dir, 'unsigned.epk', makeArtifact());
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoPath('.'), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    clearTimeout(timer);
    t.is(signal, null, `close=${close}: exited by itself (not killed after 30 s): ${out}`);
    t.is(code, 0, out);
    t.is(out.trim().split('\n').at(-1), `${(await referenceLabel(RED)).label} ${close ? 'null' : 'true'}`);
  }
});
