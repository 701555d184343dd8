/**
 * The recorder's durability contract, on both databases: `edgeprompt record` (a real child
 * process) takes a steady stream of results from mosquitto; it is killed with SIGKILL mid-stream
 * and started again while the stream goes on. Every seq must end up stored exactly once: what
 * was stored before the kill is not stored again (the key), and what was received but not yet
 * stored is redelivered by the broker (the PUBACK waits for the commit, fleet/record/held-acks.ts).
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { openDb } from '../fleet/record/db.ts';
import { startMosquitto, until } from './helpers/brokers.ts';
import { repoPath } from './helpers/fixtures.ts';
import { BACKENDS, freshDb, lazyPostgres, resultPayload, resultPublisher } from './helpers/fleet.ts';

const pg = lazyPostgres();
test.after.always(() => pg.stop());

interface Stats {
  msg: string;
  received?: number;
  stored?: number;
  duplicates?: number;
  buffered?: number;
  pendingAcks?: number;
  connected?: boolean;
}

// Batches wait 400 ms, so at the kill there are always messages received and not yet stored:
// without held acknowledgements they would be lost (a recorder that acknowledges on receipt fails here).
function startRecorder(url: string, db: string) {
  const child: ChildProcess = spawn(
    process.execPath,
    [repoPath('tools/edgeprompt.mjs'), 'record', '--url', url, '--db', db, '--client-id', 'rec-kill', '--flush-ms', '400', '--stats-every', '0.2'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'info' } },
  );
  const lines: Stats[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l) as Stats);
    } catch {
      lines.push({ msg: l });
    }
  });
  const stats = () => lines.filter((l) => l.msg === 'recorder').at(-1);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, lines, stats, exited, subscribed: () => lines.some((l) => l.msg === 'recorder: subscribed') };
}

for (const backend of BACKENDS) {
  test(`${backend}: SIGKILL mid-stream and restart: every seq stored exactly once`, async (t) => {
    t.timeout(240_000);
    const dir = await mkdtemp(join(tmpdir(), 'ep-kill-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // The session must hold everything sent while the recorder is down.
    const broker = await startMosquitto({ dir, config: ['max_queued_messages 0'] });
    t.teardown(() => broker.stop());
    const tdb = await freshDb(backend, pg);
    await tdb.db.close(); // the child owns the database (a PGlite directory has one process)
    t.teardown(() => tdb.cleanup());

    let rec = startRecorder(broker.url, tdb.spec);
    t.teardown(() => void rec.child.kill('SIGKILL'));
    await until(rec.subscribed, 'the recorder subscribed', 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${rec.lines.map((l) => JSON.stringify(l)).join('\n')}`);
    });

    const N = 2000; // over ~5 s, so the kill lands mid-stream even on a slow machine
    const pub = await resultPublisher(broker.url);
    t.teardown(() => pub.close());
    let sent = 0;
    const publishing = (async () => {
      while (sent < N) {
        const batch = Array.from({ length: Math.min(25, N - sent) }, (_, i) => resultPayload('press-k', `cam-${(sent + i) % 3}`, sent + i));
        sent += batch.length;
        await Promise.all(batch.map((r) => pub.publish(r)));
        await new Promise((r) => setTimeout(r, 60));
      }
    })();

    await until(() => (rec.stats()?.stored ?? 0) >= 100, 'the first recorder storing', 60_000);
    rec.child.kill('SIGKILL');
    await rec.exited;
    const before = rec.stats()!;
    t.true(sent < N, `killed mid-stream (${sent} of ${N} published)`);
    await new Promise((r) => setTimeout(r, 300));
    rec = startRecorder(broker.url, tdb.spec);
    await publishing;
    // Done when nothing waits for the database and no row came for 10 stats lines (2 s).
    await until(() => {
      const recent = rec.lines.filter((l) => l.msg === 'recorder').slice(-10);
      return recent.length === 10 && recent.every((s) => s.connected && s.buffered === 0 && s.pendingAcks === 0 && s.stored === recent[0]!.stored && (s.stored ?? 0) > 0);
    }, 'the restarted recorder to drain the backlog', 90_000);
    const after = rec.stats()!;
    rec.child.kill('SIGTERM');
    await rec.exited;

    const db = await openDb(backend === 'pglite' ? { kind: 'pglite', dir: tdb.spec } : { kind: 'postgres', url: tdb.spec });
    t.teardown(() => db.close());
    const [r] = await db.query<{ n: number; distinct: number; min: number; max: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct, min(seq)::int AS min, max(seq)::int AS max FROM edgeprompt.results',
    );
    t.log(`first run stored ≥ ${before.stored} before SIGKILL; the second stored ${after.stored} and skipped ${after.duplicates} redelivered copies`);
    t.deepEqual(r, { n: N, distinct: N, min: 0, max: N - 1 });
    t.true((after.stored ?? 0) > 0 && (after.stored ?? 0) < N, 'both runs stored part of the stream');
  });
}
