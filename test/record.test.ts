// The recorder against mosquitto (MQTT 5, shared subscriptions), one suite run on both databases:
// PGlite in a temporary directory and a PostgreSQL server this file starts (test/helpers/postgres.ts).
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Recorder, type RecorderOptionsInput } from '../fleet/record/recorder.ts';
import { gaps, latestMessages, malformed, sequences } from '../fleet/record/queries.ts';
import { applyRetention } from '../fleet/record/retention.ts';
import { dayOf, ensureDays, existingDays, insertResults } from '../fleet/record/store.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { startReporter } from '../runtime/mqtt/reporter.ts';
import { topics } from '../runtime/mqtt/topics.ts';
import { recordingLog, sampleHealth, sampleState, startMosquitto, until } from './helpers/brokers.ts';
import { BACKENDS, countRows, deployState, freshDb, lazyPostgres, resultPayload, resultPublisher, type Backend } from './helpers/fleet.ts';

const pg = lazyPostgres();
test.after.always(() => pg.stop());

async function setup(t: ExecutionContext, backend: Backend) {
  const dir = await mkdtemp(join(tmpdir(), 'ep-rec-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const tdb = await freshDb(backend, pg);
  t.teardown(() => tdb.cleanup());
  const start = async (o: Partial<RecorderOptionsInput> = {}, clientId = 'rec-1') => {
    const rec = await Recorder.start(tdb.db, { mqtt: { url: broker.url, clientId, reconnectPeriodMs: 100 }, maxDelayMs: 5, ...o }, { log: recordingLog().log });
    t.teardown(() => rec.close(2000));
    await rec.ready;
    return rec;
  };
  return { broker, db: tdb.db, start };
}

for (const backend of BACKENDS) {
  test(`${backend}: every result once; a repeat is a no-op; a hole is a counted gap`, async (t) => {
    t.timeout(150_000); // a first PGlite template (WebAssembly initdb) on a busy machine takes a while
    const { broker, db, start } = await setup(t, backend);
    const rec = await start();
    const pub = await resultPublisher(broker.url);
    t.teardown(() => pub.close());
    const seqs = [0, 1, 2, 3, 6, 7, 8, 9, 2, 3, 9]; // 4..5 never sent; 2, 3, 9 redelivered (the same bytes)
    const payloads = new Map([0, 1, 2, 3, 6, 7, 8, 9].map((s) => [s, resultPayload('press-1', s % 2 ? 'cam-b' : 'cam-a', s)]));
    for (const s of seqs) await pub.publish(payloads.get(s)!);
    await until(() => rec.stats().received === seqs.length, 'every message through the recorder', 20_000);
    await until(() => rec.stats().buffered === 0 && rec.stats().pendingAcks === 0, 'the last batch stored', 20_000);
    t.is(await countRows(db, 'results'), 8);
    t.is(rec.stats().stored, 8);
    t.is(rec.stats().duplicates, 3);
    const [s] = await sequences(db);
    t.like(s, { device: 'press-1', seqEpoch: 'epoch-1', minSeq: 0, maxSeq: 9, stored: 8, missing: 2 });
    t.deepEqual(await gaps(db, 'press-1'), [{ seqEpoch: 'epoch-1', from: 4, to: 5 }]);
    // OK/NG per camera: seq 9 is the only NG (seq % 5 === 4 → 4 and 9; 4 was never sent).
    const counts = await db.query<{ camera: string; ok: number; ng: number }>('SELECT camera, sum(ok)::int AS ok, sum(ng)::int AS ng FROM edgeprompt.camera_counts GROUP BY camera ORDER BY camera');
    t.deepEqual(counts, [{ camera: 'cam-a', ok: 4, ng: 0 }, { camera: 'cam-b', ok: 3, ng: 1 }]);
    // A late arrival fills the hole.
    await pub.publish(resultPayload('press-1', 'cam-a', 4));
    await pub.publish(resultPayload('press-1', 'cam-b', 5));
    await until(() => rec.stats().stored === 10, 'the late results');
    t.like((await sequences(db))[0], { stored: 10, missing: 0 });
    t.deepEqual(await gaps(db, 'press-1'), []);
  });

  test(`${backend}: malformed payloads are counted per device and code, stored nowhere, and the recorder goes on`, async (t) => {
    t.timeout(150_000); // a first PGlite template (WebAssembly initdb) on a busy machine takes a while
    const { broker, db, start } = await setup(t, backend);
    const rec = await start();
    const pub = await resultPublisher(broker.url);
    t.teardown(() => pub.close());
    await pub.raw(topics.result('press-2', 'cam'), '{not json');
    await pub.raw(topics.result('press-2', 'cam'), JSON.stringify({ ...resultPayload('press-2', 'cam', 1), score: 7 }));
    await pub.raw(topics.result('press-2', 'cam'), JSON.stringify(resultPayload('press-9', 'cam', 2))); // says another device
    // Valid for the schema, refused by PostgreSQL (jsonb has no \u0000): isolated from its batch.
    await pub.raw(topics.result('press-2', 'cam'), JSON.stringify(resultPayload('press-2', 'cam', 3)).replace('"ok-part"', '"ok\\u0000part"'));
    await pub.raw(topics.health('press-2'), JSON.stringify({ v: 1, device: 'press-2' }));
    await pub.raw('edgeprompt/v1/press-2/cam/result/extra', 'x'); // outside the layout: not subscribed at all
    for (let s = 4; s < 8; s++) await pub.publish(resultPayload('press-2', 'cam', s));
    await until(() => rec.stats().stored === 4 && rec.stats().malformed === 5, `4 stored, 5 malformed (${JSON.stringify(rec.stats())})`, 20_000);
    const m = await malformed(db);
    const byCode = Object.fromEntries(m.map((r) => [`${r.device}/${r.kind}/${r.code}`, r.count]));
    t.deepEqual(byCode, { 'press-2/result/BAD_JSON': 1, 'press-2/result/INVALID_PAYLOAD': 1, 'press-2/result/WRONG_DEVICE': 1, 'press-2/result/UNSTORABLE': 1, 'press-2/health/INVALID_PAYLOAD': 1 });
    t.regex(m.find((r) => r.code === 'INVALID_PAYLOAD' && r.kind === 'result')!.lastMessage, /score: .*1/);
    t.is(await countRows(db, 'results'), 4);
  });

  test(`${backend}: two recorders on one shared subscription store each result exactly once`, async (t) => {
    t.timeout(150_000); // a first PGlite template (WebAssembly initdb) on a busy machine takes a while
    const { broker, db, start } = await setup(t, backend);
    const a = await start({}, 'rec-a');
    const b = await start({}, 'rec-b');
    const pub = await resultPublisher(broker.url);
    t.teardown(() => pub.close());
    const N = 400;
    await Promise.all(Array.from({ length: N }, (_, i) => pub.publish(resultPayload('press-3', `cam-${i % 4}`, i))));
    await until(() => a.stats().stored + b.stats().stored === N, `${N} stored across both`, 30_000);
    t.true(a.stats().stored > 0 && b.stats().stored > 0, `the load is split: ${a.stats().stored} + ${b.stats().stored}`);
    t.is(a.stats().duplicates + b.stats().duplicates, 0);
    t.is(await countRows(db, 'results'), N);
    t.like((await sequences(db))[0], { stored: N, missing: 0, minSeq: 0, maxSeq: N - 1 });
  });

  test(`${backend}: status, state, health, events and deployment states are stored; the latest per device follows broker order`, async (t) => {
    t.timeout(150_000); // a first PGlite template (WebAssembly initdb) on a busy machine takes a while
    const { broker, db, start } = await setup(t, backend);
    const rec = await start();
    const reporter = startReporter({ url: broker.url, device: 'press-4', healthIntervalMs: 100 }, { outbox: createMemoryOutbox(), state: sampleState(), health: sampleHealth, log: recordingLog().log });
    // A deployment state (docs/deploy.md) as a device publishes it, retained; its block traffic is not stored.
    const pub = await resultPublisher(broker.url);
    t.teardown(() => pub.close());
    await pub.raw(topics.deploy('press-4'), JSON.stringify(deployState('press-4')), true);
    await pub.raw(topics.deployGet('press-4'), JSON.stringify({ any: 'block request' }));
    await until(() => rec.stats().received >= 6, 'status, state, health, deploy');
    await reporter.close(); // retained offline (reason closed)
    let latest: Awaited<ReturnType<typeof latestMessages>> = [];
    await until(() => {
      void latestMessages(db).then((l) => (latest = l));
      return latest.some((m) => m.kind === 'status' && (m.payload as { state: string }).state === 'offline');
    }, 'the offline status as the latest', 10_000);
    const kinds = new Set(latest.filter((m) => m.device === 'press-4').map((m) => m.kind));
    t.deepEqual([...kinds].sort(), ['deploy', 'health', 'state', 'status']);
    t.like(latest.find((m) => m.kind === 'deploy')!.payload, { deployment: { rollout: 'r-7', state: 'shadow' } });
    t.true((await countRows(db, 'messages', "kind = 'health'")) >= 1);
    t.is(await countRows(db, 'messages', "kind = 'status'"), 2, 'online, then offline');
    t.is(rec.stats().malformed, 0, 'the block request is ignored, not malformed');
  });
}

for (const backend of BACKENDS) {
  test(`${backend}: retention drops whole days by arrival age, then oldest first by size; never today`, async (t) => {
    t.timeout(150_000); // a first PGlite template (WebAssembly initdb) on a busy machine takes a while
    const tdb = await freshDb(backend, pg);
    t.teardown(() => tdb.cleanup());
    const { db } = tdb;
    const DAY = 86_400_000;
    const now = Date.now();
    const at = (captureTs: number, seq: number) => resultPayload('press-5', 'cam', seq, { captureTs });
    // capture days: 40 days ago, 3 days ago, 1970 (a device without a clock, received today), today
    const rows = [at(now - 40 * DAY, 0), at(now - 40 * DAY + 1, 1), at(now - 3 * DAY, 2), at(5_000, 3), at(now, 4)];
    await ensureDays(db, new Set(rows.map((r) => dayOf(r.captureTs))));
    await insertResults(db, rows.map((r) => ({ device: r.device, seqEpoch: r.seqEpoch, seq: r.seq, captureTs: r.captureTs, json: JSON.stringify(r), receivedTs: r.captureTs < DAY ? now : r.captureTs })));
    const partitions = async () => [...(await existingDays(db))].sort();
    t.deepEqual(await partitions(), [dayOf(5_000), dayOf(now - 40 * DAY), dayOf(now - 3 * DAY), dayOf(now)].sort());

    const age = await applyRetention(db, { maxAgeDays: 30, maxBytes: null }, now);
    t.deepEqual(age.droppedDays, [dayOf(now - 40 * DAY)]);
    t.deepEqual((await db.query<{ seq: number }>('SELECT seq::int FROM edgeprompt.results ORDER BY seq')).map((r) => r.seq), [2, 3, 4]);
    t.is(await countRows(db, 'sequences', "day = $1::date", [new Date(now - 40 * DAY).toISOString().slice(0, 10)]), 0, 'the day\'s sequence spans go with it');

    const size = await applyRetention(db, { maxAgeDays: null, maxBytes: 1 }, now);
    t.deepEqual(size.droppedDays, [dayOf(now - 3 * DAY), dayOf(5_000)], 'oldest arrival first, until only today is left');
    t.deepEqual(await partitions(), [dayOf(now)]);
    t.like((await sequences(db))[0], { minSeq: 4, maxSeq: 4, stored: 1, missing: 0 });
  });
}

test('a stopped recorder keeps its share of the group (mosquitto queues for offline members) until it leaves: leave() stores that backlog and ends the session', async (t) => {
  t.timeout(90_000);
  const { broker, db, start } = await setup(t, 'postgres');
  const a = await start({}, 'rec-a');
  const b = await start({}, 'rec-b');
  await b.close(); // stopped, session kept: still a member of the group
  const pub = await resultPublisher(broker.url);
  t.teardown(() => pub.close());
  await Promise.all(Array.from({ length: 200 }, (_, i) => pub.publish(resultPayload('press-6', 'cam', i))));
  await until(() => a.stats().received > 0 && a.stats().buffered === 0 && a.stats().pendingAcks === 0, 'rec-a storing its share', 20_000);
  await new Promise((r) => setTimeout(r, 500));
  const aFirst = a.stats().stored;
  t.true(aFirst < 200, `rec-a got only its share (${aFirst}); the rest waits in rec-b's session`);
  const b2 = await start({}, 'rec-b');
  await b2.leave(500);
  t.is(aFirst + b2.stats().stored, 200, 'rec-b stored its backlog before leaving');
  await Promise.all(Array.from({ length: 100 }, (_, i) => pub.publish(resultPayload('press-6', 'cam', 200 + i))));
  await until(() => a.stats().stored === aFirst + 100, 'every later result at rec-a, the only member left', 20_000);
  t.like((await sequences(db))[0], { stored: 300, missing: 0 });
});
