// The data loop at the recorder, against mosquitto on both databases (PGlite, a PostgreSQL server
// this file starts): kept frames and labels are stored once however often they arrive; a frame
// that fails its checks is counted malformed; a label that names only a trigger id is resolved
// when its result arrives; the review reads (queue, NG gallery, most uncertain first, history)
// and the line-implied rates follow; `data export` files the frames by their labels into a folder
// compile reads beside its training data.

import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { exportData, fileFrame } from '../fleet/data/export.ts';
import { frameDetail, frameImage, lineRates, reviewFrames } from '../fleet/record/loop-queries.ts';
import { insertReviewLabel } from '../fleet/record/loop-store.ts';
import { Recorder } from '../fleet/record/recorder.ts';
import { mixSiteData } from '../compiler/data/site.ts';
import { encodePng } from '../runtime/pipeline/png.ts';
import { topics } from '../runtime/mqtt/topics.ts';
import { encodeFrameMessage, type FrameHeader, type LabelPayload } from '../runtime/schema/keep.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { createHash } from 'node:crypto';
import { recordingLog, startMosquitto, until } from './helpers/brokers.ts';
import { BACKENDS, countRows, freshDb, lazyPostgres, resultPayload, resultPublisher, type Backend } from './helpers/fleet.ts';
import { syntheticSet } from './helpers/images.ts';
import { splitFraction } from '../compiler/data/sampling.ts';

const pg = lazyPostgres();
test.after.always(() => pg.stop());

const CLASSES = ['dent', 'ok-part', 'scratch'];

function frameFor(r: ResultPayload, reasons: FrameHeader['reasons'], shade: number): Buffer {
  const image = encodePng(new Uint8Array(8 * 8 * 3).fill(shade), 8, 8, 3);
  const header: FrameHeader = {
    v: 1,
    device: r.device,
    camera: r.camera,
    result: r,
    release: 4,
    task: { labels: CLASSES, okLabels: ['ok-part'], threshold: 0.5 },
    reasons,
    keptTs: r.publishTs + 5,
    image: { contentType: 'image/png', width: 8, height: 8, bytes: image.length, sha256: createHash('sha256').update(image).digest('hex') },
  };
  return encodeFrameMessage(header, image);
}

const label = (over: Partial<LabelPayload>): LabelPayload => ({
  v: 1,
  device: 'press-1',
  labelId: randomUUID(),
  ts: Date.now(),
  camera: 'cam-a',
  target: null,
  triggerId: null,
  decision: 'NG',
  class: null,
  source: 'plc',
  by: null,
  frameKept: true,
  ...over,
});

