/**
 * The review in a real browser: kept frames and a PLC label reach `edgeprompt dashboard`'s
 * recorder over mosquitto; in headless chromium the Review page shows the queue, an operator
 * relabels with the keyboard (a digit picks the class, Enter confirms the model), each label is
 * stored with who and when, leaves the queue and shows in the frame's history; the NG gallery and
 * "most uncertain first" order the frames; the line-implied escape rate follows; the export has
 * the operator's classes. A device's drift figures (health) and its `drift` event show on the Review
 * page and the Fleet page (the camera marked, the event in its row). Screenshot: docs/img/dashboard-review.png with EDGEPROMPT_SCREENSHOTS=1.
 */
import test from 'ava';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderPart } from '../compiler/data/parts.ts';
import { exportData } from '../fleet/data/export.ts';
import { startDashboard } from '../fleet/dashboard/dashboard.ts';
import { parseShifts } from '../fleet/dashboard/shifts.ts';
import { openDb } from '../fleet/record/db.ts';
import { topics } from '../runtime/mqtt/topics.ts';
import { encodePng } from '../runtime/pipeline/png.ts';
import { encodeFrameMessage, type FrameHeader, type LabelPayload } from '../runtime/schema/keep.ts';
import type { EventPayload, HealthPayload } from '../runtime/schema/payloads.ts';
import { recordingLog, startMosquitto, until } from './helpers/brokers.ts';
import { launchChromium } from './helpers/browser.ts';
import { repoPath } from './helpers/fixtures.ts';
import { pgliteDir, resultPayload, resultPublisher } from './helpers/fleet.ts';

const CLASSES = ['dent', 'missing_hole', 'ok', 'scratch', 'stain'];

