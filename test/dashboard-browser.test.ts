/**
 * The dashboard end to end in a real browser: the device runtime (two cameras on a sample line
 * video through ffmpeg, the committed demo artifact) → mosquitto → `edgeprompt dashboard`'s
 * recorder and server (PGlite) → headless chromium.
 * - the page's OK/NG counters equal what an independent MQTT subscriber received;
 * - the latest frame comes from the device (`snapshot`) with a verdict over it;
 * - a threshold set on the Actions page reaches the device, its reply appears, and the new
 *   threshold comes back through the device's retained state; pause and resume from the page;
 *   a command the device refuses shows the device's code; a malformed message is counted.
 * Screenshots go to a temporary directory, or to docs/img/ with EDGEPROMPT_SCREENSHOTS=1
 * (`npm run screenshots`), where docs/dashboard.md and the README show them.
 */
import test from 'ava';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeItemsVideo } from '../cli/demo-video.ts';
import { startDashboard } from '../fleet/dashboard/dashboard.ts';
import { parseShifts } from '../fleet/dashboard/shifts.ts';
import { openDb } from '../fleet/record/db.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import mqtt from 'mqtt';
import { topics } from '../runtime/mqtt/topics.ts';
import { recordingLog, startMosquitto, until } from './helpers/brokers.ts';
import { launchChromium } from './helpers/browser.ts';
import { repoPath } from './helpers/fixtures.ts';
import { pgliteDir, resultPayload } from './helpers/fleet.ts';

const DEVICE = 'line-7';
const CAMERAS = ['infeed', 'outfeed'];

