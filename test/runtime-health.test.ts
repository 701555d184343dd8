// Health parts: latency quantiles, fps meters, CPU temperature from /sys/class/thermal, the health
// payload built from a running pipeline; plus the reject actuator sink and the snapshot PNG encoder.
import test from 'ava';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { SyntheticSource } from '../devices/cameras/synthetic.ts';
import { MockSerialBus } from '../devices/serial/mock-link.ts';
import { FreeRunTrigger } from '../devices/triggers/free-run.ts';
import { cameraHealthState, collectHealth } from '../runtime/health/monitor.ts';
import { QuantileRing } from '../runtime/health/quantile.ts';
import { RateMeter } from '../runtime/health/rate.ts';
import { cpuTemperature } from '../runtime/health/system.ts';
import { Pipeline, type PipelineResult } from '../runtime/pipeline/pipeline.ts';
import { encodePng } from '../runtime/pipeline/png.ts';
import { RejectSink } from '../runtime/pipeline/sinks.ts';
import { HealthPayload } from '../runtime/schema/payloads.ts';
import { ModelHost } from '../runtime/session/host.ts';
import { until } from './helpers/brokers.ts';
import { cpuProfile, makeArtifact, SIZE, tempDir } from './helpers/runtime-models.ts';

test('QuantileRing: nearest-rank p50/p99, and only the newest samples count', (t) => {
  const q = new QuantileRing(100);
  t.is(q.quantile(0.5), null);
  for (let i = 1; i <= 100; i++) q.push(i);
  t.is(q.quantile(0.5), 50);
  t.is(q.quantile(0.99), 99);
  t.is(q.quantile(1), 100);
  for (let i = 0; i < 100; i++) q.push(1000); // the ring forgets the old ones
  t.is(q.quantile(0.5), 1000);
  t.is(q.count, 100);
});

test('RateMeter: events per second over the window', (t) => {
  let now = 10_000;
  const r = new RateMeter(1000, 10, () => now);
  for (let i = 0; i < 30; i++) {
    r.mark();
    now += 1000 / 30;
  }
  t.true(Math.abs(r.rate() - 30) <= 3, `about 30/s, got ${r.rate()}`);
  now += 2000;
  t.is(r.rate(), 0, 'nothing in the last window');
  t.is(r.total, 30);
});

test('cpuTemperature: the CPU zone by type, else the hottest; null without /sys/class/thermal', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const zone = async (n: number, type: string, milli: string) => {
    await mkdir(join(dir, `thermal_zone${n}`), { recursive: true });
    await writeFile(join(dir, `thermal_zone${n}`, 'type'), type + '\n');
    await writeFile(join(dir, `thermal_zone${n}`, 'temp'), milli + '\n');
  };
  await zone(0, 'gpu-thermal', '61000');
  await zone(1, 'cpu-thermal', '45500');
  await zone(2, 'soc0-thermal', 'garbage');
  t.is(cpuTemperature(dir), 45.5);
  await writeFile(join(dir, 'thermal_zone1', 'type'), 'board\n');
  t.is(cpuTemperature(dir), 61, 'no CPU zone: the hottest');
  t.is(cpuTemperature(join(dir, 'missing')), null);
  // An unreadable zone is skipped, not fatal: the hottest zone (61 °C) becomes unreadable, so the
  // next readable one wins. A directory in place of the `temp` file fails to read even as root
  // (where chmod 000 would not stop the read); a zone without `temp` fails too.
  await rm(join(dir, 'thermal_zone0', 'temp'));
  await mkdir(join(dir, 'thermal_zone0', 'temp'));
  await mkdir(join(dir, 'thermal_zone3'));
  t.is(cpuTemperature(dir), 45.5, 'unreadable zones skipped: the hottest readable one');
  if (process.getuid?.() !== 0) {
    await writeFile(join(dir, 'thermal_zone1', 'temp'), '70000\n');
    await chmod(join(dir, 'thermal_zone1', 'temp'), 0o000);
    t.is(cpuTemperature(dir), null, 'no zone readable (permissions): null');
  }
});

