// The device runtime end to end with real parts: a lossless video file decoded by ffmpeg, the
// fixture ViT in onnxruntime from a signed artifact, an in-process aedes broker, and a subscriber
// that checks every result against the payload schema, seq continuity, and the label the model
// gives the known content of each frame.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, publicKeyPem } from '../runtime/artifact/index.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { subscribeHealth, subscribeResults, type ResultMessage } from '../runtime/mqtt/client.ts';
import type { HealthPayload } from '../runtime/schema/payloads.ts';
import { record, recordingLog, startAedes, until } from './helpers/brokers.ts';
import { makeVideo } from './helpers/media.ts';
import { LABELS, makeArtifact, referenceLabel, tempDir, writeArtifact, type Rgb } from './helpers/runtime-models.ts';

const COLOURS: Rgb[] = [
  [255, 0, 0],
  [0, 255, 0],
  [0, 0, 255],
];
const FPS = 10;
const hex = (c: Rgb) => '0x' + c.map((v) => v.toString(16).padStart(2, '0')).join('');
// One second of each colour; format=rgb24 keeps the colours exact through the lossless ffv1 file.
const graph = COLOURS.map((c, i) => `color=c=${hex(c)}:s=64x48:r=${FPS}:d=1,format=rgb24[c${i}]`).join(';') + ';[c0][c1][c2]concat=n=3';

test('a video file through the runtime: every frame reported once, in order, with the right label', async (t) => {
  t.timeout(20_000);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const key = generateKeyPair();
  await writeFile(join(dir, 'release.pub'), publicKeyPem(key.publicKey));
  const refs = await Promise.all(COLOURS.map((c) => referenceLabel(c)));
  // Only the first colour's label is a good part.
  const packed = makeArtifact({ thresholds: { okLabels: [refs[0]!.label], minConfidence: 0.05 } }, { privateKey: key.privateKey });
  await writeArtifact(dir, 'model.epk', packed);
  await makeVideo(dir, { graph, seconds: 3, codec: 'ffv1', name: 'parts.mkv' });
  const broker = await startAedes();
  t.teardown(() => broker.stop());

  const results: ResultMessage[] = [];
  const errors: Error[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: 'press-7', onError: (e) => errors.push(e) }, (m) => void results.push(m));
  const health: HealthPayload[] = [];
  const hsub = subscribeHealth({ url: broker.url, protocolVersion: 4, device: 'press-7' }, (h) => void health.push(h));
  const events = await record(broker.url, 'edgeprompt/v1/press-7/event', { protocolVersion: 4 });
  t.teardown(async () => {
    await sub.close();
    await hsub.close();
    await events.close();
  });
  await Promise.all([sub.ready, hsub.ready]);

  const cfg = parseDeviceConfig(
    {
      device: 'press-7',
      artifact: 'model.epk',
      trustedKeys: ['release.pub'],
      profile: { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cuda' }, { name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1 },
      // realtime: ffmpeg paces the file at its frame rate, like a camera; inference keeps up, so nothing is dropped.
      cameras: [{ id: 'line1', kind: 'ffmpeg', input: { kind: 'file', path: 'parts.mkv', realtime: true } }],
      mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 100 },
      outbox: { kind: 'file', dir: 'outbox' },
      health: { intervalMs: 250 },
    },
    join(dir, 'device.yaml'),
  );
  const rt = await Runtime.start(cfg, { log: recordingLog().log });
  t.teardown(() => rt.stop());
  t.is(rt.host.current!.ep, 'cpu', 'cuda is not available here: fell back to cpu');
  await rt.ended;
  await rt.stop({ drainMs: 2000 });
  await until(() => results.length >= rt.pipeline.stats().line1!.processed, `every result (got ${results.length})`, 8000);

  t.deepEqual(errors, [], 'every result passed the payload schema');
  const stats = rt.pipeline.stats().line1!;
  // At 10 fps inference keeps up, so nothing should be dropped; a machine loaded by other tests may
  // drop a frame (newest wins, by design), which must then be counted and leave no seq gap.
  t.is(stats.framesIn, 3 * FPS);
  t.is(stats.processed + stats.dropped, 3 * FPS);
  t.true(stats.dropped <= 2, `dropped ${stats.dropped}`);
  t.is(results.length, stats.processed);
  t.deepEqual(results.map((r) => r.result.seq), Array.from({ length: stats.processed }, (_, i) => i), 'seq 0..n-1, no gaps, no repeats');
  t.true(results.every((r) => !r.duplicate && r.gap === undefined));
  for (const { result: r } of results) {
    const n = Number(r.frameId);
    const colour = Math.floor((n - 1) / FPS);
    const ref = refs[colour]!;
    t.is(r.label, ref.label, `frame ${n} (colour ${colour})`);
    t.true(Math.abs(r.score - ref.score) < 1e-4);
    t.is(r.decision, colour === 0 ? 'OK' : 'NG');
    t.deepEqual(r.model, { name: 'fixture-vit', version: '1.0.0', sha256: packed.sha256 });
    t.is(r.device, 'press-7');
    t.is(r.camera, 'line1');
    t.is(r.triggerId, null);
    t.is(r.topK.length, 5);
    t.is(r.topK[0]!.label, r.label);
    t.true(LABELS.includes(r.label));
    t.true(r.captureTs <= r.publishTs);
    t.true(r.latency.inferMs > 0 && r.latency.captureToInferMs >= 0 && r.latency.postMs >= 0);
    t.true(r.latency.totalMs >= r.latency.inferMs - 1, 'total spans capture → publish');
  }
  t.is(new Set(results.map((r) => r.result.frameId)).size, results.length, 'no frame reported twice');

  const h = health.at(-1)!;
  t.truthy(h, 'health was published');
  t.is(h.ep, 'cpu');
  t.is(h.model?.sha256, packed.sha256);
  t.truthy(health.some((x) => x.inferMs !== null && x.inferMs.p99 >= x.inferMs.p50));
  t.truthy(health.some((x) => x.cameras.line1?.state === 'running' && x.cameras.line1.fpsIn > 0));
  const evs = events.messages.map((m) => m.json() as { type: string; ep?: string; code?: string; message?: string });
  t.is(evs.find((e) => e.type === 'model-loaded')?.ep, 'cpu');
  t.regex(evs.find((e) => e.code === 'EP_FALLBACK')?.message ?? '', /^cuda unavailable, running on cpu: /, 'the fallback is visible remotely');
});
