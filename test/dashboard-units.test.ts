// The dashboard's pure parts: shifts and time windows (in a zone with daylight saving time), the
// users file and password hashes, the --listen / --retain-size parsers; and the live model's
// merge of its own batches with what the database holds (no result counted twice).
process.env.TZ = 'Europe/Berlin'; // before any Date: spring forward on 2026-03-29, 02:00 → 03:00

import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseListen } from '../cli/dashboard.ts';
import { parseSize } from '../cli/record.ts';
import { addUser, AuthError, hashPassword, isLoopback, readUsers, Sessions, verifyPassword } from '../fleet/dashboard/auth.ts';
import { LiveModel } from '../fleet/dashboard/model.ts';
import { currentShift, DEFAULT_SHIFTS, hourly, parseShifts, ShiftError, shiftWindows } from '../fleet/dashboard/shifts.ts';
import { openDb } from '../fleet/record/db.ts';
import { dayOf, ensureDays, insertResults } from '../fleet/record/store.ts';
import { deployState, pgliteDir, resultPayload } from './helpers/fleet.ts';

const local = (y: number, mo: number, d: number, h = 0, mi = 0) => new Date(y, mo - 1, d, h, mi).getTime();

test('shifts: the default covers the day; bad specs name the part and the fix', (t) => {
  t.deepEqual(parseShifts(DEFAULT_SHIFTS), [
    { name: 'A', start: 360, end: 840 },
    { name: 'B', start: 840, end: 1320 },
    { name: 'C', start: 1320, end: 360 },
  ]);
  t.deepEqual(parseShifts('none'), []);
  t.throws(() => parseShifts('A=6-14'), { instanceOf: ShiftError, message: /"A=6-14" is not NAME=HH:MM-HH:MM/ });
  t.throws(() => parseShifts('A=06:10-14:00'), { message: /quarter hours/ });
  t.throws(() => parseShifts('A=06:00-14:00,B=13:00-22:00'), { message: /B overlaps A at 13:00/ });
  t.throws(() => parseShifts('A=06:00-14:00,A=14:00-22:00'), { message: /same name/ });
});

test('shift windows follow local dates: the night shift over the spring-forward night has 7 hours', (t) => {
  const shifts = parseShifts(DEFAULT_SHIFTS);
  const night = shiftWindows(shifts, local(2026, 3, 29, 1), local(2026, 3, 29, 1, 1)).find((w) => w.name === 'C')!;
  t.is(night.start, local(2026, 3, 28, 22));
  t.is(night.end, local(2026, 3, 29, 6));
  t.is((night.end - night.start) / 3600_000, 7);
  t.like(currentShift(shifts, local(2026, 3, 29, 5, 59)), { name: 'C' });
  t.like(currentShift(shifts, local(2026, 3, 29, 6)), { name: 'A', start: local(2026, 3, 29, 6), end: local(2026, 3, 29, 14) });
  // Shifts with a gap: nobody's shift at 23:00.
  t.is(currentShift(parseShifts('Early=06:00-14:00,Late=14:00-22:00'), local(2026, 5, 1, 23)), null);
});

test('hourly: 24 local hours, the current last, counts summed from 15-minute buckets', (t) => {
  const now = local(2026, 6, 1, 10, 20);
  const b = new Map([
    [local(2026, 6, 1, 10, 0), { ok: 3, ng: 1 }],
    [local(2026, 6, 1, 10, 15), { ok: 2, ng: 0 }],
    [local(2026, 6, 1, 9, 45), { ok: 1, ng: 1 }],
    [local(2026, 5, 31, 9, 0), { ok: 100, ng: 100 }], // 25 h ago: outside
  ]);
  const h = hourly(b, now);
  t.is(h.length, 24);
  t.deepEqual(h.at(-1), { start: local(2026, 6, 1, 10), ok: 5, ng: 1 });
  t.deepEqual(h.at(-2), { start: local(2026, 6, 1, 9), ok: 1, ng: 1 });
  t.is(h.reduce((s, x) => s + x.ok, 0), 6);
});

