// A PostgreSQL server through `pg` (a connection pool). int8 comes back as a JS number, as in
// PGlite, so the queries' callers see one shape: every int8 the recorder stores (seq, counts) is
// below 2^53 (ResultPayload caps seq at Number.MAX_SAFE_INTEGER).

import pg from 'pg';
import { redactUrl, type Db, type Params, type Queryable } from './db-interface.ts';
import { RecorderError } from './errors.ts';

const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export async function openPostgres(url: string, opts: { max?: number } = {}): Promise<Db> {
  const where = redactUrl(url);
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 4, types, connectionTimeoutMillis: 10_000, application_name: 'edgeprompt' });
  // An idle client that loses its server emits 'error' on the pool; without a listener that
  // would crash the process. The next query gets a fresh connection (or the error).
  pool.on('error', () => {});
  try {
    const c = await pool.connect();
    c.release();
  } catch (e) {
    await pool.end().catch(() => {});
    throw new RecorderError('DB_UNREACHABLE', `cannot connect to ${where}: ${(e as Error).message}; check that the server runs and the URL, user and password are right`, { cause: e });
  }
  const run = async <R extends object>(c: pg.Pool | pg.PoolClient, sql: string, params?: Params) =>
    (await c.query<R & pg.QueryResultRow>(sql, params ? [...params] : undefined)).rows as R[];
  let closed: Promise<void> | null = null;
  return {
    kind: 'postgres',
    where,
    query: (sql, params) => run(pool, sql, params),
    async exec(sql) {
      await pool.query(sql);
    },
    async transaction(fn) {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        const q: Queryable = { query: (sql, params) => run(c, sql, params) };
        const r = await fn(q);
        await c.query('COMMIT');
        return r;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        c.release();
      }
    },
    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}
