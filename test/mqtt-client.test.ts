// The subscriber client: gap and duplicate detection, typed parsing, bad messages reported to
// onError (never thrown), device/camera filters, health and status subscriptions.

import test from 'ava';
import { once } from 'node:events';
import mqtt from 'mqtt';
import { subscribeEvents, subscribeHealth, subscribeResults, subscribeStatus, type ResultMessage } from '../runtime/mqtt/client.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { startReporter } from '../runtime/mqtt/reporter.ts';
import { SeqTracker } from '../runtime/mqtt/seq-tracker.ts';
import type { PayloadError } from '../runtime/schema/codec.ts';
import type { EventPayload, HealthPayload, ResultPayload, StatusPayload } from '../runtime/schema/payloads.ts';
import { recordingLog, sampleHealth, sampleResult, sampleState, startAedes, until } from './helpers/brokers.ts';

test('SeqTracker: in order, gap, duplicate, late fill, per device, and a new epoch', (t) => {
  const s = new SeqTracker();
  t.deepEqual(s.see('a', 'e1', 10), { duplicate: false, reset: false }, 'first sight: no history, no gap');
  t.deepEqual(s.see('a', 'e1', 11), { duplicate: false, reset: false });
  t.deepEqual(s.see('a', 'e1', 15), { duplicate: false, gap: { from: 12, to: 14 }, reset: false });
  t.deepEqual(s.see('a', 'e1', 15), { duplicate: true, reset: false });
  t.deepEqual(s.see('a', 'e1', 11), { duplicate: true, reset: false });
  t.deepEqual(s.see('a', 'e1', 13), { duplicate: false, reset: false }, 'a late arrival fills the gap');
  t.deepEqual(s.missing('a'), [
    { from: 12, to: 12 },
    { from: 14, to: 14 },
  ]);
  t.deepEqual(s.see('a', 'e1', 13), { duplicate: true, reset: false });
  t.deepEqual(s.see('b', 'x', 0), { duplicate: false, reset: false }, 'devices are independent');
  t.deepEqual(s.see('a', 'e2', 3), { duplicate: false, gap: { from: 0, to: 2 }, reset: true }, 'new epoch starts at 0');
  t.deepEqual(s.see('a', 'e2', 4), { duplicate: false, reset: false });
});

test('subscribeResults: typed results; bad JSON, schema failures and lying topics go to onError, and the stream goes on', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const got: ResultMessage[] = [];
  const errors: PayloadError[] = [];
  const sub = subscribeResults(
    { url: b.url, protocolVersion: 4, onError: (e) => errors.push(e as PayloadError) },
    (m) => void got.push(m),
  );
  t.teardown(() => sub.close());
  await sub.ready;
  const pub = await mqtt.connectAsync(b.url);
  t.teardown(() => pub.endAsync());
  const good = (seq: number, device = 'd1', camera = 'cam1'): ResultPayload => ({
    ...sampleResult(camera, seq),
    v: 1,
    device,
    seq,
    seqEpoch: 'e',
    publishTs: Date.now(),
  });
  const topic = 'edgeprompt/v1/d1/cam1/result';
  await pub.publishAsync(topic, JSON.stringify(good(0)), { qos: 1 });
  await pub.publishAsync(topic, '{not json', { qos: 1 });
  await pub.publishAsync(topic, JSON.stringify({ ...good(1), score: 'high' }), { qos: 1 });
  await pub.publishAsync(topic, JSON.stringify({ ...good(1), v: 2 }), { qos: 1 });
  await pub.publishAsync(topic, JSON.stringify(good(1, 'd2')), { qos: 1 }); // payload says another device
  await pub.publishAsync('edgeprompt/v1/d1/cam2/result', JSON.stringify(good(1, 'd1', 'cam1')), { qos: 1 });
  await pub.publishAsync(topic, JSON.stringify(good(1)), { qos: 1 });
  await until(() => got.length === 2 && errors.length === 5, 'two results and five errors');
  t.deepEqual(got.map((m) => m.result.seq), [0, 1]);
  t.is(got[0]!.result.model.sha256.length, 64);
  t.deepEqual(
    errors.map((e) => e.code),
    ['BAD_JSON', 'INVALID_PAYLOAD', 'INVALID_PAYLOAD', 'INVALID_PAYLOAD', 'INVALID_PAYLOAD'],
  );
  t.regex(errors[1]!.message, /score: /);
  t.regex(errors[2]!.message, /v: /);
  t.regex(errors[3]!.message, /says device "d2"/);
  t.is(errors[0]!.topic, topic);
});

