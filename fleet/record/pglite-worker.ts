// The embedded database in a worker thread (db-pglite.ts, `thread: 'worker'`). PGlite is
// PostgreSQL compiled to WebAssembly: its queries are CPU work that would otherwise share the
// recorder's one thread with MQTT parsing and validation. Here they run on another core.
//
// Protocol (one request, one reply, by id): open, query, exec, begin/commit/rollback of a
// transaction (queries name it), close. A transaction holds PGlite's lock, so other queries wait
// in PGlite's own queue until it ends, as they would in the same thread.

import { PGlite, type Transaction } from '@electric-sql/pglite';
import { parentPort } from 'node:worker_threads';

export type WorkerRequest =
  | { id: number; op: 'open'; dir: string }
  | { id: number; op: 'query'; sql: string; params?: unknown[]; tx?: number }
  | { id: number; op: 'exec'; sql: string }
  | { id: number; op: 'begin' }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' };

export type WorkerReply = { id: number; ok: true; value?: unknown } | { id: number; ok: false; message: string; code?: string };

let pg: PGlite | null = null;
const txs = new Map<number, { tx: Transaction; end: (commit: boolean) => void; done: Promise<void> }>();
let nextTx = 1;
/** Thrown inside a transaction callback to roll it back without a failure of its own. */
const ROLLBACK = Symbol('rollback');

async function handle(m: WorkerRequest): Promise<unknown> {
  switch (m.op) {
    case 'open':
      pg = await PGlite.create(m.dir);
      return;
    case 'query': {
      const q = m.tx !== undefined ? txs.get(m.tx)?.tx : pg;
      if (!q) throw new Error(`no transaction ${m.tx}`);
      return (await q.query(m.sql, m.params)).rows;
    }
    case 'exec':
      await pg!.exec(m.sql);
      return;
    case 'begin': {
      const id = nextTx++;
      let end!: (commit: boolean) => void;
      const decided = new Promise<boolean>((r) => (end = r));
      let started!: () => void;
      const ready = new Promise<void>((r) => (started = r));
      const done = pg!
        .transaction(async (tx) => {
          txs.set(id, { tx, end, done });
          started();
          if (!(await decided)) throw ROLLBACK;
        })
        .catch((e: unknown) => {
          if (e !== ROLLBACK) throw e;
        })
        .finally(() => txs.delete(id));
      await Promise.race([ready, done]);
      return id;
    }
    case 'end': {
      const t = txs.get(m.tx);
      if (!t) throw new Error(`no transaction ${m.tx}`);
      t.end(m.commit);
      await t.done;
      return;
    }
    case 'close':
      await pg?.close();
      pg = null;
      return;
  }
}

parentPort!.on('message', (m: WorkerRequest) => {
  handle(m).then(
    (value) => parentPort!.postMessage({ id: m.id, ok: true, value } satisfies WorkerReply),
    (e: unknown) => parentPort!.postMessage({ id: m.id, ok: false, message: (e as Error)?.message ?? String(e), ...(typeof (e as { code?: unknown })?.code === 'string' && { code: (e as { code: string }).code }) } satisfies WorkerReply),
  );
});
