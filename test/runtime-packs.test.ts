// Prompt packs on a shared backbone, from the device's side: packs are read and trusted like
// artifacts (every kind of damage is refused with its code), must fit their backbone, run per
// camera on ONE session, and swap in between batches without reopening it — by ModelHost.load,
// by the MQTT `reload` command on a running device — while a refused pack leaves the running one.
import test from 'ava';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { encodeSafetensors } from '../compiler/backbones/safetensors.ts';
import {
  checkPackFits,
  generateKeyPair,
  isBackbone,
  loadTrustedKeys,
  packPromptPack,
  publicKeyPem,
  readArtifact,
  readModelArtifact,
  readPromptPack,
  readSignedFile,
  verifyArtifact,
  type BackboneArtifact,
} from '../runtime/artifact/index.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig, type DeviceConfigInput } from '../runtime/config/device-config.ts';
import { ConfigError } from '../runtime/config/errors.ts';
import { connectCommandClient } from '../runtime/mqtt/command-client.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { ModelHost, ModelSession } from '../runtime/session/index.ts';
import { recordingLog, startAedes, until } from './helpers/brokers.ts';
import { cpuProfile, makeArtifact, solid, tempDir, writeArtifact } from './helpers/runtime-models.ts';
import { backboneArtifact, fusedArtifact, promptPack, backbonePackTask, type BackbonePackTask } from './helpers/backbone-pack-models.ts';

const key = generateKeyPair();
const sign = { privateKey: key.privateKey };
const FRAMES = [solid([255, 0, 0]), solid([0, 255, 0]), solid([0, 0, 255]), solid([40, 90, 200])];

let A: BackbonePackTask; // task a: 10 labels
let B: BackbonePackTask; // task b: another task of the same backbone, 4 labels
let bbBytes: Buffer;
let bb: BackboneArtifact;
test.before(async () => {
  [A, B] = await Promise.all([backbonePackTask(11, { classes: 10 }), backbonePackTask(12, { classes: 4 })]);
  bbBytes = backboneArtifact(A, sign).bytes;
  bb = readModelArtifact(bbBytes, 'backbone.epk') as BackboneArtifact;
});

const packA = (over = {}, opts: object = sign) => promptPack(A, bb.manifest.model.sha256, { name: 'task-a', version: '1', ...over }, opts);
const packB = (over = {}) => promptPack(B, bb.manifest.model.sha256, { name: 'task-b', version: '1', ...over }, sign);
const labelsOf = async (task: { run(f: readonly Uint8Array[], k?: number): Promise<{ predictions: { label: string }[] }> }) => (await task.run(FRAMES, 1)).predictions.map((p) => p.label);

test('.epk and .epp are told apart, and each reader refuses the other kind', (t) => {
  t.true(isBackbone(bb));
  t.is(readSignedFile(bbBytes, 'b.epk').kind, 'backbone');
  t.is(readSignedFile(packA().bytes, 'a.epp').kind, 'pack');
  t.is(readSignedFile(makeArtifact().bytes, 'f.epk').kind, 'fused');
  t.throws(() => readArtifact(bbBytes, 'b.epk'), { code: 'ARTIFACT_KIND', message: /b\.epk: is a shared-backbone artifact: it runs only with a prompt pack/ } as never);
  t.throws(() => readPromptPack(bbBytes, 'b.epk'), { code: 'ARTIFACT_KIND', message: /this is a model artifact, \.epk, not a prompt pack/ } as never);
  t.throws(() => readModelArtifact(packA().bytes, 'a.epp'), { code: 'ARTIFACT_KIND', message: /this is a prompt pack, \.epp/ } as never);
});

