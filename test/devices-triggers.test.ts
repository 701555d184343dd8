// Triggers (free-run, MQTT command) and the serial/trigger config contracts.

import test from 'ava';
import { DeviceConfigError, TriggerError } from '../devices/errors.ts';
import { parsePlcConfig } from '../devices/serial/config.ts';
import { formatResult, parsePlcLine } from '../devices/serial/protocol.ts';
import { CommandTrigger } from '../devices/triggers/armed.ts';
import { createTrigger } from '../devices/triggers/config.ts';
import { FreeRunTrigger } from '../devices/triggers/free-run.ts';
import { SerialTrigger } from '../devices/triggers/serial.ts';

/** Frames of a camera at `fps` for `seconds`, starting at t0. */
const camera = (fps: number, seconds: number, t0 = 1_000_000) =>
  Array.from({ length: Math.round(fps * seconds) }, (_, i) => ({ camera: 'c', frameId: i + 1, captureTs: t0 + (i * 1000) / fps }));

test('free-run takes every frame and hands out increasing ids', (t) => {
  const trig = new FreeRunTrigger();
  const hits = camera(30, 0.2).map((f) => trig.offer(f));
  t.deepEqual(hits.map((h) => h?.triggerId), ['f1', 'f2', 'f3', 'f4', 'f5', 'f6']);
  t.true(hits.every((h) => h?.kind === 'free-run'));
});

test('the free-run fps limit yields the limit (30 fps camera at 20 → 20, at 10 → 10, at 30 → 30), and restarts cleanly after a gap', (t) => {
  for (const [limit, want] of [[20, 20], [10, 10], [30, 30], [60, 30]] as const) {
    const trig = new FreeRunTrigger({ fps: limit });
    const n = camera(30, 2).filter((f) => trig.offer(f) !== null).length;
    t.true(Math.abs(n / 2 - want) <= 0.5, `limit ${limit}: ${n / 2} fps`);
  }
  const trig = new FreeRunTrigger({ fps: 10 });
  const before = camera(30, 1).filter((f) => trig.offer(f) !== null).length;
  const after = camera(30, 1, 1_000_000 + 60_000).filter((f) => trig.offer(f) !== null).length;
  t.is(before, 10);
  t.is(after, 10, 'no burst to catch up after a camera gap');
  t.throws(() => new FreeRunTrigger({ fps: 0 }), { instanceOf: TriggerError });
});

test('a command trigger gives its id to the next frame captured at or after fire (+settle), FIFO, one frame each', (t) => {
  const trig = new CommandTrigger({ settleMs: 20 });
  const frames = camera(100, 0.2); // a frame every 10 ms
  trig.fire('a', frames[3]!.captureTs);
  trig.fire('b', frames[3]!.captureTs + 1);
  const hits = frames.map((f) => trig.offer(f));
  t.deepEqual(hits.map((h, i) => (h ? [h.triggerId, i] : null)).filter(Boolean), [['a', 5], ['b', 6]]);
  t.is(trig.waiting, 0);
  t.is(hits[5]!.kind, 'mqtt');
});

test('command trigger: bad and duplicate ids and a full queue are TriggerErrors with codes', (t) => {
  const trig = new CommandTrigger({ maxWaiting: 2 });
  t.is(t.throws(() => trig.fire('has space'), { instanceOf: TriggerError }).code, 'E_TRIGGER_BAD_ID');
  trig.fire('1');
  t.is(t.throws(() => trig.fire('1'), { instanceOf: TriggerError }).code, 'E_TRIGGER_DUPLICATE_ID');
  trig.fire('2');
  t.is(t.throws(() => trig.fire('3'), { instanceOf: TriggerError }).code, 'E_TRIGGER_QUEUE_FULL');
  t.true(trig.cancel('1'));
  t.is(trig.waiting, 1);
  trig.close();
});

test('a command that gets no frame expires and says so', async (t) => {
  const trig = new CommandTrigger({ expireMs: 50 });
  const expired = new Promise<{ id: string }>((r) => trig.once('expired', r));
  trig.fire('lonely');
  t.is((await expired).id, 'lonely');
  t.is(trig.waiting, 0);
  t.is(trig.offer({ camera: 'c', frameId: 1, captureTs: Date.now() }), null);
});

test('trigger configs: the factory builds each kind; errors name the field', (t) => {
  t.true(createTrigger({ kind: 'free-run', fps: 5 }).trigger instanceof FreeRunTrigger);
  t.true(createTrigger({ kind: 'mqtt' }).trigger instanceof CommandTrigger);
  const serial = createTrigger({ kind: 'serial', serial: { link: { kind: 'serialport', path: '/dev/ttyUSB0' }, reject: { delayMs: 800 } } });
  t.true(serial.trigger instanceof SerialTrigger);
  t.truthy(serial.plc);
  serial.trigger.close();

  const bad = t.throws(() => createTrigger({ kind: 'serial', serial: { link: { kind: 'serialport' } } }), { instanceOf: DeviceConfigError });
  t.is(bad.code, 'E_TRIGGER_CONFIG');
  t.is(bad.field, 'trigger.serial.link.path');
  const kind = t.throws(() => createTrigger({ kind: 'gpio' }), { instanceOf: DeviceConfigError });
  t.is(kind.field, 'trigger.kind');
  const line = t.throws(() => parsePlcConfig({ link: { kind: 'serialport', path: '/dev/x' }, reject: { delayMs: 5, line: 'REJECT\n{id}' } }), { instanceOf: DeviceConfigError });
  t.is(line.code, 'E_SERIAL_CONFIG');
  t.is(line.field, 'serial.reject.line');
  t.like(parsePlcConfig({ link: { kind: 'serialport', path: '/dev/x' }, reject: { delayMs: 5 } }), { readyOn: 'capture', reject: { line: 'REJECT {id}', onMissedDeadline: 'fire' } });
});

test('protocol: parsing and result formatting', (t) => {
  t.deepEqual(parsePlcLine('  TRIG   17 '), { ok: true, command: { cmd: 'TRIG', id: '17' } });
  t.deepEqual(parsePlcLine('ACK x_1.2-3'), { ok: true, command: { cmd: 'ACK', id: 'x_1.2-3' } });
  t.deepEqual(parsePlcLine('TRIG ' + 'a'.repeat(33)), { ok: false, reason: 'bad_id' });
  t.deepEqual(parsePlcLine('TRIG\t1'), { ok: false, reason: 'bad_chars' });
  t.is(formatResult('1', { verdict: 'NG', label: '', score: Number.NaN, error: 'INTERNAL' }), 'RESULT 1 NG - 0.000 E9');
  t.is(formatResult('1', { verdict: 'OK', label: 'über gut', score: 1.7 }), 'RESULT 1 OK _ber_gut 1.000');
});
