// ORT sessions over real artifacts (the fixture ViT exported by the compiler), execution-provider
// fallback, batching, and hot reload that keeps the old model when the new one is refused.
import test from 'ava';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, loadTrustedKeys, publicKeyPem, readArtifact } from '../runtime/artifact/index.ts';
import { loadProfile, loadProfileFile, listProfiles, preferredPrecision } from '../runtime/config/profile.ts';
import { ModelHost, ModelSession, SessionError } from '../runtime/session/index.ts';
import { repoPath } from './helpers/fixtures.ts';
import { cpuProfile, LABELS, makeArtifact, referenceLabel, SIZE, solid, tempDir, writeArtifact } from './helpers/runtime-models.ts';

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

test('a batch of frames gives the same predictions as one at a time; top-k is sorted', async (t) => {
  const s = await ModelSession.create(readArtifact(makeArtifact().bytes), { profile: cpuProfile() });
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