test('a damaged or untrusted pack is refused with its code', async (t) => {
  const keys = await loadTrustedKeys([publicKeyPem(key.publicKey)]);
  const good = packA();
  const p = readPromptPack(good.bytes, 'a.epp');
  t.true(verifyArtifact(p, keys).verified);
  t.deepEqual([...p.tensors.keys()].sort(), A.split.inputs.map((i) => i.name).sort());

  const tensorsAt = good.bytes.indexOf(Buffer.from('blocks.0.attn.prompt_k')) + 400; // inside tensors.safetensors data
  const flipped = Buffer.from(good.bytes);
  flipped[tensorsAt] = flipped[tensorsAt]! ^ 1;
  t.throws(() => readPromptPack(flipped, 'flip.epp'), { code: 'MODEL_DIGEST_MISMATCH', message: /tensors\.safetensors has sha256 .* but manifest\.tensors\.sha256 says/ } as never);

  const relabeled = Buffer.from(good.bytes);
  const at = relabeled.indexOf(Buffer.from('"minConfidence": 0'));
  relabeled.write('"minConfidence": 1', at); // still valid JSON and schema: only the signature catches it
  const e = t.throws(() => verifyArtifact(readPromptPack(relabeled, 'edit.epp'), keys), { code: 'SIGNATURE_INVALID' } as never);
  t.regex(e!.message, /manifest\.json changed after signing/);

  t.throws(() => verifyArtifact(readPromptPack(packA({}, { privateKey: generateKeyPair().privateKey }).bytes, 'k.epp'), keys), { code: 'SIGNATURE_UNKNOWN_KEY' } as never);
  t.throws(() => verifyArtifact(readPromptPack(packA({}, {}).bytes, 'u.epp'), keys), { code: 'ARTIFACT_UNSIGNED' } as never);
  t.throws(() => readPromptPack(good.bytes.subarray(0, 3000), 'cut.epp'), { code: 'ARTIFACT_TRUNCATED' } as never);
  t.throws(() => packA({ thresholds: { okLabels: ['nope'], minConfidence: 0.5 } }), { code: 'MANIFEST_INVALID', message: /thresholds\.okLabels\[0\]: "nope" is not one of labels/ } as never);
  t.throws(() => packPromptPack({ manifest: {} as never, tensors: new Uint8Array(4) }), { code: 'PACK_TENSORS_INVALID' } as never);
});

test('a pack for another backbone, or with tensors of the wrong shape, does not fit: clear error naming what differs', (t) => {
  const other = readPromptPack(promptPack(A, 'c'.repeat(64), {}, sign).bytes, 'other.epp');
  t.throws(() => checkPackFits(other, bb), { code: 'PACK_BACKBONE_MISMATCH', message: /other\.epp: fits the shared backbone whose model\.onnx has sha256 cccccccccccccccc… .* but backbone\.epk has [0-9a-f]{16}…/ } as never);
  // Right digest, wrong tensors (a buggy or foreign packer, signed anyway).
  const t0 = A.split.tensors;
  const bad = new Map(t0);
  bad.set('blocks.1.attn.prompt_k', { shape: [3, 5, 32], data: new Float32Array(3 * 5 * 32) });
  bad.delete('blocks.2.attn.prompt_v');
  bad.set('extra', { shape: [1], data: new Float32Array(1) });
  const misshapen = readPromptPack(promptPack(A, bb.manifest.model.sha256, {}, sign, bad).bytes, 'shape.epp');
  const e = t.throws(() => checkPackFits(misshapen, bb), { code: 'PACK_SHAPE_MISMATCH' } as never);
  t.regex(e!.message, /blocks\.1\.attn\.prompt_k is \[3, 5, 32\], the backbone takes \[3, 2, 32\]/);
  t.regex(e!.message, /blocks\.2\.attn\.prompt_v is missing/);
  t.regex(e!.message, /extra is not an input of the backbone/);
  // A head for 10 classes with 4 labels: the class dimension binds to the labels.
  const wrongLabels = readPromptPack(promptPack(A, bb.manifest.model.sha256, { labels: ['a', 'b', 'c', 'd'] }, sign).bytes, 'labels.epp');
  t.throws(() => checkPackFits(wrongLabels, bb), { code: 'PACK_SHAPE_MISMATCH', message: /head\.weight is \[10, 96\], the backbone takes \[classes, 96\] with classes = 4 labels/ } as never);
});