test('users file: scrypt hashes only, errors name the file and field; sessions expire; guessing is braked', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ep-users-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const hash = await hashPassword('s3cret-pw');
  t.regex(hash, /^scrypt\$16384\$8\$1\$/);
  t.true(await verifyPassword('s3cret-pw', hash));
  t.false(await verifyPassword('s3cret-pW', hash));
  const file = join(dir, 'users.yaml');
  await writeFile(file, 'users:\n  - { name: lead, role: operator, password: hunter2 }\n');
  const e = t.throws(() => readUsers(file), { instanceOf: AuthError });
  t.regex(e.message, /users\.yaml: users\[0\]\.password: must be a hash made by `edgeprompt dashboard-user`/);
  await writeFile(file, 'users:\n  - { name: lead, role: boss, password: x }\n');
  t.throws(() => readUsers(file), { message: /users\[0\]\.role/ });
  await rm(file);
  await addUser(file, 'lead', 'operator', 'first-pw-1');
  await addUser(file, 'guest', 'viewer', 'guest-pw-1');
  await addUser(file, 'lead', 'operator', 'second-pw-2'); // replaces
  const users = readUsers(file);
  t.deepEqual(users.map((u) => [u.name, u.role]), [['guest', 'viewer'], ['lead', 'operator']]);
  const s = new Sessions(users, 1000);
  t.is(await s.login('lead', 'first-pw-1', 'a', 0), 'bad');
  const ok = await s.login('lead', 'second-pw-2', 'a', 0);
  if (typeof ok === 'string') return t.fail(ok);
  t.like(s.check(ok.token, 500), { user: 'lead', role: 'operator' });
  t.like(s.check(ok.token, 1400), { user: 'lead' }, 'sliding: used at 500, valid until 1500');
  t.is(s.check(ok.token, 2500), null);
  for (let i = 0; i < 5; i++) await s.login('lead', 'nope', 'b', 10);
  t.is(await s.login('lead', 'second-pw-2', 'b', 20), 'throttled');
  t.not(await s.login('lead', 'second-pw-2', 'b', 70_000), 'throttled');
});

test('--listen, --retain-size and what counts as local', (t) => {
  t.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  t.deepEqual(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  t.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
  t.deepEqual(parseListen('8080'), { host: '127.0.0.1', port: 8080 });
  t.throws(() => parseListen('localhost:99999'), { message: /--listen takes HOST:PORT/ });
  t.is(parseSize('20GB'), 20 * 2 ** 30);
  t.is(parseSize('1.5m'), 1.5 * 2 ** 20);
  t.throws(() => parseSize('lots'), { message: /--retain-size takes a size/ });
  t.true(isLoopback('127.0.0.1') && isLoopback('127.8.0.1') && isLoopback('::1') && isLoopback('localhost'));
  t.false(isLoopback('0.0.0.0') || isLoopback('192.168.1.10') || isLoopback('::'));
});

test('the live model: its own batches and the database\'s rows merge without counting a result twice', async (t) => {
  const pg = await pgliteDir();
  t.teardown(pg.cleanup);
  const db = await openDb({ kind: 'pglite', dir: pg.dir });
  t.teardown(() => db.close());
  const now = Date.now();
  const mine = [0, 1, 2, 3].map((s) => resultPayload('d1', 'cam', s, { captureTs: now }));
  const others = [4, 5, 6].map((s) => resultPayload('d1', 'cam', s, { captureTs: now, decision: 'NG' }));
  const all = [...mine, ...others];
  await ensureDays(db, [dayOf(now)]);
  await insertResults(db, all.map((r) => ({ device: r.device, seqEpoch: r.seqEpoch, seq: r.seq, captureTs: r.captureTs, json: JSON.stringify(r), receivedTs: now })));
  const model = new LiveModel(parseShifts('none'));
  // This process stored `mine` (seq 4 is NG by the fixture's rule); another recorder stored `others`.
  model.apply({ results: mine, messages: [], malformed: [], frames: [], labels: [], duplicates: 0, ms: 1 });
  const today = () => model.devices(now)[0]!.cameras[0]!.today;
  t.deepEqual(today(), { ok: 4, ng: 0 });
  await model.poll(db, now);
  t.deepEqual(today(), { ok: 4, ng: 3 }, 'the database adds the other recorder\'s rows');
  await model.poll(db, now);
  model.apply({ results: [], messages: [], malformed: [], frames: [], labels: [], duplicates: 0, ms: 1 });
  t.deepEqual(today(), { ok: 4, ng: 3 }, 'polling again adds nothing');
  // Bug (seen in the browser test as one OK and one NG too many): a batch committed but not yet
  // applied when the poll read the database was counted by the poll and then again by its apply.
  const late = [7, 9].map((s) => resultPayload('d1', 'cam', s, { captureTs: now }));
  await insertResults(db, late.map((r) => ({ device: r.device, seqEpoch: r.seqEpoch, seq: r.seq, captureTs: r.captureTs, json: JSON.stringify(r), receivedTs: now })));
  await model.poll(db, now);
  model.apply({ results: late, messages: [], malformed: [], frames: [], labels: [], duplicates: 0, ms: 1 });
  t.deepEqual(today(), { ok: 5, ng: 4 }, 'a batch the poll saw before its apply counts once');
  // A deployment state from the device shows on its row.
  model.apply({ results: [], messages: [{ kind: 'deploy', value: deployState('d1', now), receivedTs: now }], malformed: [], frames: [], labels: [], duplicates: 0, ms: 1 });
  t.deepEqual(model.devices(now)[0]!.deploy, { installed: 'parts-vpt@1.0.6 r6', rollout: 'r-7', artifact: 'model parts-vpt@1.0.7 r7', state: 'shadow', since: now - 1000, reason: null });
});
