// The serial PLC trigger end to end over a real pseudo-terminal pair (socat): the test plays the
// PLC on one end, the runtime holds the other. TRIG → READY → RESULT (the model's decision, the
// same one published over MQTT with the trigger id) → ACK; when inference is too slow, the PLC
// gets a fail-safe NG E1 (result timeout) and the reject fires anyway; on shutdown, NG E6.
import test from 'ava';
import { join } from 'node:path';
import { generateKeyPair, publicKeyPem } from '../runtime/artifact/index.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { recordingLog, startAedes, until } from './helpers/brokers.ts';
import { PtyPeer, startPtyPair } from './helpers/pty.ts';
import { LABELS, makeArtifact, tempDir, writeArtifact } from './helpers/runtime-models.ts';

test('PLC over a pty: TRIG → READY → RESULT → ACK, and NG E1 when inference is too slow', async (t) => {
  t.timeout(20_000);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const key = generateKeyPair();
  // Every label is OK at any confidence, so an NG can only come from the fail-safe path.
  await writeArtifact(dir, 'model.epk', makeArtifact({ thresholds: { okLabels: LABELS, minConfidence: 0 } }, { privateKey: key.privateKey }));
  const pty = await startPtyPair();
  t.teardown(() => pty.stop());
  const plc = new PtyPeer(pty.b);
  await plc.open();
  t.teardown(() => plc.close());
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const results: ResultPayload[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: 'press-7' }, (m) => void results.push(m.result));
  t.teardown(() => sub.close());
  await sub.ready;

  const cfg = parseDeviceConfig(
    {
      device: 'press-7',
      artifact: 'model.epk',
      trustedKeys: [publicKeyPem(key.publicKey)],
      profile: { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1 },
      cameras: [{ id: 'station1', kind: 'synthetic', fps: 25, seed: 9 }],
      triggers: {
        station1: {
          kind: 'serial',
          serial: { link: { kind: 'serialport', path: pty.a }, captureTimeoutMs: 1000, resultTimeoutMs: 400, ackTimeoutMs: 500, reject: { delayMs: 700 } },
        },
      },
      mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 100 },
      outbox: { kind: 'memory' },
      health: { intervalMs: 0 },
    },
    join(dir, 'device.yaml'),
  );
  let delayMs = 0;
  const rt = await Runtime.start(cfg, {
    log: recordingLog().log,
    classifier: (host) => ({
      get current() {
        return host.current;
      },
      async classify(frames, k) {
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        return host.classify(frames, k);
      },
    }),
  });
  t.teardown(() => rt.stop());
  await until(() => rt.plcs.get('station1')!.linkUp, 'the serial link to open');

  // 1. A normal cycle.
  await plc.sendLine('TRIG t1');
  t.is(await plc.lines.next(), 'READY t1');
  const res1 = await plc.lines.next();
  const m = /^RESULT t1 (OK|NG) (\S+) (\d\.\d{3})$/.exec(res1);
  t.truthy(m, res1);
  t.is(m![1], 'OK');
  await plc.sendLine('ACK t1');
  await until(() => results.some((r) => r.triggerId === 't1'), 'the MQTT result for t1');
  const r1 = results.find((r) => r.triggerId === 't1')!;
  t.is(r1.label, m![2]);
  t.is(r1.score.toFixed(3), m![3]);
  t.is(r1.decision, 'OK');
  t.is(r1.camera, 'station1');
  t.true(typeof r1.latency.triggerToCaptureMs === 'number');

  // 2. Inference slower than resultTimeoutMs: the PLC gets NG E1 (never a silent OK), the reject
  //    fires at its deadline, and the late decision is counted but not sent.
  delayMs = 800;
  await plc.sendLine('TRIG t2');
  t.is(await plc.lines.next(), 'READY t2');
  t.is(await plc.lines.next(1500), 'RESULT t2 NG - 0.000 E1');
  await plc.sendLine('ACK t2');
  t.is(await plc.lines.next(1500), 'REJECT t2');
  await until(() => results.some((r) => r.triggerId === 't2'), 'the (late) MQTT result for t2', 3000);
  await until(() => rt.plcs.get('station1')!.counters().lateDecisions === 1, 'the late decision counted');
  const c = rt.plcs.get('station1')!.counters();
  t.is(c.errors.RESULT_TIMEOUT, 1);
  t.is(c.rejectsFired, 1);
  t.is(c.ok, 1);
  t.is(c.ng, 1);
  t.true(await plc.lines.quiet(300), `nothing else on the line (${JSON.stringify(plc.lines.all)})`);
  delayMs = 0;

  // 3. Shutdown answers a trigger still waiting for its frame NG E6 (camera paused, so no frame comes).
  rt.pipeline.setPaused(true);
  await plc.sendLine('TRIG t3');
  await new Promise((r) => setTimeout(r, 100));
  const stopping = rt.stop();
  t.is(await plc.lines.next(3000), 'RESULT t3 NG - 0.000 E6');
  await stopping;
});
