// The recorder's database: one small interface, two implementations with the same SQL.
// - PGlite (`@electric-sql/pglite`): PostgreSQL compiled to WebAssembly, in this process, on a
//   directory. The embedded default: nothing to install or run. One process per directory.
// - A PostgreSQL server through `pg`: the scale-out path (several recorders, one database).
// The schema, migrations and queries are plain PostgreSQL written once (migrations.ts, store.ts,
// queries.ts); test/record-db.test.ts runs one contract suite against both.

import { RecorderError } from './errors.ts';

export type Params = readonly unknown[];

export interface Queryable {
  /** One statement with $1.. parameters; int8 columns come back as numbers, timestamptz as Date. */
  query<R extends object = Record<string, unknown>>(sql: string, params?: Params): Promise<R[]>;
}

export interface Db extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** For messages: the directory, or the URL without its password. */
  readonly where: string;
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** BEGIN … COMMIT on one connection (ROLLBACK when fn throws). */
  transaction<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

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

/** The URL with its password replaced, safe to print. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  }
}

export async function openDb(spec: DbSpec): Promise<Db> {
  // Imported lazily: a recorder on PGlite never loads pg, and the other way round.
  if (spec.kind === 'pglite') return (await import('./db-pglite.ts')).openPglite(spec.dir, spec.thread ? { thread: spec.thread } : {});
  return (await import('./db-pg.ts')).openPostgres(spec.url);
}
