/**
 * `npm run bench:record` → docs/bench/record.md: the recorder and the dashboard.
 *
 * 1. The database alone: the recorder's own batched insert (insertResults: ON CONFLICT DO NOTHING
 *    on the result key, plus the sequence and per-camera count upkeep in the same statement) of
 *    ready-made rows, PGlite in this process (batches of 500) and a PostgreSQL server through `pg`
 *    (batches of 1000; a fresh cluster with the server's default durability).
 * 2. The whole recorder, end to end: N results wait in mosquitto for the recorder's persistent
 *    session; the clock runs from Recorder.start to the last one stored (MQTT in → parsed →
 *    validated → stored → PUBACK). The publisher is done before, so its speed does not count.
 * 3. Publish → visible: the dashboard (its recorder, server and WebSocket) with the Fleet page open
 *    in headless chromium, 100 results/s across 10 cameras; the page notes Date.now() − publishTs
 *    of every result after the paint that showed it (window.edgeprompt.visibleLatencyMs).
 * 4. The page's bundle size.
 *
 *   npm run bench:record [-- --n 20000 --runs 3 --visible-s 30 --no-pg --no-browser]
 */
import mqtt from 'mqtt';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureWebBundle } from '../fleet/dashboard/bundle.ts';
import { startDashboard } from '../fleet/dashboard/dashboard.ts';
import { parseShifts } from '../fleet/dashboard/shifts.ts';
import { openDb, type Db } from '../fleet/record/db.ts';
import { migrate } from '../fleet/record/migrations.ts';
import { Recorder } from '../fleet/record/recorder.ts';
import { dayOf, ensureDays, insertResults, type ResultRow } from '../fleet/record/store.ts';
import { topics } from '../runtime/mqtt/topics.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { recordingLog, startMosquitto } from '../test/helpers/brokers.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { resultPayload } from '../test/helpers/fleet.ts';
import { startPostgres, type TestPostgres } from '../test/helpers/postgres.ts';
import { median, writeReport } from './lib.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = opt('--n', 20_000);
const RUNS = opt('--runs', 3);
const VISIBLE_S = opt('--visible-s', 30);
const WITH_PG = !args.includes('--no-pg');
const WITH_BROWSER = !args.includes('--no-browser');
const CAMERAS = 10;
const log = recordingLog().log;

type Kind = 'pglite' | 'postgres';
const BATCH: Record<Kind, number> = { pglite: 500, postgres: 1000 };
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
const mmm = (xs: number[]) => `${fmt(Math.min(...xs))} / **${fmt(median(xs))}** / ${fmt(Math.max(...xs))}`;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const say = (s: string) => process.stderr.write(`${s}\n`);

/** N results of 10 cameras on 2 devices, run `run` (its own seqEpoch, so runs never collide). */
function payloads(run: string, n: number, now = Date.now()): ResultPayload[] {
  return Array.from({ length: n }, (_, i) => resultPayload(`bench-${i % 2}`, `cam-${i % CAMERAS}`, Math.floor(i / 2), { epoch: run, captureTs: now - 20 }));
}

async function clear(db: Db): Promise<void> {
  await db.exec('TRUNCATE edgeprompt.results, edgeprompt.sequences, edgeprompt.camera_counts, edgeprompt.result_days, edgeprompt.messages, edgeprompt.device_latest');
}

/** A few batches through a freshly opened database, so a timed run does not pay its warm-up (plans, caches, WebAssembly tiers). */
async function warm(db: Db, kind: Kind): Promise<void> {
  const rows: ResultRow[] = payloads('warm-up', 4 * BATCH[kind]).map((r) => ({ device: r.device, seqEpoch: r.seqEpoch, seq: r.seq, captureTs: r.captureTs, json: JSON.stringify(r), receivedTs: Date.now() }));
  await ensureDays(db, new Set(rows.map((r) => dayOf(r.captureTs))));
  for (let i = 0; i < rows.length; i += BATCH[kind]) await insertResults(db, rows.slice(i, i + BATCH[kind]));
  await clear(db);
}