test('health payload from a running pipeline passes the schema', async (t) => {
  const host = new ModelHost({ profile: cpuProfile(), trustedKeys: [], allowUnsigned: true });
  t.teardown(() => host.close());
  const before = collectHealth({ pipeline: new Pipeline({ cameras: [], classifier: host }), classifier: host });
  t.is(before.model, null);
  t.is(before.inferMs, null);
  await host.load(makeArtifact().bytes);
  const source = new SyntheticSource({ camera: 'cam1', format: { width: SIZE, height: SIZE, channels: 3 }, fps: 50 });
  const p = new Pipeline({ cameras: [{ id: 'cam1', source, trigger: new FreeRunTrigger() }], classifier: host });
  let n = 0;
  p.on('result', () => n++);
  await p.start();
  t.teardown(() => p.stop());
  await until(() => n >= 10, '10 results');
  const h = collectHealth({ pipeline: p, classifier: host, startedAt: Date.now() - 5000 });
  const payload = HealthPayload.parse({ ...h, v: 1, device: 'd1', ts: Date.now(), mqtt: { connected: true, published: 0, acked: 0, outboxDepth: 0, dropped: 0, reconnects: 0 } });
  t.is(payload.ep, 'cpu');
  t.true(payload.uptimeS >= 5);
  t.true(payload.inferMs !== null && payload.inferMs.p50 > 0 && payload.inferMs.p99 >= payload.inferMs.p50);
  t.is(payload.cameras.cam1!.state, 'running');
  t.true(payload.cameras.cam1!.fpsIn > 0 && payload.cameras.cam1!.fpsProcessed > 0);
  t.true(payload.rssBytes > 10e6);
  t.deepEqual(['starting', 'running', 'stalled', 'restarting', 'stopped'].map((s) => cameraHealthState(s as never)), ['starting', 'running', 'lost', 'lost', 'stopped']);
});

test('RejectSink: an NG fires the reject line delayMs after capture; a late one counts as deadline-missed', async (t) => {
  const bus = new MockSerialBus();
  const gate = bus.createPort('/dev/ttyGATE');
  const sink = new RejectSink('line1', bus.link({ path: '/dev/ttyGATE' }), { delayMs: 150, line: 'REJECT {camera} {frameId}', onMissedDeadline: 'fire' });
  await sink.start();
  t.teardown(() => sink.stop());
  const result = (frameId: number, decision: 'OK' | 'NG', captureTs: number) =>
    ({ input: { camera: 'line1', frameId: String(frameId), decision }, frame: { captureTs } }) as unknown as PipelineResult;
  const t0 = Date.now();
  sink.result(result(1, 'OK', t0));
  sink.result(result(2, 'NG', t0));
  sink.result(result(3, 'NG', t0 - 1000)); // decided after its deadline
  await until(() => gate.lines.length >= 2, 'two reject lines');
  t.deepEqual(gate.lines, ['REJECT line1 3', 'REJECT line1 2']);
  t.true(Date.now() - t0 >= 145, 'the on-time reject waited for its delay');
  t.deepEqual(sink.counters, { rejectsFired: 2, deadlineMissed: 1, writeFailures: 0 });
});

test('encodePng: lossless RGB and RGBA that an image library reads back', async (t) => {
  const w = 7;
  const h = 5;
  const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 37) % 256);
  const back = await sharp(encodePng(rgb, w, h, 3)).raw().toBuffer({ resolveWithObject: true });
  t.deepEqual([back.info.width, back.info.height, back.info.channels], [w, h, 3]);
  t.deepEqual(Buffer.from(back.data), Buffer.from(rgb));
  const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 11) % 256);
  t.deepEqual(Buffer.from((await sharp(encodePng(rgba, w, h, 4)).raw().toBuffer()).buffer), Buffer.from(rgba.buffer));
  t.throws(() => encodePng(rgb, w + 1, h, 3), { instanceOf: RangeError });
});