test('one backbone session serves packs per camera; its results equal each task\'s fused artifact', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const bbFile = await writeArtifact(dir, 'backbone.epk', bbBytes);
  const aFile = await writeArtifact(dir, 'a.epp', packA().bytes);
  const bFile = await writeArtifact(dir, 'b.epp', packB().bytes);
  const host = new ModelHost({ profile: cpuProfile(), trustedKeys: await loadTrustedKeys([publicKeyPem(key.publicKey)]), packs: { default: aFile, cameras: { cam2: bFile } } });
  t.teardown(() => host.close());
  const info = await host.load(bbFile);
  t.is(info.session.prompt!.name, 'task-a');
  t.is(host.packFor('cam1')!.pack.manifest.name, 'task-a', 'no own pack: the default');
  t.is(host.packFor('cam2')!.pack.manifest.name, 'task-b');
  t.is(host.packFor('cam1')!.session, host.packFor('cam2')!.session, 'one ORT session for both tasks');

  const fusedA = await ModelSession.create(readArtifact(fusedArtifact(A).bytes), { profile: cpuProfile() });
  const fusedB = await ModelSession.create(readArtifact(fusedArtifact(B).bytes), { profile: cpuProfile() });
  t.teardown(async () => void (await Promise.all([fusedA.release(), fusedB.release()])));
  const cams = ['cam1', 'cam2', 'cam2', 'cam1'];
  const r = await host.classify(FRAMES, 3, cams);
  const wantA = (await fusedA.run(FRAMES, 3)).predictions;
  const wantB = (await fusedB.run(FRAMES, 3)).predictions;
  r.predictions.forEach((p, i) => {
    const want = cams[i] === 'cam1' ? wantA[i]! : wantB[i]!;
    t.is(p.task!.prompt!.name, cams[i] === 'cam1' ? 'task-a' : 'task-b');
    t.is(p.label, `${cams[i] === 'cam1' ? 't11' : 't12'}c${want.index}`, 'each frame is decided with its camera\'s labels');
    t.true(Math.abs(p.score - want.score) < 1e-5);
    t.is(p.probs.length, cams[i] === 'cam1' ? 10 : 4);
  });
  t.deepEqual(r.predictions[0]!.task!.ref, { name: 'fixture-backbone', version: '1.0.0', sha256: bb.sha256 });
});

