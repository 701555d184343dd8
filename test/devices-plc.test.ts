// The PLC handshake with the test playing the PLC: over a real socat pty pair through
// SerialPortLink, and over the in-memory MockSerialLink (the same suite for both).

import test, { type ExecutionContext } from 'ava';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockSerialBus } from '../devices/serial/mock-link.ts';
import { PlcHandshake, type PlcOptions } from '../devices/serial/plc.ts';
import { SerialPortLink } from '../devices/serial/serialport-link.ts';
import { SerialTrigger } from '../devices/triggers/serial.ts';
import { LineQueue, PtyPeer, startPtyPair } from './helpers/pty.ts';

interface Rig {
  plc: PlcHandshake;
  /** The PLC writes. */
  send: (line: string) => Promise<void>;
  sendRaw: (text: string) => Promise<void>;
  /** What the device wrote, in order. */
  lines: LineQueue;
  /** Arrival time of each device line (first occurrence). */
  arrived: Map<string, number>;
  unplug: () => Promise<void>;
  replug: () => Promise<void>;
  done: () => Promise<void>;
}

const FAST: PlcOptions = { captureTimeoutMs: 1000, resultTimeoutMs: 2000, ackTimeoutMs: 1000, reconnect: { initialMs: 50, maxMs: 200 } };

function recorder(): { events: EventEmitter<{ line: [string] }>; lines: LineQueue; arrived: Map<string, number> } {
  const events = new EventEmitter<{ line: [string] }>();
  const arrived = new Map<string, number>();
  events.on('line', (l) => {
    if (!arrived.has(l)) arrived.set(l, Date.now());
  });
  return { events, lines: new LineQueue(events), arrived };
}

