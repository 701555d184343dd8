// The reject schedule shared by the PLC handshake and the free-running reject line
// (devices/serial/reject.ts): fire an NG at capture + delayMs, never early; an OK cancels; no
// decision by the due time is a missed deadline (fail-safe fire, or skip); a settled part is never
// rejected twice. Real timers with short delays.

import test from 'ava';
import { RejectScheduler, type RejectPolicy } from '../devices/serial/reject.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rig(policy: Partial<RejectPolicy> = {}) {
  const fired: { key: string; at: number; dueTs: number; failSafe: boolean }[] = [];
  const missed: string[] = [];
  const s = new RejectScheduler<{ id: string }>(
    { delayMs: 60, onMissedDeadline: 'fire', ...policy },
    { fire: (k, e) => fired.push({ key: k.id, at: Date.now(), ...e }), missed: (k) => missed.push(k.id) },
  );
  return { s, fired, missed };
}

test('an NG decided in time fires at its due time, never early; an OK fires nothing', async (t) => {
  const { s, fired, missed } = rig();
  const ng = { id: 'ng' };
  const ok = { id: 'ok' };
  const t0 = Date.now();
  s.arm(ng, t0);
  s.arm(ok, t0);
  t.true(s.decide(ng, true));
  t.true(s.decide(ok, false));
  t.is(s.pending, 1);
  await sleep(120);
  t.deepEqual(fired.map((f) => [f.key, f.failSafe, f.dueTs]), [['ng', false, t0 + 60]]);
  t.true(fired[0]!.at >= t0 + 59, `fired ${fired[0]!.at - t0} ms after capture`);
  t.deepEqual(missed, []);
  t.deepEqual(s.counters, { rejectsFired: 1, deadlineMissed: 0 });
});

test('undecided at the due time: missed, fired fail-safe; a decision after it changes nothing', async (t) => {
  const { s, fired, missed } = rig();
  const k = { id: 'late' };
  s.arm(k, Date.now());
  await sleep(100);
  t.deepEqual(missed, ['late']);
  t.deepEqual(fired.map((f) => [f.key, f.failSafe]), [['late', true]]);
  t.false(s.decide(k, false), 'the decision came after the deadline');
  t.deepEqual(s.counters, { rejectsFired: 1, deadlineMissed: 1 });
});

test('onMissedDeadline skip: a missed part passes, but the miss is counted', async (t) => {
  const { s, fired, missed } = rig({ onMissedDeadline: 'skip' });
  s.arm({ id: 'a' }, Date.now());
  await sleep(100);
  t.deepEqual(missed, ['a']);
  t.deepEqual(fired, []);
  t.deepEqual(s.counters, { rejectsFired: 0, deadlineMissed: 1 });
});

test('a decision already past its due time (a late free-running NG) is a miss: fired at once, or skipped', async (t) => {
  for (const onMissedDeadline of ['fire', 'skip'] as const) {
    const { s, fired, missed } = rig({ onMissedDeadline });
    const k = { id: 'old' };
    s.arm(k, Date.now() - 1000);
    t.false(s.decide(k, true));
    t.deepEqual(missed, ['old']);
    t.deepEqual(fired.map((f) => [f.key, f.failSafe]), onMissedDeadline === 'fire' ? [['old', true]] : []);
    t.is(s.pending, 0);
    await sleep(10);
    t.is(fired.length, onMissedDeadline === 'fire' ? 1 : 0, 'and only once');
  }
});

test('re-arming moves the due time (trigger, then capture); a settled part is never armed again', async (t) => {
  const { s, fired } = rig();
  const k = { id: 'k' };
  const t0 = Date.now();
  s.arm(k, t0);
  s.arm(k, t0 + 40); // the frame was captured 40 ms after the trigger
  s.decide(k, true);
  await sleep(70);
  t.deepEqual(fired, [], 'not at the trigger-based due time');
  await sleep(60);
  t.deepEqual(fired.map((f) => f.dueTs), [t0 + 100]);
  s.arm(k, Date.now());
  s.decide(k, true);
  await sleep(100);
  t.is(fired.length, 1, 'no second reject for the same part');
});

test('clear() forgets every armed part without firing', async (t) => {
  const { s, fired, missed } = rig();
  s.arm({ id: 'a' }, Date.now());
  const b = { id: 'b' };
  s.arm(b, Date.now());
  s.decide(b, true);
  s.clear();
  t.is(s.pending, 0);
  await sleep(100);
  t.deepEqual([fired, missed], [[], []]);
});
