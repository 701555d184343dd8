// The reporter against an in-process aedes broker (MQTT 3.1.1): birth/will/state, results through
// the outbox, reconnects, health, events, graceful close, and the outbox bound seen as a gap.

import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { PayloadError } from '../runtime/schema/codec.ts';
import { HealthPayload, ResultPayload, StatePayload, StatusPayload, EventPayload } from '../runtime/schema/payloads.ts';
import { MqttOptionsError } from '../runtime/mqtt/errors.ts';
import type { Outbox } from '../runtime/mqtt/outbox.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { startReporter, type Reporter, type ReporterOptionsInput, type ReporterDeps } from '../runtime/mqtt/reporter.ts';
import { subscribeResults, type ResultMessage } from '../runtime/mqtt/client.ts';
import { record, recordingLog, sampleHealth, sampleResult, sampleState, startAedes, startProxy, until } from './helpers/brokers.ts';

const DEVICE = 'line1-cam-box';

function reporter(
  t: ExecutionContext,
  url: string,
  extra: Partial<ReporterOptionsInput> = {},
  deps: Partial<ReporterDeps> = {},
): { r: Reporter; outbox: Outbox; lines: ReturnType<typeof recordingLog>['lines'] } {
  const outbox = deps.outbox ?? createMemoryOutbox();
  const { log, lines } = recordingLog();
  const r = startReporter(
    { url, device: DEVICE, protocolVersion: 4, reconnectPeriodMs: 50, healthIntervalMs: 0, ...extra },
    { outbox, state: sampleState(), log, ...deps },
  );
  t.teardown(() => r.close());
  return { r, outbox, lines };
}

const connected = (r: Reporter) => once(r, 'connect') as Promise<[{ sessionPresent: boolean; reconnect: boolean }]>;

test('on connect: retained online status and state, both valid payloads', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const { r } = reporter(t, b.url);
  await connected(r);
  // A subscriber arriving later still gets both: they are retained.
  const sub = await record(b.url, [`edgeprompt/v1/${DEVICE}/status`, `edgeprompt/v1/${DEVICE}/state`]);
  t.teardown(() => sub.close());
  const status = StatusPayload.parse((await sub.waitFor((m) => m.topic.endsWith('/status'), 'status')).json());
  t.like(status, { device: DEVICE, state: 'online', reason: 'connected', bootId: r.bootId });
  const stateMsg = await sub.waitFor((m) => m.topic.endsWith('/state'), 'state');
  t.true(stateMsg.retain);
  t.like(StatePayload.parse(stateMsg.json()), { device: DEVICE, ep: 'cpu', cameras: ['cam1', 'cam2'] });
});

test('results go out in seq order with QoS 1 and leave the outbox on PUBACK', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const sub = await record(b.url, 'edgeprompt/v1/+/+/result');
  t.teardown(() => sub.close());
  const { r, outbox } = reporter(t, b.url, { maxInflight: 4 });
  await connected(r);
  const seqs = await Promise.all(Array.from({ length: 20 }, (_, i) => r.publishResult(sampleResult(i % 2 ? 'cam1' : 'cam2', i))));
  t.deepEqual(seqs.map((s) => s.seq), Array.from({ length: 20 }, (_, i) => i));
  await r.drained();
  t.is(outbox.size, 0);
  await sub.waitFor(() => sub.messages.length === 20, '20 results');
  const got = sub.messages.map((m) => ResultPayload.parse(m.json()));
  t.deepEqual(got.map((x) => x.seq), seqs.map((s) => s.seq), 'in seq order');
  t.is(sub.messages[1]!.topic, `edgeprompt/v1/${DEVICE}/cam1/result`);
  t.is(sub.messages[0]!.packet.qos, 1);
  t.like(got[3], { device: DEVICE, camera: 'cam1', frameId: 'f3', triggerId: null, seqEpoch: outbox.epoch, decision: 'OK' });
  t.true(got[3]!.publishTs >= got[3]!.captureTs);
  t.like(r.counters(), { published: 20, acked: 20, outboxDepth: 0, dropped: 0, reconnects: 0, connected: true });
});

