// The data loop on a running device with real parts: a broker (aedes in process; mosquitto for the
// restart case), the device runtime with a real model, a socat pty pair for the PLC.
// 1. A burst of NG: the kept frames arrive on the frame topic (header = the published result,
//    image decodes to the frame size) and the camera's limit holds; the `label` command by seq
//    keeps a frame past the limit and publishes the label; health carries the keep counters.
// 2. PLC: LABEL <id> over the pty is answered LABELED once durable and reaches MQTT with the seq
//    of the trigger's result; a bad LABEL line is refused.
// 3. Broker stopped while frames are kept, then the device killed with SIGKILL: every frame left
//    in its spool on disk arrives after both come back.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { generateKeyPair, publicKeyPem } from '../runtime/artifact/index.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { connectCommandClient } from '../runtime/mqtt/command-client.ts';
import { filters } from '../runtime/mqtt/topics.ts';
import { decodeFrameMessage, LabelPayload, type FrameHeader } from '../runtime/schema/keep.ts';
import { HealthPayload, ResultPayload } from '../runtime/schema/payloads.ts';
import { recordingLog, startAedes, startMosquitto, until } from './helpers/brokers.ts';
import { repoPath } from './helpers/fixtures.ts';
import { PtyPeer, startPtyPair } from './helpers/pty.ts';
import { makeArtifact, tempDir, writeArtifact } from './helpers/runtime-models.ts';

const profile = { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1 };

/** Everything the device publishes for the data loop, decoded. */
async function watchLoop(url: string, protocolVersion: 4 | 5, clientId: string) {
  const frames: FrameHeader[] = [];
  const images: Buffer[] = [];
  const labels: LabelPayload[] = [];
  const results: ResultPayload[] = [];
  const health: HealthPayload[] = [];
  const c = await mqtt.connectAsync(url, { protocolVersion, clientId, clean: false, reconnectPeriod: 200, ...(protocolVersion === 5 && { properties: { sessionExpiryInterval: 3600 } }) });
  c.on('message', (topic, payload) => {
    if (topic.endsWith('/frame')) {
      const d = decodeFrameMessage(payload);
      if (!d.ok) throw new Error(d.message);
      frames.push(d.header);
      images.push(d.image);
    } else if (topic.endsWith('/label')) labels.push(LabelPayload.parse(JSON.parse(payload.toString())));
    else if (topic.endsWith('/result')) results.push(ResultPayload.parse(JSON.parse(payload.toString())));
    else if (topic.endsWith('/health')) health.push(HealthPayload.parse(JSON.parse(payload.toString())));
  });
  await c.subscribeAsync([filters.frames(), filters.labels(), filters.results(), filters.health()], { qos: 1 });
  return { frames, images, labels, results, health, close: () => c.endAsync() };
}

