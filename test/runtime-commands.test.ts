// MQTT commands against a running device (aedes in process, synthetic cameras, the fixture model):
// set-threshold, pause/resume, snapshot, trigger, reload (a refused artifact keeps the old model),
// ping — and the retained state following each change.
import test from 'ava';
import { join } from 'node:path';
import sharp from 'sharp';
import { renderSynthetic } from '../devices/cameras/synthetic.ts';
import { generateKeyPair, publicKeyPem } from '../runtime/artifact/index.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { connectCommandClient } from '../runtime/mqtt/command-client.ts';
import { subscribeResults, subscribeState } from '../runtime/mqtt/client.ts';
import type { ReplyPayload, ResultPayload, StatePayload } from '../runtime/schema/payloads.ts';
import { record, recordingLog, startAedes, until } from './helpers/brokers.ts';
import { makeArtifact, SIZE, tempDir, writeArtifact } from './helpers/runtime-models.ts';

function ok<T extends ReplyPayload>(t: import('ava').ExecutionContext, r: T) {
  t.true(r.ok, JSON.stringify(r));
  return r;
}

test('commands change the running device, and refused ones change nothing', async (t) => {
  t.timeout(25_000);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const key = generateKeyPair();
  const v1 = makeArtifact({ version: '1' }, { privateKey: key.privateKey });
  const v2 = makeArtifact({ version: '2' }, { privateKey: key.privateKey });
  await writeArtifact(dir, 'model.epk', v1);
  await writeArtifact(dir, 'v2.epk', v2);
  await writeArtifact(dir, 'wrong-key.epk', makeArtifact({ version: '3' }, { privateKey: generateKeyPair().privateKey }));
  const broker = await startAedes();
  t.teardown(() => broker.stop());

  const results: ResultPayload[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: 'd1' }, (m) => void results.push(m.result));
  const states: StatePayload[] = [];
  const ssub = subscribeState({ url: broker.url, protocolVersion: 4, device: 'd1' }, (s) => void states.push(s));
  const events = await record(broker.url, 'edgeprompt/v1/d1/event', { protocolVersion: 4 });
  const cmd = await connectCommandClient({ url: broker.url, protocolVersion: 4 });
  t.teardown(async () => {
    await Promise.all([sub.close(), ssub.close(), events.close(), cmd.close()]);
  });
  await Promise.all([sub.ready, ssub.ready]);

  const cfg = parseDeviceConfig(
    {
      device: 'd1',
      artifact: 'model.epk',
      trustedKeys: [publicKeyPem(key.publicKey)],
      profile: { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1 },
      cameras: [
        { id: 'a', kind: 'synthetic', fps: 20, pattern: 'bars', seed: 3 },
        { id: 'b', kind: 'synthetic', fps: 20, seed: 4 },
      ],
      triggers: { b: { kind: 'mqtt', expireMs: 300 } },
      mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 100 },
      outbox: { kind: 'memory' },
      health: { intervalMs: 0 },
    },
    join(dir, 'device.yaml'),
  );
  const rt = await Runtime.start(cfg, { log: recordingLog().log });
  t.teardown(() => rt.stop());
  const fromA = () => results.filter((r) => r.camera === 'a');
  await until(() => fromA().length >= 3, 'results from camera a');
  t.false(results.some((r) => r.camera === 'b'), 'camera b waits for its MQTT trigger');

  // ping (answered by the reporter)
  const ping = ok(t, await cmd.send('d1', 'ping'));
  t.true(ping.ok && ping.command === 'ping' && ping.data.bootId === rt.reporter.bootId);

  // set-threshold: camera a to 1.0 → every later result from a is NG.
  const st = ok(t, await cmd.send('d1', 'set-threshold', { threshold: 1, camera: 'a' }));
  t.true(st.ok && st.command === 'set-threshold' && st.data.thresholds.cameras.a === 1 && st.data.thresholds.default === 0.1);
  const mark = results.length;
  await until(() => results.slice(mark).filter((r) => r.camera === 'a').length >= 3, 'results after set-threshold');
  t.true(results.slice(mark + 1).filter((r) => r.camera === 'a').every((r) => r.decision === 'NG'));
  await until(() => states.at(-1)?.thresholds.cameras.a === 1, 'retained state carries the threshold');

  // pause / resume camera a
  const p = ok(t, await cmd.send('d1', 'pause', { camera: 'a' }));
  t.deepEqual(p.ok && p.data, { paused: false, pausedCameras: ['a'] });
  await new Promise((r) => setTimeout(r, 300)); // let results already in flight land
  const pausedAt = fromA().length;
  await new Promise((r) => setTimeout(r, 400));
  t.is(fromA().length, pausedAt, 'no results while paused');
  await until(() => states.at(-1)?.pausedCameras.includes('a') === true, 'state says paused');
  ok(t, await cmd.send('d1', 'resume'));
  await until(() => fromA().length > pausedAt + 2, 'results again after resume');

  // snapshot: the last frame as PNG, pixel-exact
  const snap = ok(t, await cmd.send('d1', 'snapshot', { camera: 'a', format: 'png' }));
  if (!(snap.ok && snap.command === 'snapshot')) return t.fail();
  t.is(snap.data.contentType, 'image/png');
  const { data, info } = await sharp(Buffer.from(snap.data.dataBase64, 'base64')).raw().toBuffer({ resolveWithObject: true });
  t.deepEqual([info.width, info.height, info.channels], [SIZE, SIZE, 3]);
  const expected = renderSynthetic({ format: { width: SIZE, height: SIZE, channels: 3 }, seed: 3, fps: 20, pattern: 'bars' }, Number(snap.data.frameId)).data;
  t.deepEqual(Buffer.from(data), Buffer.from(expected));
  const unknown = await cmd.send('d1', 'snapshot', { camera: 'zz' });
  t.true(!unknown.ok && unknown.error.code === 'CAMERA_UNKNOWN');

  // trigger: camera b reports exactly the triggered frame, with the trigger id
  const trig = ok(t, await cmd.send('d1', 'trigger', { camera: 'b', triggerId: 'job-1' }));
  t.true(trig.ok && trig.command === 'trigger' && trig.data.triggerId === 'job-1');
  await until(() => results.some((r) => r.camera === 'b'), 'the triggered result');
  const rb = results.filter((r) => r.camera === 'b');
  t.is(rb.length, 1);
  t.is(rb[0]!.triggerId, 'job-1');
  t.true(typeof rb[0]!.latency.triggerToCaptureMs === 'number');
  const free = await cmd.send('d1', 'trigger', { camera: 'a' });
  t.true(!free.ok && free.error.code === 'NOT_MQTT_TRIGGERED');
  // A trigger on a paused camera gets no frame: it expires, and the device says so.
  ok(t, await cmd.send('d1', 'pause', { camera: 'b' }));
  ok(t, await cmd.send('d1', 'trigger', { camera: 'b', triggerId: 'job-2' }));
  const expired = await events.waitFor((m) => (m.json() as { code?: string }).code === 'TRIGGER_EXPIRED', 'TRIGGER_EXPIRED event');
  t.regex((expired.json() as { message: string }).message, /job-2/);
  ok(t, await cmd.send('d1', 'resume', { camera: 'b' }));
  t.false(results.some((r) => r.triggerId === 'job-2'));

  // reload: a wrong-key artifact is refused, the old model keeps running; v2 swaps in; no args = configured file
  const bad = await cmd.send('d1', 'reload', { artifact: 'wrong-key.epk' }, { timeoutMs: 10_000 });
  t.true(!bad.ok && bad.error.code === 'SIGNATURE_UNKNOWN_KEY', JSON.stringify(bad));
  await events.waitFor((m) => (m.json() as { type: string }).type === 'model-rejected', 'model-rejected event');
  const afterBad = results.length;
  await until(() => results.length > afterBad + 2, 'results continue after a refused reload');
  t.true(results.slice(afterBad).every((r) => r.model.sha256 === v1.sha256), 'still the old model');
  const good = ok(t, await cmd.send('d1', 'reload', { artifact: join(dir, 'v2.epk') }, { timeoutMs: 10_000 }));
  t.true(good.ok && good.command === 'reload' && good.data.model.sha256 === v2.sha256 && good.data.ep === 'cpu');
  const afterGood = results.length;
  await until(() => results.slice(afterGood).some((r) => r.model.sha256 === v2.sha256), 'results from v2');
  await until(() => states.at(-1)?.model?.version === '2', 'retained state names v2');
  const back = ok(t, await cmd.send('d1', 'reload', {}, { timeoutMs: 10_000 }));
  t.true(back.ok && back.command === 'reload' && back.data.model.sha256 === v1.sha256);

  // seq stayed continuous through all of it
  await rt.stop({ drainMs: 2000 });
  await until(() => results.length >= rt.outbox.nextId, 'every stored result delivered');
  const seqs = results.map((r) => r.seq);
  t.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i));
});
