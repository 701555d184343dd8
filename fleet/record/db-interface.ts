// The database interface both implementations provide (db-pglite.ts, db-pg.ts), apart from the
// code that picks one (db.ts), so neither imports the other's module.

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