test('an invalid result is refused with PayloadError naming the field, and uses no seq', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const { r, outbox } = reporter(t, b.url);
  const bad = { ...sampleResult('cam1', 0), score: 1.7 };
  const err = await t.throwsAsync(r.publishResult(bad), { instanceOf: PayloadError });
  t.regex(err?.message ?? '', /score: .*1/);
  t.is(outbox.nextId, 0);
  t.is((await r.publishResult(sampleResult('cam1', 1))).seq, 0);
});

test('results produced while the broker is down wait in the outbox and are delivered, in order, after it returns', async (t) => {
  const b = await startAedes(); // restart() keeps the persistence: a durable broker
  t.teardown(() => b.stop());
  const got: ResultMessage[] = [];
  const errors: Error[] = [];
  const sub = subscribeResults(
    { url: b.url, protocolVersion: 4, clientId: 'backend-1', reconnectPeriodMs: 50, onError: (e) => errors.push(e) },
    (m) => void got.push(m),
  );
  t.teardown(() => sub.close());
  await sub.ready;
  const { r, outbox } = reporter(t, b.url);
  await connected(r);
  await r.publishResult(sampleResult('cam1', 0));
  await until(() => got.length === 1, 'first result');
  const down = once(r, 'disconnect');
  await b.stop();
  await down;
  for (let i = 1; i <= 5; i++) await r.publishResult(sampleResult('cam1', i));
  t.is(outbox.size, 5, 'held while the broker is away');
  const back = connected(r);
  await b.restart();
  t.true((await back)[0].reconnect);
  await r.drained();
  const fresh = () => got.filter((m) => !m.duplicate);
  await until(() => fresh().length >= 6, 'six results', 8000);
  // QoS 1 is at-least-once: the broker may redeliver seq 0 if it stopped before handling our PUBACK.
  t.deepEqual(fresh().map((m) => m.result.seq), [0, 1, 2, 3, 4, 5], 'every seq once, in order');
  t.true(got.every((m) => !m.gap));
  t.true(got.filter((m) => m.duplicate).every((m) => m.result.seq === 0));
  t.is(r.counters().reconnects, 1);
  t.true(errors.every((e) => !('code' in e) || e.code !== 'INVALID_PAYLOAD'));
});

test('abrupt socket loss fires the retained offline will; reconnect republishes online and state', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const proxy = await startProxy(b.port);
  t.teardown(() => proxy.close());
  const sub = await record(b.url, [`edgeprompt/v1/${DEVICE}/status`, `edgeprompt/v1/${DEVICE}/state`]);
  t.teardown(() => sub.close());
  const { r } = reporter(t, proxy.url);
  await connected(r);
  await sub.waitFor((m) => m.topic.endsWith('/state'), 'first state');
  r.setState({ paused: true }); // the state republished after reconnect must be the current one
  const reconnected = connected(r);
  proxy.cut();
  const will = await sub.waitFor((m) => m.json() instanceof Object && (m.json() as { state?: string }).state === 'offline', 'the will');
  t.like(StatusPayload.parse(will.json()), { state: 'offline', reason: 'connection-lost', bootId: r.bootId });
  await reconnected;
  const statusAfter = sub.messages.indexOf(will);
  const online = await sub.waitFor(
    (m) => sub.messages.indexOf(m) > statusAfter && m.topic.endsWith('/status'),
    'online after the will',
  );
  t.like(StatusPayload.parse(online.json()), { state: 'online', reason: 'connected' });
  const state = await sub.waitFor((m) => sub.messages.indexOf(m) > statusAfter && m.topic.endsWith('/state'), 'state again');
  t.true(StatePayload.parse(state.json()).paused);
  t.is(r.counters().reconnects, 1);
});

test('close() publishes retained offline (reason closed), and no will follows', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const sub = await record(b.url, `edgeprompt/v1/${DEVICE}/status`);
  t.teardown(() => sub.close());
  const { r } = reporter(t, b.url);
  await connected(r);
  await sub.waitFor((m) => (m.json() as { state: string }).state === 'online', 'online');
  await r.close();
  await sub.waitFor((m) => (m.json() as { state: string }).state === 'offline', 'offline');
  const late = await record(b.url, `edgeprompt/v1/${DEVICE}/status`);
  t.teardown(() => late.close());
  const retained = await late.waitFor(() => true, 'retained status');
  t.like(StatusPayload.parse(retained.json()), { state: 'offline', reason: 'closed' });
  t.is(sub.messages.filter((m) => (m.json() as { reason: string }).reason === 'connection-lost').length, 0);
  await t.throwsAsync(r.publishResult(sampleResult('cam1', 0)), { message: /after close/ });
});