test('review in chromium: keyboard relabels are stored with who and when, leave the queue, and reach the export; drift shows', async (t) => {
  t.timeout(180_000);
  const dir = await mkdtemp(join(tmpdir(), 'ep-review-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const shots = process.env.EDGEPROMPT_SCREENSHOTS === '1' ? repoPath('docs/img') : dir;
  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const pg = await pgliteDir();
  t.teardown(pg.cleanup);
  const db = await openDb({ kind: 'pglite', dir: pg.dir });
  t.teardown(() => db.close());
  const dash = await startDashboard(db, { recorder: { mqtt: { url: broker.url, clientId: 'review-dashboard', reconnectPeriodMs: 200 }, maxDelayMs: 10 }, host: '127.0.0.1', port: 0, shifts: parseShifts('none') }, recordingLog().log);
  t.teardown(() => dash.close());
  await dash.recorder!.ready;

  // Six parts on line-3/cam: the model passed seq 0 (a dent, as the PLC says later), failed 1..3.
  const pub = await resultPublisher(broker.url);
  t.teardown(() => pub.close());
  const now = Date.now();
  const truths: string[] = ['dent', 'scratch', 'stain', 'ok', 'ok', 'missing_hole'];
  const said: [string, number, 'OK' | 'NG'][] = [['ok', 0.62, 'OK'], ['scratch', 0.91, 'NG'], ['dent', 0.55, 'NG'], ['ok', 0.48, 'NG'], ['ok', 0.97, 'OK'], ['missing_hole', 0.8, 'NG']];
  for (let seq = 0; seq < 6; seq++) {
    const [label, score, decision] = said[seq]!;
    const r = { ...resultPayload('line-3', 'cam', seq, { captureTs: now - 60_000 + seq * 1000, decision, score }), label, topK: [{ label, score }], okScore: label === 'ok' ? score : 1 - score, triggerId: `p${seq}` };
    await pub.publish(r);
    const image = encodePng(await renderPart(3, truths[seq] as 'ok', seq, 64), 64, 64, 3);
    const header: FrameHeader = {
      v: 1, device: 'line-3', camera: 'cam', result: r, release: 2, task: { labels: CLASSES, okLabels: ['ok'], threshold: 0.5 }, reasons: decision === 'NG' ? ['ng'] : ['uncertain'], keptTs: r.captureTs + 50,
      image: { contentType: 'image/png', width: 64, height: 64, bytes: image.length, sha256: createHash('sha256').update(image).digest('hex') },
    };
    await pub.raw(topics.frame('line-3', 'cam'), encodeFrameMessage(header, image));
  }
  const plc: LabelPayload = { v: 1, device: 'line-3', labelId: randomUUID(), ts: now, camera: 'cam', target: null, triggerId: 'p0', decision: 'NG', class: 'dent', source: 'plc', by: null, frameKept: true };
  await pub.raw(topics.label('line-3'), JSON.stringify(plc));
  await until(() => dash.recorder!.stats().frames === 6 && dash.recorder!.stats().labels === 1, 'the frames and the PLC label stored', 20_000);
  // The device's drift monitor says line-3/cam drifts: its health figures and its event.
  const model = resultPayload('line-3', 'cam', 0).model;
  const health: HealthPayload = {
    v: 1, device: 'line-3', ts: Date.now(), uptimeS: 60, rssBytes: 1e8, cpuTempC: null, model, ep: 'cpu', inferMs: { p50: 5, p99: 9 },
    cameras: { cam: { state: 'running', fpsIn: 10, fpsProcessed: 10, droppedFrames: 0, drift: { scorePsi: 0.41, classPsi: 0.12, frames: 500, drifting: true } } },
    mqtt: { connected: true, published: 6, acked: 6, outboxDepth: 0, dropped: 0, reconnects: 0 },
  };
  await pub.raw(topics.health('line-3'), JSON.stringify(health));
  const drift: EventPayload = { v: 1, device: 'line-3', ts: Date.now(), type: 'drift', camera: 'cam', state: 'drifting', model, scorePsi: 0.41, classPsi: 0.12, frames: 500, threshold: { scorePsi: 0.25, classPsi: null } };
  await pub.raw(topics.event('line-3'), JSON.stringify(drift));

  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${dash.url}#/review`);
  // Five frames wait for review: seq 0 has the PLC label.
  await page.getByTestId('count').filter({ hasText: '5 frame(s)' }).waitFor({ timeout: 20_000 });
  t.is(await page.getByTestId('gallery').getByTestId('thumb').count(), 5);
  await page.getByTestId('detail').locator('img').waitFor();
  await page.getByTestId('drift').getByText('line-3/cam 0.41 · 0.12 drifting').waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(shots, 'dashboard-review.png'), fullPage: true });
  // The line's own label already makes seq 0 an escape: a dent the model passed.
  await page.getByTestId('line-rates').getByTestId('escape-rate').filter({ hasText: '100.0 %' }).waitFor({ timeout: 10_000 });

  // Newest first: seq 5 (missing hole, right) — Enter confirms the model; then seq 4 (ok, right) — Enter.
  await page.getByTestId('detail').getByText('seq 5').waitFor();
  await page.keyboard.press('Enter');
  await page.getByTestId('count').filter({ hasText: '4 frame(s)' }).waitFor({ timeout: 10_000 });
  await page.getByTestId('detail').getByText('seq 4').waitFor();
  await page.keyboard.press('Enter');
  await page.getByTestId('count').filter({ hasText: '3 frame(s)' }).waitFor({ timeout: 10_000 });
  // seq 3: the model failed a good part (p(ok) 0.48): key 3 is `ok`.
  await page.getByTestId('detail').getByText('seq 3').waitFor();
  await page.keyboard.press('3');
  await page.getByTestId('count').filter({ hasText: '2 frame(s)' }).waitFor({ timeout: 10_000 });
  // seq 2: the model said dent, it is a stain (key 5). Then look at it again in the NG gallery.
  await page.keyboard.press('5');
  await page.getByTestId('count').filter({ hasText: '1 frame(s)' }).waitFor({ timeout: 10_000 });

  const rows = await db.query<{ seq: number; class: string; decision: string; source: string; by_name: string }>(
    `SELECT seq, class, decision, source, by_name FROM edgeprompt.labels WHERE source = 'review' ORDER BY ts`,
  );
  t.deepEqual(rows.map((r) => [r.seq, r.class, r.decision, r.by_name]), [[5, 'missing_hole', 'NG', 'local'], [4, 'ok', 'OK', 'local'], [3, 'ok', 'OK', 'local'], [2, 'stain', 'NG', 'local']]);

  await page.getByTestId('view-ng').click();
  await page.getByTestId('count').filter({ hasText: '4 frame(s)' }).waitFor({ timeout: 10_000 }); // seq 1, 2, 3, 5 were decided NG
  await page.getByTestId('order').selectOption('uncertain');
  await page.getByTestId('detail').getByText('seq 3').waitFor({ timeout: 10_000 }); // p(ok) 0.48: the closest to 0.5
  await page.getByTestId('gallery').locator('[data-seq="2"]').click();
  const history = page.getByTestId('history');
  await history.getByText('stain').waitFor();
  t.is(await history.locator('tbody tr').count(), 1);
  await page.keyboard.press('1'); // relabel seq 2 again: a dent after all
  await history.locator('tbody tr').nth(1).getByText('dent').waitFor({ timeout: 10_000 });
  t.regex((await history.locator('tbody tr').nth(1).textContent()) ?? '', /local.*review.*dent/);
  // One escape (seq 0) among the defective parts the line named; one false reject (seq 3) among the good.
  await page.getByTestId('line-rates').getByTestId('false-reject-rate').filter({ hasText: '50.0 %' }).waitFor({ timeout: 10_000 });
  // The Fleet page marks the drifting camera and shows the drift event in the device's row.
  await page.goto(`${dash.url}#/`);
  await page.getByTestId('camera-line-3-cam').getByTestId('drifting').waitFor({ timeout: 10_000 });
  await page.getByText('camera cam drifting: score PSI 0.41 (bound 0.25), class PSI 0.12 over 500 results').waitFor({ timeout: 10_000 });
  t.deepEqual(errors, []);

  const m = await exportData(db, { out: join(dir, 'export'), reviewedOnly: true });
  t.deepEqual(Object.fromEntries(m.frames.map((f) => [f.seq, f.class])), { 0: 'dent', 2: 'dent', 3: 'ok', 4: 'ok', 5: 'missing_hole' }, 'the newest label of each; seq 1 was never reviewed');
  t.is(m.frames.find((f) => f.seq === 2)!.label!.by, 'local');
});