async function ptyRig(opts: PlcOptions): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'ep-plc-'));
  const pair = await startPtyPair({ links: [join(dir, 'device'), join(dir, 'plc')] });
  const rec = recorder();
  const openPeer = async (): Promise<PtyPeer> => {
    const p = new PtyPeer(pair.b);
    await p.open();
    p.on('line', (l) => rec.events.emit('line', l));
    return p;
  };
  let peer = await openPeer();
  const plc = new PlcHandshake(new SerialPortLink({ path: pair.a }), { ...FAST, ...opts });
  await plc.start();
  return {
    plc,
    send: (l) => peer.sendLine(l),
    sendRaw: (t) => peer.send(t),
    lines: rec.lines,
    arrived: rec.arrived,
    unplug: async () => {
      await peer.close();
      await pair.stop();
    },
    replug: async () => {
      await pair.restart();
      peer = await openPeer();
    },
    done: async () => {
      await plc.stop();
      await peer.close();
      await pair.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function mockRig(opts: PlcOptions): Promise<Rig> {
  const bus = new MockSerialBus();
  const peer = bus.createPort('/dev/ttyPLC');
  const rec = recorder();
  peer.on('line', (l) => rec.events.emit('line', l));
  const plc = new PlcHandshake(bus.link({ path: '/dev/ttyPLC' }), { ...FAST, ...opts });
  await plc.start();
  return {
    plc,
    send: (l) => peer.sendLine(l),
    sendRaw: (t) => peer.send(t),
    lines: rec.lines,
    arrived: rec.arrived,
    unplug: () => peer.unplug(),
    replug: async () => peer.replug(),
    done: () => plc.stop(),
  };
}

const nextEvent = <T>(em: { once(ev: string, fn: (e: T) => void): unknown }, ev: string): Promise<T> => new Promise((r) => em.once(ev, r));

/** Resolves with the arrival time of `line` at the PLC (polling; rejects after `timeoutMs`). */
async function arrival(rig: Rig, line: string, timeoutMs = 3000): Promise<number> {
  const end = Date.now() + timeoutMs;
  while (!rig.arrived.has(line)) {
    if (Date.now() > end) throw new Error(`${line} never arrived; lines: ${rig.lines.all.join(' | ')}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return rig.arrived.get(line)!;
}

/** The PLC sends TRIG <id>; resolves with the handshake's trigger event (listening before sending). */
async function trig(rig: Rig, id: string): Promise<{ id: string; ts: number }> {
  const e = nextEvent<{ id: string; ts: number }>(rig.plc, 'trigger');
  await rig.send(`TRIG ${id}`);
  return e;
}

function suite(name: string, makeRig: (o: PlcOptions) => Promise<Rig>): void {
  const it = (title: string, opts: PlcOptions, fn: (t: ExecutionContext, rig: Rig) => Promise<void>): void => {
    test(`${name}: ${title}`, async (t) => {
      t.timeout(10_000);
      const rig = await makeRig(opts);
      try {
        await fn(t, rig);
      } finally {
        await rig.done();
      }
    });
  };

  it('TRIG → READY (on capture) → RESULT OK → ACK, and nothing more', {}, async (t, rig) => {
    const e = await trig(rig, '17');
    t.is(e.id, '17');
    t.true(await rig.lines.quiet(100), 'no READY before the frame is captured');
    t.true(rig.plc.frameCaptured('17', Date.now()));
    t.is(await rig.lines.next(), 'READY 17');
    t.true(rig.plc.complete('17', { kind: 'ok', label: 'good part', score: 0.98765 }));
    t.is(await rig.lines.next(), 'RESULT 17 OK good_part 0.988');
    const acked = nextEvent(rig.plc, 'ack');
    await rig.send('ACK 17');
    await acked;
    t.is(rig.plc.inFlight, 0);
    t.true(await rig.lines.quiet(1200), 'no resend after ACK (ackTimeoutMs 1000)');
    t.like(rig.plc.counters(), { triggers: 1, ok: 1, ng: 0, resends: 0, garbage: 0 });
  });

  it('a classified NG carries class and score and no error code', {}, async (t, rig) => {
    await trig(rig, 'A-1');
    rig.plc.complete('A-1', { kind: 'ng', label: 'scratch', score: 0.91, captureTs: Date.now() });
    t.is(await rig.lines.next(), 'READY A-1');
    t.is(await rig.lines.next(), 'RESULT A-1 NG scratch 0.910');
    await rig.send('ACK A-1');
  });

  it('no decision in time → NG E1; the late decision is refused and counted', { resultTimeoutMs: 150 }, async (t, rig) => {
    await trig(rig, '5');
    rig.plc.frameCaptured('5', Date.now());
    t.is(await rig.lines.next(), 'READY 5');
    t.is(await rig.lines.next(), 'RESULT 5 NG - 0.000 E1');
    t.false(rig.plc.complete('5', { kind: 'ok', label: 'good', score: 1 }));
    await rig.send('ACK 5');
    t.true(await rig.lines.quiet(100));
    t.like(rig.plc.counters(), { ok: 0, ng: 1, lateDecisions: 1 });
    t.is(rig.plc.counters().errors.RESULT_TIMEOUT, 1);
  });

  it('no frame captured → NG E3 (camera down) without READY; inference failure → NG E2', { captureTimeoutMs: 100 }, async (t, rig) => {
    const cancelled = nextEvent<{ id: string }>(rig.plc, 'cancel');
    await rig.send('TRIG 6');
    t.is(await rig.lines.next(), 'RESULT 6 NG - 0.000 E3');
    t.is((await cancelled).id, '6');
    await rig.send('ACK 6');
    await trig(rig, '7');
    rig.plc.complete('7', { kind: 'error', code: 'INFERENCE_FAILED', captureTs: Date.now() });
    t.is(await rig.lines.next(), 'READY 7');
    t.is(await rig.lines.next(), 'RESULT 7 NG - 0.000 E2');
  });

  // Bug (flaky under load): with the 1 s capture timeout of FAST, a loaded machine took longer than
  // that over the garbage lines, and trigger 1's fail-safe RESULT … E3 came in among the ERR answers.
  // The trigger must stay in flight for the whole test: nothing here is about timing.
  it('garbage gets ERR <reason> and changes nothing', { captureTimeoutMs: 120_000, resultTimeoutMs: 120_000 }, async (t, rig) => {
    await trig(rig, '1');
    const before = rig.plc.counters();
    const cases: [string, string][] = [
      ['HELLO', 'ERR unknown_command'],
      ['trig 2', 'ERR unknown_command'],
      ['TRIG', 'ERR missing_id'],
      ['TRIG 2 3', 'ERR extra_tokens'],
      ['TRIG ../etc', 'ERR bad_id'],
      ['TRIG 1', 'ERR duplicate_id 1'],
      ['ACK 1', 'ERR unexpected_ack 1'],
      ['ACK 99', 'ERR unknown_id 99'],
      ['PING now', 'ERR extra_tokens'],
    ];
    for (const [line, answer] of cases) {
      await rig.send(line);
      t.is(await rig.lines.next(), answer, line);
    }
    await rig.sendRaw('TR\u0000IG 3\r\n');
    t.is(await rig.lines.next(), 'ERR bad_chars');
    await rig.sendRaw('X'.repeat(400) + '\r\n');
    t.is(await rig.lines.next(), 'ERR line_too_long');
    await rig.send('PING');
    t.is(await rig.lines.next(), 'PONG');
    const after = rig.plc.counters();
    t.is(after.garbage, before.garbage + cases.length + 2);
    t.is(after.triggers, before.triggers);
    t.is(rig.plc.inFlight, 1);
    // The trigger that was in flight is untouched and completes normally.
    rig.plc.complete('1', { kind: 'ok', label: 'good', score: 0.5, captureTs: Date.now() });
    t.is(await rig.lines.next(), 'READY 1');
    t.is(await rig.lines.next(), 'RESULT 1 OK good 0.500');
  });

  it('an unacknowledged RESULT is resent resultRetries times, then counted as ack-missed', { ackTimeoutMs: 80, resultRetries: 2 }, async (t, rig) => {
    const missed = nextEvent(rig.plc, 'ack_missed');
    await trig(rig, '8');
    rig.plc.complete('8', { kind: 'ok', label: 'good', score: 0.9, captureTs: Date.now() });
    await missed;
    const got = [await rig.lines.next(), await rig.lines.next(), await rig.lines.next(), await rig.lines.next()];
    t.deepEqual(got, ['READY 8', 'RESULT 8 OK good 0.900', 'RESULT 8 OK good 0.900', 'RESULT 8 OK good 0.900']);
    t.true(await rig.lines.quiet(150), 'no fourth RESULT');
    t.like(rig.plc.counters(), { resends: 2, ackMissed: 1 });
    t.is(rig.plc.inFlight, 0);
  });

  it('too many triggers in flight → immediate NG E5 (busy); shutdown answers the rest NG E6', { maxPending: 1 }, async (t, rig) => {
    await trig(rig, '1');
    await rig.send('TRIG 2');
    t.is(await rig.lines.next(), 'RESULT 2 NG - 0.000 E5');
    await rig.plc.stop();
    t.is(await rig.lines.next(), 'RESULT 1 NG - 0.000 E6');
  });

  it('reject fires delayMs after capture for an NG, not for an OK; a late result misses the deadline (fail-safe reject, NG E4)', { reject: { delayMs: 250 } }, async (t, rig) => {
    const rejects: { id: string; ts: number; dueTs: number; failSafe: boolean }[] = [];
    rig.plc.on('reject', (e) => rejects.push(e));
    // 1: NG decided in time.
    await trig(rig, '1');
    const cap1 = Date.now();
    rig.plc.frameCaptured('1', cap1);
    setTimeout(() => rig.plc.complete('1', { kind: 'ng', label: 'dent', score: 0.8 }), 50);
    // 2: OK decided in time: no reject.
    await trig(rig, '2');
    rig.plc.complete('2', { kind: 'ok', label: 'good', score: 0.99, captureTs: Date.now() });
    // 3: decision arrives after the deadline.
    await trig(rig, '3');
    const cap3 = Date.now();
    rig.plc.frameCaptured('3', cap3);
    const missed = nextEvent<{ id: string }>(rig.plc, 'deadline_missed');
    t.is((await missed).id, '3');
    rig.plc.complete('3', { kind: 'ok', label: 'good', score: 0.99 });
    const got1 = await arrival(rig, 'REJECT 1');
    // Never early; the upper bound leaves room for a loaded 2-core CI machine.
    t.true(got1 - cap1 >= 245 && got1 - cap1 < 250 + 250, `REJECT 1 arrived ${got1 - cap1} ms after capture`);
    t.true((await arrival(rig, 'REJECT 3')) - cap3 >= 245, 'fail-safe reject for the undecided part, at its deadline');
    await arrival(rig, 'RESULT 3 NG good 0.990 E4');
    t.false(rig.arrived.has('REJECT 2'));
    t.deepEqual(rejects.map((r) => [r.id, r.failSafe]), [['1', false], ['3', true]]);
    t.like(rig.plc.counters(), { deadlineMissed: 1, rejectsFired: 2 });
    t.is(rig.plc.counters().errors.LATE, 1);
  });

  it('onMissedDeadline: skip lets an undecided part pass but still reports NG E4', { reject: { delayMs: 100, onMissedDeadline: 'skip', line: 'DO1 PULSE {id}' } }, async (t, rig) => {
    await trig(rig, '9');
    rig.plc.frameCaptured('9', Date.now());
    await nextEvent(rig.plc, 'deadline_missed');
    rig.plc.complete('9', { kind: 'ng', label: 'crack', score: 0.7 });
    t.is(await rig.lines.next(), 'READY 9');
    t.is(await rig.lines.next(), 'RESULT 9 NG crack 0.700 E4');
    t.true(await rig.lines.quiet(100));
    t.like(rig.plc.counters(), { deadlineMissed: 1, rejectsFired: 0 });
    // The configured line is used when a reject does fire.
    await trig(rig, '10');
    rig.plc.complete('10', { kind: 'ng', label: 'crack', score: 0.7, captureTs: Date.now() });
    await arrival(rig, 'DO1 PULSE 10');
  });

  it('the port going away drops triggers in flight, and the link comes back by itself', {}, async (t, rig) => {
    await trig(rig, '1');
    const down = nextEvent<{ up: boolean }>(rig.plc, 'link');
    await rig.unplug();
    t.false((await down).up);
    t.false(rig.plc.linkUp);
    t.is(rig.plc.inFlight, 0);
    t.is(rig.plc.counters().droppedOnDisconnect, 1);
    const up = nextEvent<{ up: boolean }>(rig.plc, 'link');
    await new Promise((r) => setTimeout(r, 150)); // a few failed reopen attempts
    await rig.replug();
    t.true((await up).up);
    await trig(rig, '2');
    rig.plc.complete('2', { kind: 'ok', label: 'good', score: 1, captureTs: Date.now() });
    t.is(await rig.lines.next(), 'READY 2');
    t.is(await rig.lines.next(), 'RESULT 2 OK good 1.000');
  });

  it('LABEL: refused as labels_off without a handler; LABELED once the handler stored it; label_failed when it could not', {}, async (t, rig) => {
    await rig.send('LABEL 7 NG dent');
    t.is(await rig.lines.next(), 'ERR labels_off 7');
    const got: unknown[] = [];
    let fail = false;
    rig.plc.setLabelHandler(async (l) => {
      if (fail) throw new Error('disk full');
      got.push({ id: l.id, verdict: l.verdict, label: l.label });
    });
    await rig.send('LABEL 7 NG dent');
    t.is(await rig.lines.next(), 'LABELED 7');
    await rig.send('LABEL 8 OK');
    t.is(await rig.lines.next(), 'LABELED 8');
    t.deepEqual(got, [{ id: '7', verdict: 'NG', label: 'dent' }, { id: '8', verdict: 'OK', label: null }]);
    for (const [line, reply] of [['LABEL 9 ok', 'ERR bad_verdict'], ['LABEL 9', 'ERR bad_verdict'], ['LABEL 9 NG a/b', 'ERR bad_class'], ['LABEL 9 NG dent now', 'ERR extra_tokens'], ['LABEL', 'ERR missing_id']]) {
      await rig.send(line!);
      t.is(await rig.lines.next(), reply, line);
    }
    fail = true;
    await rig.send('LABEL 10 OK');
    t.is(await rig.lines.next(), 'ERR label_failed 10');
    t.is(rig.plc.counters().labels, 2);
    t.is(rig.plc.inFlight, 0, 'labels never touch triggers');
  });

  it('with a SerialTrigger, TRIG picks the next frame captured after it and READY follows that frame', {}, async (t, rig) => {
    const trigger = new SerialTrigger(rig.plc);
    try {
      const before = { camera: 'c', frameId: 1, captureTs: Date.now() - 5 };
      await trig(rig, '42');
      t.is(trigger.waiting, 1);
      t.is(trigger.offer(before), null, 'a frame captured before the TRIG does not count');
      const hit = trigger.offer({ camera: 'c', frameId: 2, captureTs: Date.now() });
      t.like(hit, { triggerId: '42', kind: 'serial' });
      t.is(await rig.lines.next(), 'READY 42');
      t.is(trigger.offer({ camera: 'c', frameId: 3, captureTs: Date.now() }), null, 'one frame per TRIG');
      rig.plc.complete('42', { kind: 'ok', label: 'good', score: 0.9 });
      t.is(await rig.lines.next(), 'RESULT 42 OK good 0.900');
    } finally {
      trigger.close();
    }
  });
}

suite('pty', ptyRig);
suite('mock', mockRig);