test('hot swap: a new pack version runs from the next batch on, on the same session; refused packs change nothing', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const keys = await loadTrustedKeys([publicKeyPem(key.publicKey)]);
  const bbFile = await writeArtifact(dir, 'backbone.epk', bbBytes);
  const host = new ModelHost({ profile: cpuProfile(), trustedKeys: keys, packs: { default: await writeArtifact(dir, 'a1.epp', packA().bytes) } });
  t.teardown(() => host.close());
  await host.load(bbFile);
  const v1 = host.packFor('cam1')!;
  const session = v1.session;
  const rejected: string[] = [];
  host.on('rejected', (e) => rejected.push((e as { code?: string }).code ?? '?'));

  const otherBackbone = await writeArtifact(dir, 'other.epp', promptPack(A, 'd'.repeat(64), { name: 'task-a', version: '9' }, sign).bytes);
  const wrongKey = await writeArtifact(dir, 'key.epp', packA({ version: '9' }, { privateKey: generateKeyPair().privateKey }).bytes);
  const shapes = new Map(A.split.tensors);
  shapes.set('head.bias', { shape: [7], data: new Float32Array(7) });
  const misshapen = await writeArtifact(dir, 'shape.epp', promptPack(A, bb.manifest.model.sha256, { version: '9' }, sign, shapes).bytes);
  const anEpk = await writeArtifact(dir, 'fused.epk', fusedArtifact(A, sign).bytes);
  for (const [file, code] of [
    [otherBackbone, 'PACK_BACKBONE_MISMATCH'],
    [wrongKey, 'SIGNATURE_UNKNOWN_KEY'],
    [misshapen, 'PACK_SHAPE_MISMATCH'],
    [join(dir, 'missing.epp'), 'ARTIFACT_UNREADABLE'],
  ] as const) {
    await t.throwsAsync(host.load(file), { code } as never, file);
    t.is(host.packFor('cam1'), v1, `${file}: the running pack stays`);
    t.is((await host.classify(FRAMES.slice(0, 1), 1, ['cam1'])).session, v1);
  }
  t.deepEqual(rejected, ['PACK_BACKBONE_MISMATCH', 'SIGNATURE_UNKNOWN_KEY', 'PACK_SHAPE_MISMATCH', 'ARTIFACT_UNREADABLE']);

  // The swap happens between batches: a batch in flight finishes with v1, the next runs v2.
  const v2Pack = promptPack(B, bb.manifest.model.sha256, { name: 'task-a', version: '2' }, sign); // same task name, new version (now 4 labels)
  const inflight = host.classify(FRAMES, 1, ['cam1', 'cam1', 'cam1', 'cam1']);
  const loaded = await host.load(await writeArtifact(dir, 'a2.epp', v2Pack.bytes));
  t.deepEqual(loaded.pack!.slots, ['*']);
  const before = await inflight;
  t.true(before.predictions.every((p) => p.task === v1));
  const after = await host.classify(FRAMES, 1, ['cam1', 'cam1', 'cam1', 'cam1']);
  t.true(after.predictions.every((p) => p.task!.prompt!.version === '2' && p.task!.prompt!.sha256 === readPromptPack(v2Pack.bytes).sha256));
  const fusedB = await ModelSession.create(readArtifact(fusedArtifact(B).bytes), { profile: cpuProfile() });
  t.teardown(() => fusedB.release());
  t.deepEqual(after.predictions.map((p) => p.label), await labelsOf(fusedB));
  t.is(host.packFor('cam1')!.session, session, 'the session was not reopened');
  t.deepEqual(await labelsOf(v1), before.predictions.map((p) => p.label), 'the old pack still binds (nothing was released)');

  // A fused .epk is a model reload: the packs go with the backbone.
  await host.load(anEpk);
  t.false(host.shared);
  await t.throwsAsync(host.load(await writeArtifact(dir, 'a3.epp', packA({ version: '3' }).bytes)), { code: 'NOT_SHARED', message: /a prompt pack runs on a shared-backbone artifact, but this device runs the fused artifact/ } as never);
});

test('reloading the backbone rebinds the running packs to the new session; several packs make a differently named one ambiguous', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const bbFile = await writeArtifact(dir, 'backbone.epk', bbBytes);
  const host = new ModelHost({ profile: cpuProfile(), trustedKeys: await loadTrustedKeys([publicKeyPem(key.publicKey)]), packs: { cameras: { cam1: await writeArtifact(dir, 'a.epp', packA().bytes), cam2: await writeArtifact(dir, 'b.epp', packB().bytes) } } });
  t.teardown(() => host.close());
  await host.load(bbFile);
  const s1 = host.packFor('cam1')!.session;
  t.is(host.packFor('cam3'), null, 'no default pack: a camera without its own has none');
  await t.throwsAsync(host.classify(FRAMES.slice(0, 1), 1, ['cam3']), { code: 'NO_PACK', message: /camera cam3 has no prompt pack/ } as never);
  await t.throwsAsync(host.load(await writeArtifact(dir, 'c.epp', packA({ name: 'task-c' }).bytes)), { code: 'PACK_AMBIGUOUS', message: /this device runs task-a, task-b/ } as never);
  await host.load(bbFile);
  const s2 = host.packFor('cam1')!.session;
  t.not(s2, s1, 'a new session');
  t.is(host.packFor('cam2')!.session, s2);
  t.deepEqual([host.packFor('cam1')!.prompt!.name, host.packFor('cam2')!.prompt!.name], ['task-a', 'task-b']);
  await t.throwsAsync(s1.run(FRAMES, 1, host.packFor('cam1')!), { code: 'NO_PACK' } as never, 'a task of the new session does not run on the old one');
});

