/**
 * The data loop end to end, as docs/data-loop.md runs it, with real parts: a PLC (the test) on a
 * socat pty triggers parts and confirms them with LABEL lines; the device (`edgeprompt run`, a
 * child process, the demo model as release 1, an ffmpeg camera) keeps every frame and spools the
 * labels; mosquitto; `edgeprompt dashboard` with its recorder on PGlite; chromium.
 * 1. The broker is stopped while parts are made and labelled, then the device is killed with
 *    SIGKILL: every kept frame and every label reaches the database exactly once (the frames the
 *    killed device left on disk included), and the frames equal what an independent subscriber saw.
 * 2. An operator relabels a frame on the Review page; it is stored with who and when.
 * 3. `data export --reviewed` writes the labelled frames; compile takes them beside the training
 *    data (site) into a signed release 2, which `edgeprompt deploy` runs in shadow on the device
 *    and commits.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { makeItemsVideo } from '../cli/demo-video.ts';
import { compileTask } from '../compiler/export/compile.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { exportData } from '../fleet/data/export.ts';
import { startDashboard } from '../fleet/dashboard/dashboard.ts';
import { parseShifts } from '../fleet/dashboard/shifts.ts';
import { runRollout } from '../fleet/deploy/controller.ts';
import { openDb } from '../fleet/record/db.ts';
import { privateKeyPem, readArtifact, verifyArtifact } from '../runtime/artifact/index.ts';
import { filters } from '../runtime/mqtt/topics.ts';
import { decodeFrameMessage } from '../runtime/schema/keep.ts';
import { recordingLog, startMosquitto, until } from './helpers/brokers.ts';
import { launchChromium } from './helpers/browser.ts';
import { demoRelease, deployKeys, fastPolicy } from './helpers/deploy.ts';
import { repoPath } from './helpers/fixtures.ts';
import { pgliteDir } from './helpers/fleet.ts';
import { PtyPeer, startPtyPair } from './helpers/pty.ts';
import { tempDir } from './helpers/runtime-models.ts';

const DEVICE = 'line-9';

test('PLC labels and kept frames → recorder exactly once across a broker stop and a device SIGKILL → review → export → release 2 in shadow', async (t) => {
  t.timeout(420_000);
  const { dir, cleanup } = await tempDir('ep-loop-e2e-');
  t.teardown(cleanup);
  const keys = deployKeys();
  await writeFile(join(dir, 'base.epk'), demoRelease(1, keys.release).bytes);
  await writeFile(join(dir, 'release.pub'), keys.releasePub);
  await writeFile(join(dir, 'release.key'), privateKeyPem(keys.release.privateKey));
  const video = await makeItemsVideo(join(dir, 'line.mp4'), repoPath('test/fixtures/garment-line/line-items.png'), { perClass: 6, fps: 10, upscale: 2 });

  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const pg = await pgliteDir();
  t.teardown(pg.cleanup);
  const db = await openDb({ kind: 'pglite', dir: pg.dir });
  t.teardown(() => db.close());
  const dash = await startDashboard(db, { recorder: { mqtt: { url: broker.url, clientId: 'e2e-dashboard', reconnectPeriodMs: 200 }, maxDelayMs: 10 }, host: '127.0.0.1', port: 0, shifts: parseShifts('none') }, recordingLog().log);
  t.teardown(() => dash.close());
  await dash.recorder!.ready;
  // An independent subscriber: every frame key that reached the broker.
  const seen = new Set<string>();
  const sub = await mqtt.connectAsync(broker.url, { clientId: 'e2e-watcher', clean: false, reconnectPeriod: 200, properties: { sessionExpiryInterval: 3600 } });
  t.teardown(() => sub.endAsync());
  sub.on('message', (_topic, payload) => {
    const d = decodeFrameMessage(payload);
    if (d.ok) seen.add(`${d.header.result.seqEpoch}/${d.header.result.seq}`);
  });
  await sub.subscribeAsync(filters.frames(), { qos: 1 });

  const pty = await startPtyPair();
  t.teardown(() => pty.stop());
  const plc = new PtyPeer(pty.b);
  await plc.open();
  t.teardown(() => plc.close());

  const cfgFile = join(dir, 'device.json');
  await writeFile(
    cfgFile,
    JSON.stringify({
      device: DEVICE,
      artifact: join(dir, 'base.epk'),
      trustedKeys: [join(dir, 'release.pub')],
      profile: { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1 },
      cameras: [{ id: 'cam', kind: 'ffmpeg', input: { kind: 'file', path: video.file, realtime: true, loop: true } }],
      triggers: { cam: { kind: 'serial', serial: { link: { kind: 'serialport', path: pty.a }, captureTimeoutMs: 3000, resultTimeoutMs: 6000, ackTimeoutMs: 3000 } } },
      mqtt: { url: broker.url, reconnectPeriodMs: 200 },
      outbox: { kind: 'file', dir: join(dir, 'outbox') },
      health: { intervalMs: 0 },
      keep: { dir: join(dir, 'keep'), rules: { random: { rate: 1 }, limits: { perMinute: null, perHour: null, perDay: null, minIntervalMs: 0 } } },
      deploy: { dir: join(dir, 'deploy'), retryMs: 1000 },
    }),
  );
  const start = (): ChildProcess => spawn(process.execPath, ['--import', 'tsx', repoPath('runtime/cli.ts'), 'run', '-c', cfgFile], { stdio: 'ignore', env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'error' } });
  let device = start();
  t.teardown(() => void device.kill('SIGKILL'));

  // The PLC: wait for a line starting with `prefix`, skipping others.
  const expect = async (prefix: string, ms = 15_000): Promise<string> => {
    const end = Date.now() + ms;
    for (;;) {
      const l = await plc.lines.next(Math.max(1, end - Date.now()));
      if (l.startsWith(prefix)) return l;
    }
  };
  const alive = async () => {
    for (let i = 0; ; i++) {
      await plc.sendLine('PING');
      if (await expect('PONG', 1000).then(() => true, () => false)) return;
      if (i > 60) throw new Error('the device never answered PING');
    }
  };
  let n = 0;
  let labelled = 0;
  /** A part: TRIG → RESULT → ACK; then the rework station's confirmation of its class. */
  const part = async (label: boolean) => {
    const id = `p${++n}`;
    await plc.sendLine(`TRIG ${id}`);
    const r = /^RESULT \S+ (OK|NG) (\S+) /.exec(await expect(`RESULT ${id} `))!;
    await plc.sendLine(`ACK ${id}`);
    if (!label || r[2] === '-') return;
    await plc.sendLine(`LABEL ${id} OK ${r[2]}`);
    await expect(`LABELED ${id}`);
    labelled++;
  };

  await alive();
  for (let i = 0; i < 6; i++) await part(i % 2 === 0);
  await until(() => dash.recorder!.stats().frames >= 3, 'the first frames in the database', 30_000);
  await broker.stop(); // parts go on; frames and labels wait in the device's spool
  for (let i = 0; i < 6; i++) await part(true);
  device.kill('SIGKILL');
  await new Promise((r) => device.once('exit', r));
  const left: string[] = [];
  for (const name of await readdir(join(dir, 'keep', 'e'))) {
    if (!/^\d+\.msg$/.test(name)) continue;
    const b = await readFile(join(dir, 'keep', 'e', name));
    const d = decodeFrameMessage(b.subarray(2 + b.readUInt16BE(0)));
    if (d.ok) left.push(`${d.header.result.seqEpoch}/${d.header.result.seq}`);
  }
  t.true(left.length >= 5, `the killed device left ${left.length} frames in its spool`);
  await broker.restart();
  device = start();
  await alive();
  for (let i = 0; i < 3; i++) await part(true);
  device.kill('SIGTERM'); // drains its outbox and spool
  await new Promise((r) => device.once('exit', r));
  await until(() => left.every((k) => seen.has(k)), 'every frame the killed device had spooled, at the subscriber', 30_000);
  const frameKeys = async () => new Set((await db.query<{ k: string }>(`SELECT seq_epoch || '/' || seq AS k FROM edgeprompt.frames`)).map((r) => r.k));
  await until(() => dash.recorder!.stats().labels === labelled && dash.recorder!.stats().frames >= seen.size, 'every label and frame stored', 30_000);
  const stored = await frameKeys();
  t.deepEqual([...stored].sort(), [...seen].sort(), 'the database holds exactly the frames that reached the broker');
  t.true(left.every((k) => stored.has(k)));
  const [{ labels, distinctTargets }] = await db.query<{ labels: number; distinctTargets: number }>(`SELECT count(*)::int AS labels, count(DISTINCT (seq_epoch, seq))::int AS "distinctTargets" FROM edgeprompt.labels`);
  t.is(labels, labelled, `each of the ${labelled} LABELED parts stored once`);
  t.is(distinctTargets, labelled, 'each label names its own result');
  t.log(`${n} parts, ${stored.size} frames, ${labelled} labels; ${left.length} frames survived the SIGKILL in the spool`);

  // 2. Review: the operator files the newest frame as a shirt (key 2).
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${dash.url}#/review`);
  await page.getByTestId('view-all').click();
  await page.getByTestId('detail').waitFor({ timeout: 20_000 });
  // The keys act only for an operator: wait until the page knows the role (its key hint shows), or a
  // digit pressed before the session's hello arrives is ignored (bug: a CI run on a loaded machine
  // pressed it first and waited 10 s for a review that was never sent).
  await page.getByTestId('detail').getByText('confirms').waitFor({ timeout: 20_000 });
  await page.keyboard.press('2');
  await page.getByTestId('history').getByText('review').waitFor({ timeout: 10_000 });
  const [review] = await db.query<{ class: string; by_name: string }>(`SELECT class, by_name FROM edgeprompt.labels WHERE source = 'review'`);
  t.deepEqual(review, { class: 'shirt', by_name: 'local' });

  // 3. Export the labelled frames, compile them beside the training data, deploy in shadow.
  const out = join(dir, 'export');
  const m = await exportData(db, { out, reviewedOnly: true });
  const [{ withLabel }] = await db.query<{ withLabel: number }>(
    `SELECT count(*)::int AS "withLabel" FROM edgeprompt.frames f WHERE EXISTS (SELECT 1 FROM edgeprompt.labels l WHERE l.device = f.device AND l.seq_epoch = f.seq_epoch AND l.seq = f.seq)`,
  );
  t.is(m.frames.length, withLabel, 'every labelled frame, filed by its class');
  t.true(m.frames.some((f) => f.label?.source === 'review' && f.class === 'shirt'), 'the review is in the export');
  // Release 1 is the garment line's artifact on the first (32-px) backbone: release 2 is re-tuned on it too (same input).
  const r2 = await compileTask({
    configFile: repoPath('configs/demo-fmnist.yaml'),
    sets: ['backbone.arch=vit_micro_patch4_32', `backbone.weights=${repoPath('compiler/backbones/weights/vit_micro_patch4_32.fmnist04.safetensors')}`, `site.dirs=[${out}]`, 'site.share=0.3', 'site.valFraction=0', 'data.limitPerClass=30', 'data.valLimitPerClass=20', 'recipe.epochs=1', `output.dir=${join(dir, 'train')}`, 'release=2', 'gates.minTop1=0'],
    precisions: ['fp32'],
    maxDropPt: 100,
    signKey: join(dir, 'release.key'),
    progress: makeProgress('none'),
    allowWeak: true,
  });
  const a = readArtifact(r2.artifact, 'release2.epk');
  t.is(a.manifest.release, 2);
  t.true(verifyArtifact(a, [keys.release.publicKey]).verified, 'signed by the release key');
  await writeFile(join(dir, 'release2.epk'), r2.artifact);

  device = start();
  await alive();
  let producing = true;
  const line = (async () => {
    while (producing) await part(false).catch(() => {});
  })();
  const result = await runRollout({
    connection: { url: broker.url },
    file: join(dir, 'release2.epk'),
    devices: DEVICE,
    policy: fastPolicy({ shadow: { minFrames: 5, maxDurationS: 120, minDecisionAgreement: 0, maxNgRateDiffPt: 100 }, watch: { durationS: 0 }, stageTimeoutS: 240 }),
    signKeys: [keys.release.privateKey],
    print: () => {},
  });
  producing = false;
  await line;
  device.kill('SIGTERM');
  await new Promise((r) => device.once('exit', r));
  t.is(result.outcome, 'completed', JSON.stringify(result.devices));
  const st = result.devices[DEVICE]!.status!;
  t.is(st.state, 'committed');
  t.is(st.artifact.release, 2);
  t.true((st.shadow?.frames ?? 0) >= 5, `compared in shadow on ${st.shadow?.frames} frames`);
});
