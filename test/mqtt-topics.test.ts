// The topic layout and the payload schemas: the contract publishers and subscribers share.

import test from 'ava';
import { TopicError } from '../runtime/mqtt/errors.ts';
import { filters, parseTopic, topics, validateId } from '../runtime/mqtt/topics.ts';
import { decodePayload, encodePayload } from '../runtime/schema/codec.ts';
import {
  commandSchemas,
  EventPayload,
  ReplyPayload,
  ResultPayload,
  StatusPayload,
  type ResultPayload as Result,
} from '../runtime/schema/payloads.ts';
import { sampleResult } from './helpers/brokers.ts';

test('builders produce the documented layout', (t) => {
  t.is(topics.status('d1'), 'edgeprompt/v1/d1/status');
  t.is(topics.state('d1'), 'edgeprompt/v1/d1/state');
  t.is(topics.health('d1'), 'edgeprompt/v1/d1/health');
  t.is(topics.event('d1'), 'edgeprompt/v1/d1/event');
  t.is(topics.result('d1', 'cam-a'), 'edgeprompt/v1/d1/cam-a/result');
  t.is(topics.command('d1', 'set-threshold'), 'edgeprompt/v1/d1/cmd/set-threshold');
  t.is(topics.reply('d1', 'ping'), 'edgeprompt/v1/d1/cmd/ping/reply');
  t.is(filters.results(), 'edgeprompt/v1/+/+/result');
  t.is(filters.results({ camera: 'cam-a' }), 'edgeprompt/v1/+/cam-a/result');
  t.is(filters.results({ device: 'd1' }), 'edgeprompt/v1/d1/+/result');
  t.is(filters.commands('d1'), 'edgeprompt/v1/d1/cmd/+');
  t.is(filters.status(), 'edgeprompt/v1/+/status');
});

test('parseTopic inverts every builder', (t) => {
  t.deepEqual(parseTopic(topics.result('d1', 'cam-a')), { kind: 'result', device: 'd1', camera: 'cam-a' });
  t.deepEqual(parseTopic(topics.command('d1', 'pause')), { kind: 'command', device: 'd1', name: 'pause' });
  t.deepEqual(parseTopic(topics.reply('d1', 'pause')), { kind: 'reply', device: 'd1', name: 'pause' });
  for (const kind of ['status', 'state', 'health', 'event'] as const) {
    t.deepEqual(parseTopic(topics[kind]('d1')), { kind, device: 'd1' });
  }
});

test('parseTopic returns null for topics outside the layout', (t) => {
  for (const s of [
    'edgeprompt/v2/d1/status',
    'other/v1/d1/status',
    'edgeprompt/v1/d1',
    'edgeprompt/v1/d1/unknown',
    'edgeprompt/v1//status',
    'edgeprompt/v1/d1/cam/other',
    'edgeprompt/v1/d1/cmd/x/reply/extra',
    'edgeprompt/v1/d 1/status',
  ]) {
    t.is(parseTopic(s), null, s);
  }
});

test('ids with + # / whitespace, empty or too long are refused with INVALID_ID naming the value', (t) => {
  for (const bad of ['a+b', 'a#', 'a/b', '', 'a b', 'x'.repeat(65), 'tab\t']) {
    const err = t.throws(() => topics.result('d1', bad), { instanceOf: TopicError });
    t.is(err?.code, 'INVALID_ID');
    t.true(err?.message.startsWith(`camera id ${JSON.stringify(bad)}`), err?.message);
  }
  t.throws(() => topics.status('dev+1'), { message: /device id "dev\+1" contains "\+"/ });
  t.throws(() => filters.results({ device: '#' }), { instanceOf: TopicError });
});

test('the camera id "cmd" is reserved: it would collide with the command topics', (t) => {
  t.throws(() => validateId('camera', 'cmd'), { message: /reserved/ });
  t.is(validateId('device', 'cmd'), 'cmd');
});

test('a result round-trips through encode/decode and carries every traced field', (t) => {
  const topic = topics.result('d1', 'cam1');
  const full: Result = { ...sampleResult('cam1', 2), v: 1, device: 'd1', seq: 7, seqEpoch: 'e', publishTs: Date.now() };
  const decoded = decodePayload(ResultPayload, topic, encodePayload(ResultPayload, topic, full));
  t.true(decoded.ok);
  if (decoded.ok) t.deepEqual(decoded.value, full);
});

test('invalid payloads fail with messages naming each field', (t) => {
  const topic = topics.result('d1', 'cam1');
  const bad = {
    ...sampleResult('cam1', 1),
    v: 1,
    device: 'd1',
    seq: -1,
    seqEpoch: 'e',
    publishTs: 1,
    decision: 'MAYBE',
    model: { name: 'm', version: '1', sha256: 'nothex' },
  };
  const r = decodePayload(ResultPayload, topic, JSON.stringify(bad));
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.code, 'INVALID_PAYLOAD');
    t.regex(r.error.message, /seq: /);
    t.regex(r.error.message, /decision: /);
    t.regex(r.error.message, /model\.sha256: must be 64 lowercase hex/);
  }
  const j = decodePayload(ResultPayload, topic, '{"v":1,');
  t.false(j.ok);
  if (!j.ok) t.is(j.error.code, 'BAD_JSON');
});

test('payloads are versioned: v:2 is refused; unknown extra fields are tolerated', (t) => {
  const status = { v: 1, device: 'd1', state: 'online', reason: 'connected', ts: 1, bootId: 'b' };
  t.true(StatusPayload.safeParse(status).success);
  t.false(StatusPayload.safeParse({ ...status, v: 2 }).success);
  t.true(StatusPayload.safeParse({ ...status, addedLater: 1 }).success);
});

test('latency keeps the four stages and accepts extra stages', (t) => {
  const r = { ...sampleResult('cam1', 1), v: 1, device: 'd1', seq: 0, seqEpoch: 'e', publishTs: 1 };
  const extra = ResultPayload.parse({ ...r, latency: { ...r.latency, decodeMs: 1.5 } });
  t.is(extra.latency.decodeMs, 1.5);
  t.false(ResultPayload.safeParse({ ...r, latency: { inferMs: 1 } }).success);
});

test('events are a discriminated union on type', (t) => {
  t.true(EventPayload.safeParse({ v: 1, device: 'd', ts: 1, type: 'camera-lost', camera: 'c', reason: 'stall' }).success);
  t.false(EventPayload.safeParse({ v: 1, device: 'd', ts: 1, type: 'camera-lost' }).success);
  t.false(EventPayload.safeParse({ v: 1, device: 'd', ts: 1, type: 'nope' }).success);
});

test('command args are strict and replies are typed per command', (t) => {
  t.true(commandSchemas['set-threshold'].args.safeParse({ threshold: 0.7 }).success);
  t.false(commandSchemas['set-threshold'].args.safeParse({ threshold: 0.7, camra: 'x' }).success);
  t.is(commandSchemas.snapshot.args.parse({ camera: 'cam1' }).format, 'jpeg');
  const base = { v: 1, device: 'd', id: null, ts: 1 };
  t.true(ReplyPayload.safeParse({ ...base, command: 'ping', ok: true, data: { bootId: 'b', uptimeS: 1 } }).success);
  t.false(ReplyPayload.safeParse({ ...base, command: 'ping', ok: true, data: { pong: 1 } }).success);
  t.true(ReplyPayload.safeParse({ ...base, command: 'frobnicate', ok: false, error: { code: 'UNKNOWN_COMMAND', message: 'm' } }).success);
});