test('a burst of NG keeps frames within the limit; a label keeps one more; health counts them', async (t) => {
  t.timeout(120_000); // generous: on a loaded 2-core machine the device takes tens of seconds to warm up
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const key = generateKeyPair();
  // minConfidence 0.99: the fixture model is never that sure, so every frame is NG.
  await writeArtifact(dir, 'model.epk', makeArtifact({ thresholds: { minConfidence: 0.99 } }, { privateKey: key.privateKey }));
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const seen = await watchLoop(broker.url, 4, 'line-pc-1');
  t.teardown(() => seen.close());
  const cfg = parseDeviceConfig(
    {
      device: 'press-1',
      artifact: 'model.epk',
      trustedKeys: [publicKeyPem(key.publicKey)],
      profile,
      cameras: [{ id: 'cam', kind: 'synthetic', fps: 30, seed: 4, pattern: 'noise' }],
      mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 100 },
      outbox: { kind: 'memory' },
      health: { intervalMs: 300 },
      keep: { dir: 'keep', rules: { limits: { perMinute: 4, minIntervalMs: 0 } } },
    },
    join(dir, 'device.yaml'),
  );
  const rt = await Runtime.start(cfg, { log: recordingLog().log });
  t.teardown(() => rt.stop());
  await until(() => seen.results.length >= 40, '40 results', 60_000);
  await until(() => seen.frames.length >= 4, 'the kept frames', 20_000);
  t.true(seen.results.every((r) => r.decision === 'NG'), 'every result is NG');
  await new Promise((r) => setTimeout(r, 300));
  t.is(seen.frames.length, 4, `the limit of 4 per minute holds over ${seen.results.length} NG results`);
  for (const [i, f] of seen.frames.entries()) {
    const published = seen.results.find((r) => r.seq === f.result.seq);
    t.deepEqual(f.result, published, 'the header carries the result as published');
    t.deepEqual(f.reasons.slice(0, 1), ['ng']);
    const img = await sharp(seen.images[i]!).raw().toBuffer({ resolveWithObject: true });
    t.deepEqual([img.info.width, img.info.height, img.info.channels], [32, 32, 3]);
  }

  // A label by seq for a result that was not kept: its frame is kept now, past the limit.
  const keptSeqs = new Set(seen.frames.map((f) => f.result.seq));
  const target = seen.results.filter((r) => !keptSeqs.has(r.seq)).at(-1)!;
  const cmd = await connectCommandClient({ url: broker.url, protocolVersion: 4 });
  t.teardown(() => cmd.close());
  const reply = await cmd.send('press-1', 'label', { seq: target.seq, decision: 'OK', class: 'class3', by: 'anna' });
  t.true(reply.ok, JSON.stringify(reply));
  if (!reply.ok || reply.command !== 'label') return;
  t.deepEqual(reply.data.target, { seqEpoch: target.seqEpoch, seq: target.seq });
  t.true(reply.data.frameKept);
  await until(() => seen.labels.length === 1 && seen.frames.length === 5, 'the label and its frame');
  t.like(seen.labels[0], { labelId: reply.data.labelId, camera: 'cam', target: { seq: target.seq }, decision: 'OK', class: 'class3', source: 'mqtt', by: 'anna', frameKept: true });
  t.deepEqual(seen.frames[4]!.reasons, ['label']);
  t.is(seen.frames[4]!.result.seq, target.seq);

  const bad = await cmd.send('press-1', 'label', { decision: 'OK' });
  t.false(bad.ok);
  if (!bad.ok) t.is(bad.error.code, 'INVALID_ARGS');
  await until(() => (seen.health.at(-1)?.keep?.limited ?? 0) > 0 && seen.health.at(-1)?.keep?.uploaded === 6, 'health with the keep counters');
  t.like(seen.health.at(-1)!.keep, { kept: 5, labels: 1, spooled: 0, dropped: 0, uploaded: 6 });
});

test('PLC: LABEL over a pty is answered LABELED once durable and reaches MQTT with its result\'s seq', async (t) => {
  t.timeout(120_000);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const key = generateKeyPair();
  await writeArtifact(dir, 'model.epk', makeArtifact({ labels: ['ok', 'dent', ...Array.from({ length: 8 }, (_, i) => `c${i}`)], thresholds: { minConfidence: 0 } }, { privateKey: key.privateKey }));
  const pty = await startPtyPair();
  t.teardown(() => pty.stop());
  const plc = new PtyPeer(pty.b);
  await plc.open();
  t.teardown(() => plc.close());
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const seen = await watchLoop(broker.url, 4, 'line-pc-2');
  t.teardown(() => seen.close());
  // ackTimeoutMs 10 s: with 500 ms a loaded machine let the device resend RESULT p41 before the
  // test's ACK reached it, and the test read that resend where it expected LABELED.
  const cfg = parseDeviceConfig(
    {
      device: 'press-2',
      artifact: 'model.epk',
      trustedKeys: [publicKeyPem(key.publicKey)],
      profile,
      cameras: [{ id: 'station1', kind: 'synthetic', fps: 25, seed: 9 }],
      triggers: { station1: { kind: 'serial', serial: { link: { kind: 'serialport', path: pty.a }, ackTimeoutMs: 10_000 } } },
      mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 100 },
      outbox: { kind: 'memory' },
      health: { intervalMs: 0 },
      keep: { dir: 'keep', rules: { ng: false, uncertain: null } },
    },
    join(dir, 'device.yaml'),
  );
  const rt = await Runtime.start(cfg, { log: recordingLog().log });
  t.teardown(() => rt.stop());
  await until(() => rt.plcs.get('station1')!.linkUp, 'the serial link to open');
  await plc.sendLine('TRIG p41');
  t.is(await plc.lines.next(20_000), 'READY p41');
  t.regex(await plc.lines.next(20_000), /^RESULT p41 OK /);
  await plc.sendLine('ACK p41');
  await until(() => seen.results.some((r) => r.triggerId === 'p41'), 'the result of p41');
  const res = seen.results.find((r) => r.triggerId === 'p41')!;

  // The rework station says it was a dent.
  await plc.sendLine('LABEL p41 NG dent');
  t.is(await plc.lines.next(20_000), 'LABELED p41');
  await until(() => seen.labels.length === 1 && seen.frames.length === 1, 'the label and the frame on MQTT');
  t.like(seen.labels[0], { camera: 'station1', target: { seqEpoch: res.seqEpoch, seq: res.seq }, triggerId: 'p41', decision: 'NG', class: 'dent', source: 'plc', frameKept: true });
  t.deepEqual(seen.frames[0]!.reasons, ['label']);
  t.is(seen.frames[0]!.result.triggerId, 'p41');

  await plc.sendLine('LABEL p41 MAYBE');
  t.is(await plc.lines.next(20_000), 'ERR bad_verdict');
  await plc.sendLine('LABEL p99 OK');
  t.is(await plc.lines.next(20_000), 'LABELED p99', 'an unknown part is still taken; the recorder resolves it');
  await until(() => seen.labels.length === 2, 'the second label');
  t.like(seen.labels[1], { target: null, triggerId: 'p99', frameKept: false });
  t.is(rt.plcs.get('station1')!.counters().labels, 2);
});