function deviceConfig(dir: string, url: string, over: Partial<DeviceConfigInput> = {}) {
  return parseDeviceConfig(
    {
      device: 'd1',
      artifact: 'backbone.epk',
      pack: 'a.epp',
      packs: { cam2: 'b.epp' },
      trustedKeys: [publicKeyPem(key.publicKey)],
      profile: { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1, maxBatch: 4 },
      cameras: [
        { id: 'cam1', kind: 'synthetic', fps: 25, pattern: 'bars', seed: 3 },
        { id: 'cam2', kind: 'synthetic', fps: 25, seed: 4 },
      ],
      mqtt: { url, protocolVersion: 4, reconnectPeriodMs: 100 },
      outbox: { kind: 'memory' },
      health: { intervalMs: 0 },
      ...over,
    },
    join(dir, 'device.yaml'),
  );
}

test('a running device: packs per camera, `reload` of a new pack over MQTT swaps it between frames, no result lost', async (t) => {
  t.timeout(40_000);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeArtifact(dir, 'backbone.epk', bbBytes);
  await writeArtifact(dir, 'a.epp', packA().bytes);
  await writeArtifact(dir, 'b.epp', packB().bytes);
  const a2 = packA({ version: '2', thresholds: { minConfidence: 1 } }); // every result NG: visible in the decisions too
  await writeArtifact(dir, 'a2.epp', a2.bytes);
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const results: ResultPayload[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: 'd1' }, (m) => void results.push(m.result));
  const cmd = await connectCommandClient({ url: broker.url, protocolVersion: 4 });
  t.teardown(async () => void (await Promise.all([sub.close(), cmd.close()])));
  await sub.ready;

  const rt = await Runtime.start(deviceConfig(dir, broker.url), { log: recordingLog().log });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : rt.stop()));
  await until(() => results.filter((r) => r.camera === 'cam1').length >= 5 && results.some((r) => r.camera === 'cam2'), 'results from both cameras', 10_000);
  const backboneRef = { name: 'fixture-backbone', version: '1.0.0', sha256: bb.sha256 };
  for (const r of results) {
    t.deepEqual(r.model, backboneRef);
    t.is(r.prompt!.name, r.camera === 'cam1' ? 'task-a' : 'task-b');
    t.true(r.label.startsWith(r.camera === 'cam1' ? 't11' : 't12'));
  }

  const reply = await cmd.send('d1', 'reload', { artifact: 'a2.epp' });
  t.true(reply.ok, JSON.stringify(reply));
  const swappedAt = results.length;
  await until(() => results.slice(swappedAt).filter((r) => r.camera === 'cam1' && r.prompt?.version === '2').length >= 5, 'results with the new pack', 10_000);
  const refused = await cmd.send('d1', 'reload', { artifact: 'missing.epp' });
  t.true(!refused.ok && refused.error.code === 'ARTIFACT_UNREADABLE');
  await rt.stop({ drainMs: 5000 });
  stopped = true;
  await until(() => results.length >= rt.pipeline.stats().cam1!.processed + rt.pipeline.stats().cam2!.processed, 'every processed frame delivered', 5000);

  // None lost: one result per processed frame, seq without gaps, no inference failure.
  const stats = rt.pipeline.stats();
  t.is(stats.cam1!.failures + stats.cam2!.failures, 0);
  t.is(results.length, stats.cam1!.processed + stats.cam2!.processed);
  const seqs = results.map((r) => r.seq).sort((x, y) => x - y);
  t.deepEqual(seqs, seqs.map((_, i) => seqs[0]! + i));
  // Per camera in frame order the pack changes once (cam1: v1 → v2) or never (cam2).
  const a2Sha = readPromptPack(a2.bytes).sha256;
  for (const cam of ['cam1', 'cam2']) {
    const versions = results.filter((r) => r.camera === cam).sort((x, y) => Number(x.frameId) - Number(y.frameId)).map((r) => `${r.prompt!.name}@${r.prompt!.version}`);
    const changes = versions.filter((v, i) => i > 0 && v !== versions[i - 1]).length;
    t.is(changes, cam === 'cam1' ? 1 : 0, `${cam}: ${[...new Set(versions)].join(' → ')}`);
  }
  const after = results.filter((r) => r.prompt?.version === '2');
  t.true(after.every((r) => r.camera === 'cam1' && r.prompt!.sha256 === a2Sha && r.decision === 'NG'));
});

