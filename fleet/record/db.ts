// The recorder's database: one small interface, two implementations with the same SQL.
// - PGlite (`@electric-sql/pglite`): PostgreSQL compiled to WebAssembly, in this process (a worker
//   thread by default), on a directory. The embedded default: nothing to install or run. One process per directory.
// - A PostgreSQL server through `pg`: the scale-out path (several recorders, one database).
// The schema, migrations and queries are plain PostgreSQL written once (migrations.ts, store.ts,
// queries.ts); test/record.test.ts and test/record-kill.test.ts run the same tests against both.

import { redactUrl, type Db } from './db-interface.ts';
import { RecorderError } from './errors.ts';

export type { Db, Params, Queryable } from './db-interface.ts';

/** `thread`: where PGlite runs (default a worker thread; see db-pglite.ts). */
export type DbSpec = { kind: 'pglite'; dir: string; thread?: 'main' | 'worker' } | { kind: 'postgres'; url: string };

/** `postgres://…` / `postgresql://…` is a server; anything else is a PGlite directory. */
export function parseDbSpec(spec: string): DbSpec {
  if (/^postgres(ql)?:\/\//i.test(spec)) {
    try {
      new URL(spec);
    } catch {
      throw new RecorderError('DB_BAD_SPEC', `--db ${JSON.stringify(redactUrl(spec))} is not a valid URL; write postgres://user:password@host:5432/database`);
    }
    return { kind: 'postgres', url: spec };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new RecorderError('DB_BAD_SPEC', `--db ${JSON.stringify(redactUrl(spec))}: only postgres:// URLs or a directory (PGlite) are supported`);
  }
  if (spec.trim() === '') throw new RecorderError('DB_BAD_SPEC', '--db is empty; give a directory for the embedded database or a postgres:// URL');
  return { kind: 'pglite', dir: spec };
}

export async function openDb(spec: DbSpec): Promise<Db> {
  // Imported lazily: a recorder on PGlite never loads pg, and the other way round.
  if (spec.kind === 'pglite') return (await import('./db-pglite.ts')).openPglite(spec.dir, spec.thread ? { thread: spec.thread } : {});
  return (await import('./db-pg.ts')).openPostgres(spec.url);
}
