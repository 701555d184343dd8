// A real PostgreSQL server for tests (Debian's `postgresql` package; .ci/run installs it): a
// fresh cluster in a temporary directory on 127.0.0.1 and an OS-assigned port, trust auth, user
// `edge`. PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
// Missing binaries fail the test with the fix, never skip it.

import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './brokers.ts';

const run = promisify(execFile);

export interface TestPostgres {
  /** The server's major version, e.g. 15. */
  version: string;
  /** postgres://edge@127.0.0.1:<port>/<db> */
  url: string;
  /** A fresh database on the same server. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

/** The newest /usr/lib/postgresql/<v>/bin, or a message saying how to install one. */
export function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl'))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/<version>/bin: install the Debian package `postgresql` (.ci/run does: apt-get install postgresql)');
  }
  return join(base, versions[0]!, 'bin');
}

/** `durable: false` (tests): fsync, synchronous_commit and full_page_writes off. Benchmarks keep the defaults. */
export async function startPostgres(opts: { durable?: boolean } = {}): Promise<TestPostgres> {
  const bin = postgresBin();
  const dir = await mkdtemp(join(tmpdir(), 'ep-pg-'));
  const asRoot = process.getuid?.() === 0;
  const pgUser = asRoot ? lookupUid('postgres') : null;
  if (asRoot && pgUser === null) throw new Error('running as root, but there is no `postgres` user to run the server as (the Debian package `postgresql` creates it)');
  if (pgUser) chownSync(dir, pgUser.uid, pgUser.gid);
  const as = (cmd: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  const data = join(dir, 'data');
  // initdb once per machine and server version (seconds), then a copy per server (cp -a keeps the owner).
  const template = join(tmpdir(), `edgeprompt-test-pgdata-${bin.split('/').at(-2)}-${asRoot ? 'postgres' : process.getuid?.()}`);
  if (!existsSync(join(template, 'PG_VERSION'))) {
    const build = await mkdtemp(`${template}.build-`);
    if (pgUser) chownSync(build, pgUser.uid, pgUser.gid);
    await as(join(bin, 'initdb'), ['-D', join(build, 'data'), '-A', 'trust', '-U', 'edge', '--no-sync', '-E', 'UTF8', '--locale=C']);
    await rename(join(build, 'data'), template).catch(() => {}); // another process won
    await rm(build, { recursive: true, force: true });
  }
  await run('cp', ['-a', template, data]);
  const port = await freePort();
  // fsync off for tests: a test cluster need not survive a power loss, and the suite's disk is shared.
  const fast = opts.durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off';
  const serverOpts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1${fast}`;
  await as(join(bin, 'pg_ctl'), ['-D', data, '-o', serverOpts, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
  const base = `postgres://edge@127.0.0.1:${port}`;
  let stopped = false;
  return {
    version: bin.split('/').at(-2)!,
    url: `${base}/postgres`,
    async createDatabase(name) {
      await run(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'edge', '-d', 'postgres', '-c', `CREATE DATABASE "${name}"`]);
      return `${base}/${name}`;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await as(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function lookupUid(name: string): { uid: number; gid: number } | null {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return null;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}
