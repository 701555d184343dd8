// PGlite on a directory. PGlite is one PostgreSQL backend inside this process (a single
// connection: its queries run one at a time, which PGlite itself serialises), so two processes
// must never open the same directory; a lock file holding the owner's pid enforces that, and a
// dead owner's lock (kill -9) is taken over. PostgreSQL's own crash recovery replays the WAL on
// the next open. PGlite runs with fsync off: a committed row survives the process being killed
// (it is in the OS page cache) but not necessarily a power loss; use a PostgreSQL server where
// that matters (docs/dashboard.md).

import { PGlite } from '@electric-sql/pglite';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Db, Params, Queryable } from './db-interface.ts';
import { RecorderError } from './errors.ts';
import type { WorkerReply, WorkerRequest } from './pglite-worker.ts';

const LOCK = 'edgeprompt-recorder.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lock(dir: string): () => void {
  const path = join(dir, LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new RecorderError('DB_NOT_WRITABLE', `database dir ${JSON.stringify(dir)} is not writable (${code}); fix its permissions or pick another --db`, { cause: e });
    }
    let pid = NaN;
    try {
      pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    } catch {
      /* vanished meanwhile: retry */
    }
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      throw new RecorderError(
        'DB_LOCKED',
        `database dir ${JSON.stringify(dir)} is in use by pid ${pid}${pid === process.pid ? ' (this process)' : ''}; ` +
          'an embedded database has one process: stop the other recorder or dashboard, or use a PostgreSQL server (--db postgres://…) for several',
      );
    }
    rmSync(path, { force: true });
  }
  throw new RecorderError('DB_LOCKED', `database dir ${JSON.stringify(dir)}: could not take ${LOCK}`);
}

/**
 * `thread: 'worker'` (the default) runs PGlite in a worker thread, so its queries use another
 * core than the recorder's MQTT parsing and validation; `'main'` keeps it in this thread.
 */
export async function openPglite(dirIn: string, opts: { thread?: 'main' | 'worker' } = {}): Promise<Db> {
  const dir = resolve(dirIn);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new RecorderError('DB_NOT_WRITABLE', `cannot create database dir ${JSON.stringify(dir)} (${(e as NodeJS.ErrnoException).code}); pick another --db`, { cause: e });
  }
  const unlock = lock(dir);
  if ((opts.thread ?? 'worker') === 'worker') {
    try {
      return await inWorker(dir, join(dir, 'pgdata'), unlock);
    } catch (e) {
      unlock();
      if (e instanceof RecorderError) throw e;
      throw new RecorderError('DB_NOT_WRITABLE', `cannot open the embedded database in ${JSON.stringify(dir)}: ${(e as Error).message}`, { cause: e });
    }
  }
  let pg: PGlite;
  try {
    // PGlite keeps its cluster in a subdirectory so the lock file is not inside PGDATA.
    pg = await PGlite.create(join(dir, 'pgdata'));
  } catch (e) {
    unlock();
    throw new RecorderError('DB_NOT_WRITABLE', `cannot open the embedded database in ${JSON.stringify(dir)}: ${(e as Error).message}`, { cause: e });
  }
  const q: Queryable = {
    async query<R extends object>(sql: string, params?: Params) {
      return (await pg.query<R>(sql, params ? [...params] : undefined)).rows;
    },
  };
  let closed: Promise<void> | null = null;
  return {
    kind: 'pglite',
    where: dir,
    query: q.query,
    async exec(sql) {
      await pg.exec(sql);
    },
    transaction: (fn) =>
      pg.transaction((tx) =>
        fn({
          async query<R extends object>(sql: string, params?: Params) {
            return (await tx.query<R>(sql, params ? [...params] : undefined)).rows;
          },
        }),
      ),
    close() {
      closed ??= pg.close().finally(unlock);
      return closed;
    },
  };
}

/** The worker's entry: TypeScript from the source tree (tsx registered in the worker first, as Node 20 workers do not inherit --import). */
function startWorker(): Worker {
  const url = new URL('./pglite-worker.ts', import.meta.url);
  return new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); });`, { eval: true });
}

async function inWorker(dir: string, pgdata: string, unlock: () => void): Promise<Db> {
  const w = startWorker();
  let nextId = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let dead: Error | null = null;
  w.on('message', (r: WorkerReply) => {
    const p = waiting.get(r.id);
    if (!p) return;
    waiting.delete(r.id);
    if (r.ok) p.resolve(r.value);
    else p.reject(Object.assign(new Error(r.message), r.code !== undefined ? { code: r.code } : {}));
  });
  const fail = (e: Error) => {
    dead = new RecorderError('DB_NOT_WRITABLE', `the embedded database's worker stopped: ${e.message}`, { cause: e });
    for (const p of waiting.values()) p.reject(dead);
    waiting.clear();
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  type Req = WorkerRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;
  const call = <T>(req: Req): Promise<T> => {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      w.postMessage({ ...req, id });
    });
  };
  await call({ op: 'open', dir: pgdata });
  let closed: Promise<void> | null = null;
  return {
    kind: 'pglite',
    where: dir,
    query: <R extends object>(sql: string, params?: Params) => call<R[]>({ op: 'query', sql, ...(params && { params: [...params] }) }),
    exec: (sql) => call<void>({ op: 'exec', sql }),
    async transaction(fn) {
      const tx = await call<number>({ op: 'begin' });
      let r;
      try {
        r = await fn({ query: <R extends object>(sql: string, params?: Params) => call<R[]>({ op: 'query', sql, tx, ...(params && { params: [...params] }) }) });
      } catch (e) {
        await call({ op: 'end', tx, commit: false }).catch(() => {});
        throw e;
      }
      await call({ op: 'end', tx, commit: true });
      return r;
    },
    close() {
      closed ??= (async () => {
        try {
          if (!dead) await call({ op: 'close' });
        } finally {
          w.removeAllListeners('exit');
          await w.terminate();
          unlock();
        }
      })();
      return closed;
    },
  };
}