test('device config: packs are validated by field; a fused artifact with packs and a camera without one are refused at start', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeArtifact(dir, 'backbone.epk', bbBytes);
  await writeArtifact(dir, 'a.epp', packA().bytes);
  await writeArtifact(dir, 'b.epp', packB().bytes);
  await writeArtifact(dir, 'fused.epk', makeArtifact({}, sign));
  const url = 'mqtt://127.0.0.1:1';
  const e1 = t.throws(() => deviceConfig(dir, url, { packs: { cam9: 'b.epp' } }), { instanceOf: ConfigError });
  t.regex(e1!.message, /packs\.cam9: names camera "cam9", which is not in cameras \(cam1, cam2\)/);
  const e2 = t.throws(() => deviceConfig(dir, url, { pack: '' }), { instanceOf: ConfigError });
  t.regex(e2!.message, /invalid device config: pack: .*\(got ""\)/);
  const cfg = deviceConfig(dir, url);
  t.is(cfg.pack, join(dir, 'a.epp'), 'relative to the config file');
  t.deepEqual(cfg.packs, { cam2: join(dir, 'b.epp') });

  const fused = await t.throwsAsync(Runtime.start(deviceConfig(dir, url, { artifact: 'fused.epk' }), { log: recordingLog().log }), { instanceOf: ConfigError });
  t.regex(fused!.message, /\n {2}pack: .*fused\.epk is a fused artifact; prompt packs run on a shared-backbone artifact/);
  t.regex(fused!.message, /\n {2}packs\.cam2: /);
  const noPack = await t.throwsAsync(Runtime.start(deviceConfig(dir, url, { pack: undefined }), { log: recordingLog().log }), { instanceOf: ConfigError });
  t.regex(noPack!.message, /invalid device config: pack: camera cam1 has no prompt pack for the shared backbone .*backbone\.epk: set pack \(every camera\) or packs\.cam1/);
  const none = await t.throwsAsync(Runtime.start(deviceConfig(dir, url, { pack: undefined, packs: {} }), { log: recordingLog().log }));
  t.is((none as { code?: string }).code, 'NO_PACK');
  t.regex(none!.message, /is a shared backbone, which runs prompt packs: name one in the device config \(pack: task\.epp, or packs\.<camera>\)/);
  await writeFile(join(dir, 'not-a-pack.epp'), bbBytes);
  const wrong = await t.throwsAsync(Runtime.start(deviceConfig(dir, url, { pack: 'not-a-pack.epp' }), { log: recordingLog().log }));
  t.is((wrong as { code?: string }).code, 'ARTIFACT_KIND');
});

// Keeps the compiler's safetensors writer and the runtime's strict reader in step.
test('pack tensors: the runtime reads exactly what the compiler writes', (t) => {
  const p = readPromptPack(packPromptPack({ manifest: { ...readPromptPack(packA().bytes).manifest }, tensors: encodeSafetensors(A.split.tensors) }).bytes);
  for (const [k, v] of A.split.tensors) {
    t.deepEqual(p.tensors.get(k)!.shape, [...v.shape]);
    t.deepEqual(p.tensors.get(k)!.data, v.data);
  }
});