test('broker stopped, then the device killed with SIGKILL: every frame left in its spool arrives after the restart', async (t) => {
  t.timeout(170_000);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const device = {
    device: 'press-3',
    artifact: repoPath('test/fixtures/garment-line/fmnist-vpt-deep.epk'),
    trustedKeys: [repoPath('test/fixtures/garment-line/demo.pub')],
    profile: 'x86-cpu',
    cameras: [{ id: 'cam', kind: 'synthetic', fps: 20, seed: 2, pattern: 'noise' }],
    mqtt: { url: broker.url, reconnectPeriodMs: 200 },
    outbox: { kind: 'file', dir: join(dir, 'outbox') },
    health: { intervalMs: 0 },
    keep: { dir: join(dir, 'keep'), encoding: { format: 'jpeg' }, rules: { ng: true, random: { rate: 1 }, limits: { perMinute: null, perHour: null, perDay: null, minIntervalMs: 100 } } },
  };
  const cfgFile = join(dir, 'device.yaml');
  await writeFile(cfgFile, JSON.stringify(device));
  const start = (): ChildProcess => spawn(process.execPath, ['--import', 'tsx', repoPath('runtime/cli.ts'), 'run', '-c', cfgFile], { stdio: 'ignore', env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'error' } });
  const seen = await watchLoop(broker.url, 5, 'line-pc-3');
  t.teardown(() => seen.close());
  const keys = () => new Set(seen.frames.map((f) => `${f.result.seqEpoch}/${f.result.seq}`));

  let rt = start();
  t.teardown(() => void rt.kill('SIGKILL'));
  await until(() => seen.frames.length >= 5, 'frames from the first run', 60_000);
  await broker.stop(); // kept frames now wait in the spool
  // Until the spool holds at least 5 entries (a fixed wait kept too few on a loaded machine).
  await until(() => readdirSync(join(dir, 'keep', 'e')).filter((n) => /^\d+\.msg$/.test(n)).length >= 6, 'frames kept while the broker is away', 60_000);
  rt.kill('SIGKILL');
  await new Promise((r) => rt.once('exit', r));
  // What the killed device left on disk: each entry file is u16 topic length | topic | frame message.
  const left: string[] = [];
  for (const name of await readdir(join(dir, 'keep', 'e'))) {
    if (!/^\d+\.msg$/.test(name)) continue; // not .tmp-…: a put the kill cut short was never accepted
    const b = await readFile(join(dir, 'keep', 'e', name));
    const d = decodeFrameMessage(b.subarray(2 + b.readUInt16BE(0)));
    if (d.ok) left.push(`${d.header.result.seqEpoch}/${d.header.result.seq}`);
  }
  t.log(`${seen.frames.length} frames received before the outage; ${left.length} left in the spool by the killed device`);
  t.true(left.length >= 5, 'frames were kept while the broker was away');
  await broker.restart();
  rt = start();
  await until(() => left.every((k) => keys().has(k)), 'every frame the killed device had spooled', 80_000);
  rt.kill('SIGTERM');
  await new Promise((r) => rt.once('exit', r));
  t.log(`${keys().size} distinct frames, ${seen.frames.length - keys().size} delivered more than once (QoS 1; the recorder stores each once)`);
  t.is(readdirSync(join(dir, 'keep', 'e')).filter((n) => n.endsWith('.msg')).length, 0, 'the stopped device drained its spool');
});