async function setup(t: ExecutionContext, backend: Backend) {
  const dir = await mkdtemp(join(tmpdir(), 'ep-loop-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const tdb = await freshDb(backend, pg);
  t.teardown(() => tdb.cleanup());
  const logged = recordingLog();
  const rec = await Recorder.start(tdb.db, { mqtt: { url: broker.url, clientId: 'rec-loop', reconnectPeriodMs: 100 }, maxDelayMs: 5 }, { log: logged.log });
  t.teardown(() => { if (logged.lines.some((l) => l.level === 'warn')) t.log(JSON.stringify(logged.lines.filter((l) => l.level === 'warn'))); });
  t.teardown(() => rec.close(2000));
  await rec.ready;
  const pub = await resultPublisher(broker.url);
  t.teardown(() => pub.close());
  return { dir, db: tdb.db, rec, pub };
}

for (const backend of BACKENDS) {
  test(`${backend}: frames and labels once each; trigger ids resolved; review, rates and export read them`, async (t) => {
    t.timeout(90_000);
    const { dir, db, rec, pub } = await setup(t, backend);
    const now = Date.now();
    const r = [0, 1, 2, 3].map((seq) => {
      const x = resultPayload('press-1', 'cam-a', seq, { captureTs: now - 1000 + seq, decision: seq === 2 ? 'NG' : 'OK', score: [0.9, 0.95, 0.3, 0.55][seq]! });
      return seq === 1 ? { ...x, triggerId: 'p1' } : x;
    });
    // A PLC label for part p1 arrives before its result: it waits unresolved.
    const byTrigger = label({ triggerId: 'p1', class: 'dent', ts: now });
    await pub.raw(topics.label('press-1'), JSON.stringify(byTrigger));
    const confirm = label({ target: { seqEpoch: 'epoch-1', seq: 2 }, class: 'scratch', ts: now, source: 'mqtt', by: 'rework-2' });
    for (const l of [confirm, confirm]) await pub.raw(topics.label('press-1'), JSON.stringify(l)); // a redelivery
    for (const x of r) await pub.publish(x);
    const frames = [frameFor(r[1]!, ['random'], 10), frameFor(r[2]!, ['ng'], 20), frameFor(r[3]!, ['uncertain'], 30)];
    for (const f of [...frames, frames[1]!]) await pub.raw(topics.frame('press-1', 'cam-a'), f);
    const bad = Buffer.from(frames[0]!);
    bad[bad.length - 1]! ^= 0xff; // the image no longer matches its sha256
    await pub.raw(topics.frame('press-1', 'cam-a'), bad);
    await until(() => rec.stats().frames === 3 && rec.stats().labels === 2 && rec.stats().malformed === 1 && rec.stats().buffered === 0, 'frames, labels and the malformed one', 20_000).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(rec.stats())}`);
    });
    t.is(await countRows(db, 'frames'), 3);
    t.is(await countRows(db, 'labels'), 2);
    t.true(rec.stats().duplicates >= 1, 'the repeated frame was a no-op');
    const [bad1] = await db.query<{ code: string; kind: string }>(`SELECT code, kind FROM edgeprompt.malformed`);
    t.deepEqual(bad1, { code: 'BAD_FRAME', kind: 'frame' });
    const [resolved] = await db.query<{ seq: number; seq_epoch: string }>(`SELECT seq, seq_epoch FROM edgeprompt.labels WHERE trigger_id = 'p1'`);
    t.deepEqual(resolved, { seq: 1, seq_epoch: 'epoch-1' }, 'the trigger id found its result');

    // Review reads.
    const queue = await reviewFrames(db, { view: 'queue', order: 'newest', limit: 10 });
    t.deepEqual(queue.map((f) => f.seq), [3], 'only seq 3 has no label');
    t.deepEqual((await reviewFrames(db, { view: 'ng', order: 'newest', limit: 10 })).map((f) => f.seq), [2]);
    t.deepEqual((await reviewFrames(db, { view: 'all', order: 'uncertain', limit: 10 })).map((f) => f.seq), [3, 2, 1], '|score − 0.5|: 0.05, 0.2, 0.45');
    const d1 = (await frameDetail(db, { device: 'press-1', seqEpoch: 'epoch-1', seq: 1 }))!;
    t.like(d1, { camera: 'cam-a', triggerId: 'p1', release: 4, decision: 'OK', classes: CLASSES, okLabels: ['ok-part'], truth: { class: 'dent', decision: 'NG', source: 'plc' } });
    t.is(d1.history.length, 1);
    const img = await frameImage(db, { device: 'press-1', seqEpoch: 'epoch-1', seq: 2 });
    t.is(img!.contentType, 'image/png');
    t.deepEqual([...(await sharp(Buffer.from(img!.image)).raw().toBuffer()).subarray(0, 3)], [20, 20, 20]);

    // An operator's review: seq 3 is good after all; seq 1's history grows.
    await insertReviewLabel(db, { labelId: randomUUID(), device: 'press-1', camera: 'cam-a', seqEpoch: 'epoch-1', seq: 3, decision: 'OK', class: 'ok-part', by: 'anna', ts: now + 10 });
    await insertReviewLabel(db, { labelId: randomUUID(), device: 'press-1', camera: 'cam-a', seqEpoch: 'epoch-1', seq: 1, decision: 'NG', class: 'scratch', by: 'anna', ts: now + 20 });
    t.deepEqual(await reviewFrames(db, { view: 'queue', order: 'newest', limit: 10 }), []);
    const h1 = (await frameDetail(db, { device: 'press-1', seqEpoch: 'epoch-1', seq: 1 }))!.history;
    t.deepEqual(h1.map((h) => [h.source, h.by, h.class]), [['plc', null, 'dent'], ['review', 'anna', 'scratch']]);

    // What the line's labels imply: seq 1 (truth NG, decided OK) escaped; seq 2 caught; seq 3 passed rightly.
    const [rates] = await lineRates(db);
    t.like(rates, { device: 'press-1', camera: 'cam-a', release: 4, labelled: 3, good: 1, defective: 2, escapes: 1, falseRejects: 0, escapeRate: 0.5, falseRejectRate: 0 });

    // The export files each frame under its newest label's class; compile reads it.
    const out = join(dir, 'export');
    const m = await exportData(db, { out, reviewedOnly: true });
    t.deepEqual(m.classes, { scratch: 2, 'ok-part': 1 });
    t.deepEqual(m.frames.map((f) => [f.seq, f.class, f.label?.by ?? null]), [[1, 'scratch', 'anna'], [2, 'scratch', 'rework-2'], [3, 'ok-part', 'anna']]);
    t.deepEqual(await readFile(join(out, m.frames[1]!.file)), Buffer.from((await frameImage(db, { device: 'press-1', seqEpoch: 'epoch-1', seq: 2 }))!.image), 'the image as the device encoded it');
    const split = splitFraction(syntheticSet({ dent: 4, 'ok-part': 4, scratch: 4 }, 8), 0.25, 0);
    const mixed = await mixSiteData(split, { dirs: [out], share: null, valFraction: 0 }, { baseDir: dir, seed: 0 });
    t.is(mixed.counts.train, 3);
  });
}

test('fileFrame: a class from the label, a confirmation, an OK with one good class; an NG without a class is skipped', (t) => {
  const base = { label: 'dent', decision: 'NG' as const, classes: CLASSES, okLabels: ['ok-part'] };
  const truth = (decision: 'OK' | 'NG', cls: string | null) => ({ labelId: 'x', decision, class: cls, source: 'plc', by: null, ts: 0 });
  t.deepEqual(fileFrame({ ...base, truth: null }), { class: 'dent', decision: 'NG' }, 'unreviewed: the prediction');
  t.deepEqual(fileFrame({ ...base, truth: truth('OK', 'ok-part') }), { class: 'ok-part', decision: 'OK' });
  t.deepEqual(fileFrame({ ...base, truth: truth('NG', null) }), { class: 'dent', decision: 'NG' }, 'an NG confirmation keeps the predicted defect');
  t.deepEqual(fileFrame({ ...base, truth: truth('OK', null) }), { class: 'ok-part', decision: 'OK' }, 'overridden to OK: the one good class');
  t.deepEqual(fileFrame({ ...base, label: 'ok-part', decision: 'OK', truth: truth('NG', null) }), { skip: 'NG label without a class' });
  t.deepEqual(fileFrame({ ...base, okLabels: null, label: 'dent', truth: truth('NG', null) }), { skip: 'NG label without a class' }, 'every class good: an NG cannot be filed');
});
