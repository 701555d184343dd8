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
import type { Db, Params, Queryable } from './db.ts';
import { RecorderError } from './errors.ts';

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

export async function openPglite(dirIn: string): Promise<Db> {
  const dir = resolve(dirIn);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new RecorderError('DB_NOT_WRITABLE', `cannot create database dir ${JSON.stringify(dir)} (${(e as NodeJS.ErrnoException).code}); pick another --db`, { cause: e });
  }
  const unlock = lock(dir);
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