test('health is published at the interval with the reporter counters filled in', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const sub = await record(b.url, `edgeprompt/v1/${DEVICE}/health`);
  t.teardown(() => sub.close());
  const { r } = reporter(t, b.url, { healthIntervalMs: 50 }, { health: sampleHealth });
  await connected(r);
  await r.publishResult(sampleResult('cam1', 0));
  await r.drained();
  const after = await sub.waitFor((m) => HealthPayload.parse(m.json()).mqtt.acked === 1, 'health after the PUBACK');
  const h = HealthPayload.parse(after.json());
  t.like(h, { device: DEVICE, ep: 'cpu', mqtt: { connected: true, published: 1, acked: 1, outboxDepth: 0, dropped: 0 } });
  t.is(sub.messages[0]!.packet.qos, 0);
});

test('events raised while disconnected are sent on the next connect', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const sub = await record(b.url, `edgeprompt/v1/${DEVICE}/event`, { clientId: 'ev', clean: false, protocolVersion: 4 });
  t.teardown(() => sub.close());
  const { r } = reporter(t, b.url);
  await connected(r);
  const down = once(r, 'disconnect');
  await b.stop();
  await down;
  r.publishEvent({ type: 'camera-lost', camera: 'cam2', reason: 'no frame for 2000 ms' });
  await b.restart();
  const ev = await sub.waitFor(() => true, 'camera-lost event');
  t.like(EventPayload.parse(ev.json()), { type: 'camera-lost', camera: 'cam2', device: DEVICE });
});

test('the outbox bound drops the oldest while the broker is away; the subscriber sees exactly that gap', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  const got: ResultMessage[] = [];
  const sub = subscribeResults(
    { url: b.url, protocolVersion: 4, clientId: 'backend-gap', device: DEVICE, reconnectPeriodMs: 50, onError: () => {} },
    (m) => void got.push(m),
  );
  t.teardown(() => sub.close());
  await sub.ready;
  const { r, lines } = reporter(t, b.url, {}, { outbox: createMemoryOutbox({ maxEntries: 3 }) });
  await connected(r);
  await r.publishResult(sampleResult('cam1', 0));
  await until(() => got.length === 1, 'seq 0');
  const down = once(r, 'disconnect');
  await b.stop();
  await down;
  for (let i = 1; i <= 8; i++) await r.publishResult(sampleResult('cam1', i)); // seqs 1..8, only 6..8 fit
  t.like(r.counters(), { outboxDepth: 3, dropped: 5 });
  t.true(lines.some((l) => l.level === 'warn' && /oldest results dropped/.test(l.msg)));
  await b.restart();
  const fresh = () => got.filter((m) => !m.duplicate);
  await until(() => fresh().length === 4, 'the three kept results', 8000);
  t.deepEqual(fresh().map((m) => m.result.seq), [0, 6, 7, 8]);
  t.deepEqual(fresh()[1]!.gap, { from: 1, to: 5 });
  t.is(got.filter((m) => m.gap).length, 1, 'the gap is reported once');
});

test('bad options are refused up front with every field named', (t) => {
  const err = t.throws(
    () => startReporter({ url: 'http://x', device: 'a/b', reconnectPeriodMs: 0, keepalive: 5 } as ReporterOptionsInput, {
      outbox: createMemoryOutbox(),
      state: sampleState(),
    }),
    { instanceOf: MqttOptionsError },
  );
  t.is(err?.code, 'INVALID_OPTIONS');
  t.regex(err?.message ?? '', /url: .*mqtt:\/\//);
  t.regex(err?.message ?? '', /device: device id "a\/b" contains "\/"/);
  t.regex(err?.message ?? '', /reconnectPeriodMs/);
  t.regex(err?.message ?? '', /\n {2}keepalive: unknown field; did you mean "keepaliveS"\?/, 'a misspelt option is an error, not a silent default');
  t.regex(err?.message ?? '', /^invalid reporter options \(4 problems\):\n/);
  t.deepEqual(err?.issues.map((i) => i.field).sort(), ['device', 'keepalive', 'reconnectPeriodMs', 'url']);
  t.regex(err?.message ?? '', /reconnectPeriodMs: .*\(got 0\)/, 'each with its value');
});