test('subscribeResults: a handler that throws is reported to onError, not thrown', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const errors: Error[] = [];
  let calls = 0;
  const sub = subscribeResults({ url: b.url, protocolVersion: 4, onError: (e) => errors.push(e) }, async () => {
    calls++;
    throw new Error('handler bug');
  });
  t.teardown(() => sub.close());
  await sub.ready;
  const r = startReporter(
    { url: b.url, device: 'd1', protocolVersion: 4, healthIntervalMs: 0 },
    { outbox: createMemoryOutbox(), state: sampleState(), log: recordingLog().log },
  );
  t.teardown(() => r.close());
  await r.publishResult(sampleResult('cam1', 0));
  await r.publishResult(sampleResult('cam1', 1));
  await until(() => errors.length === 2, 'two handler errors');
  t.is(calls, 2);
  t.is(errors[0]!.message, 'handler bug');
});

test('device and camera filters select what arrives', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const cam2: ResultMessage[] = [];
  const sub = subscribeResults({ url: b.url, protocolVersion: 4, device: 'd1', camera: 'cam2' }, (m) => void cam2.push(m));
  t.teardown(() => sub.close());
  await sub.ready;
  const r = startReporter(
    { url: b.url, device: 'd1', protocolVersion: 4, healthIntervalMs: 0 },
    { outbox: createMemoryOutbox(), state: sampleState(), log: recordingLog().log },
  );
  t.teardown(() => r.close());
  for (let i = 0; i < 6; i++) await r.publishResult(sampleResult(i % 3 === 0 ? 'cam2' : 'cam1', i));
  await r.drained();
  await until(() => cam2.length === 2, 'the two cam2 results');
  t.deepEqual(cam2.map((m) => m.result.seq), [0, 3]);
  t.deepEqual(cam2[1]!.gap, { from: 1, to: 2 }, 'seq is per device, so a camera filter shows the other cameras as gaps');
});

test('subscribeStatus gets the retained status at once; subscribeHealth gets typed health; subscribeEvents typed events', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const r = startReporter(
    { url: b.url, device: 'd1', protocolVersion: 4, healthIntervalMs: 30 },
    { outbox: createMemoryOutbox(), state: sampleState(), health: sampleHealth, log: recordingLog().log },
  );
  t.teardown(() => r.close());
  await once(r, 'connect');
  const statuses: StatusPayload[] = [];
  const s = subscribeStatus({ url: b.url, protocolVersion: 4 }, (p) => void statuses.push(p));
  t.teardown(() => s.close());
  const health: HealthPayload[] = [];
  const h = subscribeHealth({ url: b.url, protocolVersion: 4, device: 'd1' }, (p) => void health.push(p));
  t.teardown(() => h.close());
  const events: EventPayload[] = [];
  const e = subscribeEvents({ url: b.url, protocolVersion: 4, device: 'd1' }, (p) => void events.push(p));
  t.teardown(() => e.close());
  await e.ready;
  r.publishEvent({ type: 'camera-lost', camera: 'cam1', reason: 'stall' });
  await until(() => statuses.length >= 1 && health.length >= 1 && events.length >= 1, 'status, health and an event');
  t.like(events[0], { device: 'd1', type: 'camera-lost', camera: 'cam1' });
  t.like(statuses[0], { device: 'd1', state: 'online' });
  t.like(health[0], { device: 'd1', cameras: { cam1: { state: 'running', droppedFrames: 3 } }, mqtt: { connected: true } });
});