test('runtime → mosquitto → dashboard → chromium: counters match the subscriber; a threshold set on the page reaches the device', async (t) => {
  t.timeout(180_000);
  const dir = await mkdtemp(join(tmpdir(), 'ep-dash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const shots = process.env.EDGEPROMPT_SCREENSHOTS === '1' ? repoPath('docs/img') : dir;
  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const video = await makeItemsVideo(join(dir, 'line.mp4'), repoPath('test/fixtures/garment-line/line-items.png'), { perClass: 10, fps: 10, upscale: 2 });

  // What an independent line-PC subscriber receives, per camera.
  const seen = new Map<string, { ok: number; ng: number; seqs: Set<number> }>(CAMERAS.map((c) => [c, { ok: 0, ng: 0, seqs: new Set() }]));
  const sub = subscribeResults({ url: broker.url, clientId: 'test-subscriber', device: DEVICE, onError: () => {} }, ({ result: r }) => {
    const c = seen.get(r.camera);
    if (!c || c.seqs.has(r.seq)) return; // the test's own messages later; QoS 1 redelivery
    c.seqs.add(r.seq);
    if (r.decision === 'OK') c.ok++;
    else c.ng++;
  });
  t.teardown(() => sub.close());
  await sub.ready;

  const pg = await pgliteDir();
  t.teardown(pg.cleanup);
  const db = await openDb({ kind: 'pglite', dir: pg.dir });
  t.teardown(() => db.close());
  const { log } = recordingLog();
  const dash = await startDashboard(db, { recorder: { mqtt: { url: broker.url, clientId: 'test-dashboard', reconnectPeriodMs: 200 }, maxDelayMs: 10 }, host: '127.0.0.1', port: 0, shifts: parseShifts('A=06:00-14:00,B=14:00-22:00,C=22:00-06:00') }, log);
  t.teardown(() => dash.close());
  await dash.recorder!.ready;

  const cfg = parseDeviceConfig(
    {
      device: DEVICE,
      artifact: repoPath('test/fixtures/garment-line/fmnist-vpt-deep.epk'),
      trustedKeys: [repoPath('test/fixtures/garment-line/demo.pub')],
      profile: 'x86-cpu',
      cameras: CAMERAS.map((id) => ({ id, kind: 'ffmpeg', input: { kind: 'file', path: video.file, realtime: true } })),
      mqtt: { url: broker.url, reconnectPeriodMs: 200 },
      outbox: { kind: 'file', dir: join(dir, 'outbox') },
      health: { intervalMs: 500 },
    },
    join(dir, 'device.yaml'),
  );
  const rt = await Runtime.start(cfg, { log });
  t.teardown(() => rt.stop());

  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(dash.url);
  await page.getByTestId(`device-${DEVICE}`).getByText('online').waitFor({ timeout: 30_000 });
  await page.getByTestId('ticker').locator('tbody tr').first().waitFor({ timeout: 30_000 });
  // The screenshot shows the line running, unless the video ended first (a slow machine).
  await Promise.race([page.getByTestId(`camera-${DEVICE}-${CAMERAS[1]}`).getByText('running').waitFor({ timeout: 30_000 }), rt.ended]);
  await page.screenshot({ path: join(shots, 'dashboard-fleet.png') });

  // The line runs to the end of the video; every result is stored and counted.
  await rt.ended;
  const total = () => [...seen.values()].reduce((s, c) => s + c.ok + c.ng, 0);
  await until(() => total() === rt.pipeline.stats()[CAMERAS[0]!]!.processed + rt.pipeline.stats()[CAMERAS[1]!]!.processed, 'the subscriber got every processed frame', 20_000);
  await until(() => dash.recorder!.stats().stored === total(), 'the recorder stored every result', 20_000);
  for (const camera of CAMERAS) {
    const want = seen.get(camera)!;
    const row = page.getByTestId(`camera-${DEVICE}-${camera}`);
    await row.getByTestId('today').filter({ hasText: `${want.ok} / ${want.ng}` }).waitFor({ timeout: 10_000 });
  }
  // 100 frames in all; how many are processed depends on the machine (newest frame wins).
  t.true(total() >= 6, `the line produced ${total()} results`);

  // Camera page: counters equal the subscriber's, the latest frame from the device.
  const cam = CAMERAS[0]!;
  const want = seen.get(cam)!;
  await page.goto(`${dash.url}#/camera/${DEVICE}/${cam}`);
  const card = page.getByTestId('count-24h');
  await card.getByTestId('ok').filter({ hasText: new RegExp(`^${want.ok}$`) }).waitFor({ timeout: 10_000 });
  t.is(await card.getByTestId('ng').textContent(), String(want.ng));
  t.is(await page.getByTestId('count-today').getByTestId('ok').textContent(), String(want.ok));
  const img = page.getByTestId('snapshot').locator('img');
  await img.waitFor({ timeout: 15_000 });
  t.true(await img.evaluate((el) => { const i = el as unknown as { complete: boolean; naturalWidth: number }; return i.complete && i.naturalWidth > 0; }), 'the snapshot decoded');
  t.regex((await page.getByTestId('verdict').textContent()) ?? '', /^(OK|NG) · /);
  t.is(await page.getByTestId('camera-ticker').locator('tbody tr').count(), Math.min(12, want.ok + want.ng));
  await page.screenshot({ path: join(shots, 'dashboard-camera.png'), fullPage: true });

  // Actions: a threshold for one camera, from the page to the device and back.
  await page.goto(`${dash.url}#/actions`);
  const box = page.getByTestId(`actions-${DEVICE}`);
  await box.getByTestId('threshold-camera').selectOption(cam);
  await box.getByTestId('threshold-input').fill('0.97');
  await box.getByTestId('threshold-set').click();
  await box.getByTestId('reply-ok').waitFor({ timeout: 10_000 });
  t.regex((await box.getByTestId('reply').textContent()) ?? '', /"infeed": 0\.97/);
  t.is(rt.pipeline.thresholds.toPayload(rt.host.current!.manifest).cameras[cam], 0.97, 'the device applied it');
  await box.getByTestId(`action-row-${cam}`).getByText('0.97').waitFor({ timeout: 10_000 }); // via the retained state
  await page.getByTestId('action-log').getByText('set-threshold').waitFor({ timeout: 10_000 });
  // Pause and resume a camera from the page.
  await box.getByTestId(`action-row-${CAMERAS[1]}`).getByTestId('pause').click();
  await box.getByTestId(`action-row-${CAMERAS[1]}`).getByTestId('resume').waitFor({ timeout: 10_000 });
  t.deepEqual(rt.pipeline.pausedCameras, [CAMERAS[1]]);
  await page.screenshot({ path: join(shots, 'dashboard-actions.png') });
  await box.getByTestId(`action-row-${CAMERAS[1]}`).getByTestId('resume').click();
  await box.getByTestId(`action-row-${CAMERAS[1]}`).getByTestId('pause').waitFor({ timeout: 10_000 });
  t.deepEqual(rt.pipeline.pausedCameras, []);

  // A camera the device no longer has (it reported once, then left the config): the device
  // refuses the command and the page shows its code. And a malformed message is counted, not fatal.
  const raw = await mqtt.connectAsync(broker.url);
  t.teardown(() => raw.endAsync());
  await raw.publishAsync(topics.result(DEVICE, 'retired'), JSON.stringify({ ...resultPayload(DEVICE, 'retired', 9_000_000, { epoch: 'old-outbox' }) }), { qos: 1 });
  await raw.publishAsync(topics.result(DEVICE, CAMERAS[0]!), '{"v": 1, "truncated', { qos: 1 });
  await box.getByTestId('action-row-retired').getByTestId('pause').click({ timeout: 15_000 });
  await box.getByTestId('reply-code').filter({ hasText: 'CAMERA_UNKNOWN' }).waitFor({ timeout: 10_000 });
  await page.goto(dash.url);
  await page.getByTestId('malformed').locator('tbody tr').first().waitFor({ timeout: 15_000 }); // read from the database every 5 s
  t.is(await page.getByTestId('malformed').locator('tbody tr').count(), 1);
  t.regex((await page.getByTestId('malformed').textContent()) ?? '', /BAD_JSON/);

  for (const f of ['dashboard-fleet.png', 'dashboard-camera.png', 'dashboard-actions.png']) t.true((await stat(join(shots, f))).size > 10_000, f);
  t.deepEqual(errors, [], 'no errors in the page');
});
