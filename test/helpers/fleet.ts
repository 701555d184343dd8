// Shared parts of the recorder and dashboard tests: a fresh database of either kind (PGlite in a
// temporary directory, or a new database on a PostgreSQL server the test file started), and a
// publisher of result payloads with exact sequence numbers (holes and repeats on purpose).

import mqtt from 'mqtt';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { openDb, type Db } from '../../fleet/record/db.ts';
import { MIGRATIONS, migrate } from '../../fleet/record/migrations.ts';
import { topics } from '../../runtime/mqtt/topics.ts';
import type { DeployStatePayload } from '../../runtime/schema/deploy.ts';
import type { ResultPayload } from '../../runtime/schema/payloads.ts';
import { sampleResult } from './brokers.ts';
import { startPostgres, type TestPostgres } from './postgres.ts';

export type Backend = 'pglite' | 'postgres';
export const BACKENDS: readonly Backend[] = ['pglite', 'postgres'];

/** One PostgreSQL server per test file, started on first use. */
export function lazyPostgres() {
  let server: Promise<TestPostgres> | null = null;
  let n = 0;
  return {
    /** A new, empty database on the file's server. */
    async database(): Promise<string> {
      server ??= startPostgres();
      return (await server).createDatabase(`t${process.pid}_${++n}`);
    },
    async stop() {
      if (server) await (await server).stop();
    },
  };
}

/** A fresh, migrated database. */
export interface TestDb {
  db: Db;
  /** Where to open it again (a directory or URL), e.g. from a child process. */
  spec: string;
  cleanup(): Promise<void>;
}

// The package's exports hide package.json; read it from its directory.
const PGLITE_VERSION = (JSON.parse(readFileSync(join(dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite')), '..', 'package.json'), 'utf8')) as { version: string }).version;

/**
 * A migrated PGlite directory, made once per machine and copied for each test: a new PGlite
 * cluster costs seconds of WebAssembly initdb (tens of seconds on a busy CI core), a copy ~1 s.
 * Keyed by the PGlite version and a hash of the migrations; built aside and renamed into place.
 */
let template: Promise<string> | null = null;
export function pgliteTemplate(): Promise<string> {
  template ??= makeTemplate();
  return template;
}

async function makeTemplate(): Promise<string> {
  const schema = createHash('sha256').update(JSON.stringify(MIGRATIONS)).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), `edgeprompt-test-pglite-${PGLITE_VERSION}-${schema}`);
  if (existsSync(dir)) return dir;
  const build = await mkdtemp(`${dir}.build-`);
  const db = await openDb({ kind: 'pglite', dir: build });
  await migrate(db);
  await db.close();
  await rename(build, dir).catch(async () => rm(build, { recursive: true, force: true })); // another process won
  return dir;
}

/** A fresh PGlite directory: a copy of the template. */
export async function pgliteDir(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ep-pglite-'));
  await cp(await pgliteTemplate(), dir, { recursive: true });
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function freshDb(backend: Backend, pg: ReturnType<typeof lazyPostgres>): Promise<TestDb> {
  if (backend === 'pglite') {
    const { dir } = await pgliteDir();
    const db = await openDb({ kind: 'pglite', dir });
    return { db, spec: dir, cleanup: async () => (await db.close(), await rm(dir, { recursive: true, force: true })) };
  }
  const url = await pg.database();
  const db = await openDb({ kind: 'postgres', url });
  await migrate(db); // as the PGlite template is
  return { db, spec: url, cleanup: () => db.close() };
}

export function resultPayload(device: string, camera: string, seq: number, o: { epoch?: string; decision?: 'OK' | 'NG'; captureTs?: number; score?: number } = {}): ResultPayload {
  const now = Date.now();
  const base = sampleResult(camera, seq, o.captureTs ?? now);
  const decision = o.decision ?? (seq % 5 === 4 ? 'NG' : 'OK');
  const score = o.score ?? (decision === 'OK' ? 0.9 : 0.4);
  return { ...base, captureTs: o.captureTs ?? now - 20, label: decision === 'OK' ? 'ok-part' : 'scratch', score, topK: [{ label: decision === 'OK' ? 'ok-part' : 'scratch', score }], decision, v: 1, device, seq, seqEpoch: o.epoch ?? 'epoch-1', publishTs: now };
}

/** A plain MQTT publisher of result payloads (QoS 1). */
export async function resultPublisher(url: string, opts: { protocolVersion?: 4 | 5 } = {}) {
  const client = await mqtt.connectAsync(url, { protocolVersion: opts.protocolVersion ?? 5, clean: true });
  return {
    client,
    async publish(r: ResultPayload) {
      await client.publishAsync(topics.result(r.device, r.camera), JSON.stringify(r), { qos: 1 });
    },
    async raw(topic: string, payload: string | Buffer, retain = false) {
      await client.publishAsync(topic, payload, { qos: 1, retain });
    },
    close: () => client.endAsync(),
  };
}

/** A device's retained deployment state in the middle of a rollout (runtime/schema/deploy.ts). */
export function deployState(device: string, now = Date.now()): DeployStatePayload {
  const ref = { kind: 'model' as const, name: 'parts-vpt', version: '1.0.7', release: 7, sha256: 'cd'.repeat(32) };
  return {
    v: 1,
    device,
    ts: now,
    bootId: 'boot-1',
    installed: { model: { ...ref, version: '1.0.6', release: 6, sha256: 'ab'.repeat(32) }, packs: [] },
    deployment: { rollout: 'r-7', artifact: { ...ref, bytes: 123_456 }, releaseBefore: 6, state: 'shadow', startedAt: now - 60_000, since: now - 1000, transfer: null, shadow: null, watch: null, reason: null },
  };
}

export const countRows = async (db: Db, table: string, where = 'true', params: unknown[] = []) =>
  (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM edgeprompt.${table} WHERE ${where}`, params))[0]!.n;