async function dbAlone(db: Db, kind: Kind): Promise<number[]> {
  const rates: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    await clear(db);
    const rows: ResultRow[] = payloads(`db-${run}`, N).map((r) => ({ device: r.device, seqEpoch: r.seqEpoch, seq: r.seq, captureTs: r.captureTs, json: JSON.stringify(r), receivedTs: Date.now() }));
    await ensureDays(db, new Set(rows.map((r) => dayOf(r.captureTs))));
    const t0 = performance.now();
    for (let i = 0; i < rows.length; i += BATCH[kind]) await insertResults(db, rows.slice(i, i + BATCH[kind]));
    rates.push(N / ((performance.now() - t0) / 1000));
    say(`  ${kind} database alone, run ${run + 1}: ${fmt(rates.at(-1)!)} rows/s`);
  }
  return rates;
}

/** Results/s per run, and the share of the run the recorder spent waiting for the database. */
async function endToEnd(db: Db, kind: Kind, url: string, tag = '', runs: number[] = Array.from({ length: RUNS }, (_, i) => i)): Promise<number[] & { dbShare: number[] }> {
  const rates = Object.assign([] as number[], { dbShare: [] as number[] });
  for (const run of runs) {
    await clear(db);
    const clientId = `bench-rec-${kind}${tag}-${run}`;
    // A group of its own: mosquitto gives offline members of a group their share, so an earlier
    // run's session in the same group would take part of this run's results.
    const group = clientId;
    // Make the persistent session (and its subscriptions), then disconnect: the broker queues for it.
    const first = await Recorder.start(db, { mqtt: { url, clientId }, group, maxRows: BATCH[kind] }, { log });
    await first.ready;
    await first.close();
    const pub = await mqtt.connectAsync(url, { protocolVersion: 5 });
    const list = payloads(`e2e-${run}`, N);
    for (let i = 0; i < list.length; i += 1000) await Promise.all(list.slice(i, i + 1000).map((r) => pub.publishAsync(topics.result(r.device, r.camera), JSON.stringify(r), { qos: 1 })));
    await pub.endAsync();
    const t0 = performance.now();
    const rec = await Recorder.start(db, { mqtt: { url, clientId }, group, maxRows: BATCH[kind] }, { log });
    let dbMs = 0;
    rec.on('stored', (b) => (dbMs += b.ms));
    while (rec.stats().stored < N) {
      if (performance.now() - t0 > 600_000) throw new Error(`end to end: only ${rec.stats().stored} of ${N} stored after 10 min`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = performance.now() - t0;
    rates.push(N / (elapsed / 1000));
    rates.dbShare.push(dbMs / elapsed);
    const s = rec.stats();
    say(`  ${kind}${tag} end to end, run ${run + 1}: ${fmt(rates.at(-1)!)} results/s (${s.batches} batches, ${s.duplicates} duplicates)`);
    // Leave, not close: a closed member's session stays subscribed, and mosquitto
    // (max_queued_messages 0) would queue every later phase's results for it, slowing them.
    await rec.leave(200);
  }
  return rates;
}

/** 100 results/s over 10 cameras for VISIBLE_S seconds; latencies the page measured. */
async function visible(db: Db, kind: Kind, url: string): Promise<{ lat: number[]; sent: number }> {
  const dash = await startDashboard(db, { recorder: { mqtt: { url, clientId: `bench-dash-${kind}` }, group: `bench-dash-${kind}`, maxRows: BATCH[kind] }, host: '127.0.0.1', port: 0, shifts: parseShifts('none') }, log);
  const browser = await launchChromium();
  try {
    await dash.recorder!.ready;
    const page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
    await page.goto(dash.url);
    await page.getByTestId('fleet').waitFor();
    const pub = await mqtt.connectAsync(url, { protocolVersion: 5 });
    const total = 100 * VISIBLE_S;
    const t0 = Date.now();
    const seqs = new Map<string, number>();
    for (let i = 0; i < total; i++) {
      const due = t0 + i * 10; // one every 10 ms, cameras in turn
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const device = `line-${i % 2}`;
      const seq = seqs.get(device) ?? 0;
      seqs.set(device, seq + 1);
      const r = { ...resultPayload(device, `cam-${i % CAMERAS}`, seq, { epoch: `vis-${t0}` }), publishTs: Date.now() };
      pub.publish(topics.result(device, r.camera), JSON.stringify(r), { qos: 1 });
    }
    await new Promise((r) => setTimeout(r, 2000));
    await pub.endAsync();
    const lat = await page.evaluate(() => (globalThis as unknown as { edgeprompt: { visibleLatencyMs: number[] } }).edgeprompt.visibleLatencyMs.slice());
    return { lat, sent: total };
  } finally {
    await browser.close();
    await dash.recorder?.leave(200); // ends its session, as in endToEnd
    await dash.close();
  }
}

const load0 = loadavg()[0]!;
const t0 = Date.now();
const dir = await mkdtemp(join(tmpdir(), 'ep-bench-record-'));
const broker = await startMosquitto({ dir, config: ['max_queued_messages 0', 'max_inflight_messages 0'] });
const mosquittoVersion = (() => {
  try {
    return execFileSync('/usr/sbin/mosquitto', ['-h'], { encoding: 'utf8' });
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? 'mosquitto'); // -h exits 3 after printing
  }
})().split('\n')[0]!.trim();
let pgServer: TestPostgres | null = null;
const VISIBLE_ROW = `publish → visible on the Fleet page, 100 results/s over ${CAMERAS} cameras for ${VISIBLE_S} s: p50 / **p99** / max ms (results painted / sent)`;
// The table's rows, in this order.
const rows: Record<string, Partial<Record<Kind, string>>> = Object.fromEntries(
  [
    'database alone: the recorder\'s batched insert, rows/s (min / median / max)',
    'recorder end to end: MQTT in → parsed → validated → stored → PUBACK, results/s',
    '… share of that time a batch was in the database (median)',
    'recorder end to end, PGlite in the recorder\'s own thread instead of a worker, results/s',
    ...(WITH_BROWSER ? [VISIBLE_ROW] : []),
  ].map((k) => [k, {}]),
);
const ratio: Partial<Record<Kind, string>> = {};
let pgliteFirstOpenMs = 0;
try {
  const kinds: Kind[] = WITH_PG ? ['pglite', 'postgres'] : ['pglite'];
  for (const kind of kinds) {
    say(`${kind}:`);
    let db: Db;
    if (kind === 'pglite') {
      const t = performance.now();
      db = await openDb({ kind: 'pglite', dir: join(dir, 'pglite') });
      pgliteFirstOpenMs = performance.now() - t;
    } else {
      pgServer = await startPostgres({ durable: true });
      db = await openDb({ kind: 'postgres', url: pgServer.url });
    }
    await migrate(db);
    await warm(db, kind);
    const alone = await dbAlone(db, kind);
    const e2e = kind === 'postgres' ? await endToEnd(db, kind, broker.url) : Object.assign([] as number[], { dbShare: [] as number[] });
    (rows['database alone: the recorder\'s batched insert, rows/s (min / median / max)'] ??= {})[kind] = `${mmm(alone)} (batches of ${BATCH[kind]})`;
    if (kind === 'postgres') {
      (rows['recorder end to end: MQTT in → parsed → validated → stored → PUBACK, results/s'] ??= {})[kind] = mmm(e2e);
      (rows['… share of that time a batch was in the database (median)'] ??= {})[kind] = `${Math.round(100 * median(e2e.dbShare))} %`;
      ratio[kind] = (median(e2e) / median(alone)).toFixed(2);
    }
    if (WITH_BROWSER) {
      const v = await visible(db, kind, broker.url);
      (rows[VISIBLE_ROW] ??= {})[kind] =
        `${fmt(quantile(v.lat, 0.5))} / **${fmt(quantile(v.lat, 0.99))}** / ${fmt(Math.max(...v.lat))} (${v.lat.length} / ${v.sent})`;
      say(`  ${kind} visible: p99 ${quantile(v.lat, 0.99)} ms over ${v.lat.length} results`);
    }
    await db.close();
    if (kind === 'pglite') {
      // End to end with PGlite in a worker thread (the default) and in the recorder's own thread,
      // one run of each in turn, so a change in the machine's load falls on both alike.
      const e2eMain = Object.assign([] as number[], { dbShare: [] as number[] });
      for (let run = 0; run < RUNS; run++) {
        for (const thread of ['worker', 'main'] as const) {
          const d = await openDb({ kind: 'pglite', dir: join(dir, 'pglite'), thread });
          await warm(d, 'pglite');
          const r = await endToEnd(d, 'pglite', broker.url, thread === 'main' ? '-main-thread' : '', [run]);
          const into = thread === 'main' ? e2eMain : e2e;
          into.push(...r);
          into.dbShare.push(...r.dbShare);
          await d.close();
        }
      }
      (rows['recorder end to end: MQTT in → parsed → validated → stored → PUBACK, results/s'] ??= {}).pglite = mmm(e2e);
      (rows['… share of that time a batch was in the database (median)'] ??= {}).pglite = `${Math.round(100 * median(e2e.dbShare))} %`;
      (rows['recorder end to end, PGlite in the recorder\'s own thread instead of a worker, results/s'] ??= {}).pglite = mmm(e2eMain);
      ratio.pglite = (median(e2e) / median(alone)).toFixed(2);
    }
  }
} finally {
  // Each part is stopped even when another fails, so a failed run leaves no server behind.
  await pgServer?.stop().catch((e: unknown) => say(`stopping PostgreSQL: ${(e as Error).message}`));
  await broker.stop().catch((e: unknown) => say(`stopping mosquitto: ${(e as Error).message}`));
  await rm(dir, { recursive: true, force: true });
}
const bundle = await ensureWebBundle();
const load1 = loadavg()[0]!;

const header = `| measure | PGlite (embedded: a worker thread of the recorder) | ${WITH_PG ? `PostgreSQL ${pgServer?.version ?? ''} server through \`pg\`` : '(PostgreSQL not run)'} |\n|---|---|---|`;
const table = [
  header,
  ...Object.entries(rows).map(([k, v]) => `| ${k} | ${v.pglite ?? '–'} | ${v.postgres ?? '–'} |`),
  `| **end to end ÷ database alone** (medians) | **${ratio.pglite ?? '–'}** | **${ratio.postgres ?? '–'}** |`,
  `| opening a new embedded database (PGlite initdb), once per directory | ${fmt(pgliteFirstOpenMs)} ms | – |`,
  `| front-end bundle (app.js + app.css, minified) | ${(bundle.bytes / 1024).toFixed(1)} KB, ${(bundle.gzipBytes / 1024).toFixed(1)} KB gzipped | |`,
].join('\n');

const body = `
Broker: ${mosquittoVersion} on loopback (persistence on, \`max_queued_messages 0\`), MQTT 5, QoS 1, the recorder's Receive Maximum 4 × its batch. ${N.toLocaleString('en-US')} results per run (${CAMERAS} cameras on 2 devices, ~600-byte JSON payloads), ${RUNS} runs per row; each run starts from empty tables. The recorder, its PGlite worker, the broker and (publish → visible) chromium share this machine's cores; the PostgreSQL server is a separate process with its default durability (fsync on). 1-minute load average before / after: ${load0.toFixed(1)} / ${load1.toFixed(1)}${load0 > 2 ? ' — the machine was shared with other work during this run, so absolute rates are low and noisy; compare rows within one run' : ''}.

${table}

How to read it:
- *Database alone* is the recorder's own insert statement on rows prepared in memory: the ceiling for
  the recorder on that database.
- *End to end* adds everything the recorder does per result in its Node thread: the MQTT client
  parsing packets, JSON.parse and the zod schema, the batcher, the held PUBACKs (written only
  after the commit), while mosquitto sends the backlog. PGlite (PostgreSQL compiled to
  WebAssembly) runs in a worker thread by default, so its queries and that work use different
  cores; the row below it keeps PGlite in the recorder's thread, where the two costs add up.
- When the database share is near 100 %, the recorder waits on the database and the end-to-end
  rate is the database's rate *while it shares the machine*: here the PostgreSQL server, mosquitto
  and the recorder share 2 cores, whereas in the database-alone row the server has a core to
  itself. A server on its own machine keeps its database-alone rate.
- *Publish → visible* is measured by the page: for each result, the time from the publisher's
  clock at publish to the first paint that showed it in the Fleet page's ticker, through the
  broker, the recorder's batch (≤ 20 ms wait), the database commit, the server's push (at most
  one every 25 ms) and the browser's render. Publisher, server and browser share one clock here.
`;
const file = writeReport('record', 'Recorder and dashboard: ingest rate, database alone, publish → visible, bundle size', `npm run bench:record -- --n ${N} --runs ${RUNS} --visible-s ${VISIBLE_S}${WITH_PG ? '' : ' --no-pg'}${WITH_BROWSER ? '' : ' --no-browser'}`, body);
say(`wrote ${file} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
process.exit(0);
