/**
 * `edgeprompt record`: the results recorder (fleet/record/). Its broker and database options are
 * shared with `edgeprompt dashboard`, which runs a recorder inside (recorderFlags below).
 */
import { Command, InvalidArgumentError } from 'commander';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { openDb, parseDbSpec, type Db } from '../fleet/record/db.ts';
import { Recorder, RecorderOptions, type RecorderOptionsInput } from '../fleet/record/recorder.ts';
import { parseOptions } from '../runtime/mqtt/connection.ts';
import { defaultLog, type Log } from '../runtime/log.ts';

export interface RecorderFlags {
  url: string;
  db?: string;
  group: string | false;
  clientId?: string;
  mqttVersion?: 4 | 5;
  username?: string;
  password?: string;
  retainDays: number;
  retainSize?: number;
  batch?: number;
  flushMs?: number;
  statsEvery?: number;
}

const int = (flag: string, min = 0) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} takes an integer ≥ ${min}, got "${v}"`);
  return n;
};

/** `500MB`, `10GB`, `1.5T`, `123456` (bytes); units are binary (1 GB = 2^30 bytes). */
export function parseSize(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(v);
  if (!m) throw new InvalidArgumentError(`--retain-size takes a size like 500MB or 20GB, got "${v}"`);
  const pow = { '': 0, k: 1, m: 2, g: 3, t: 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const bytes = Math.round(Number(m[1]) * 1024 ** pow);
  if (bytes < 1) throw new InvalidArgumentError(`--retain-size must be positive, got "${v}"`);
  return bytes;
}

/** The embedded database's default home: $XDG_DATA_HOME/edgeprompt/db (~/.local/share/…). */
export function defaultDbDir(): string {
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'edgeprompt', 'db');
}

/** Adds the broker, database, batching and retention options to a command. */
export function recorderFlags(cmd: Command): Command {
  return cmd
    .requiredOption('--url <url>', 'MQTT broker, e.g. mqtt://127.0.0.1:1883')
    .option('--db <dir|url>', `a directory for the embedded database (PGlite; default ${defaultDbDir()}) or postgres://user:pass@host/db`)
    .option('--group <name>', 'MQTT 5 shared-subscription group: recorders with one group split the results', 'edgeprompt-recorders')
    .option('--no-group', 'subscribe without a shared subscription (brokers without $share, e.g. aedes)')
    .option('--client-id <id>', 'fixed MQTT client id of the persistent session (default edgeprompt-<command>-<hostname>); unique per recorder')
    .option('--mqtt-version <4|5>', 'protocol version (aedes speaks only 4)', (v) => {
      if (v !== '4' && v !== '5') throw new InvalidArgumentError('--mqtt-version takes 4 or 5');
      return Number(v) as 4 | 5;
    })
    .option('--username <name>')
    .option('--password <secret>')
    .option('--retain-days <n>', 'drop results received more than n days ago (0 = keep forever)', int('--retain-days'), 30)
    .option('--retain-size <size>', 'keep the database tables under this size, dropping the oldest days first (e.g. 20GB)', parseSize)
    .option('--batch <n>', 'results per database batch (default 500 embedded, 1000 server)', int('--batch', 1))
    .option('--flush-ms <ms>', 'longest a result waits for its batch', int('--flush-ms'));
}

export function recorderOptions(f: RecorderFlags): RecorderOptionsInput {
  return {
    mqtt: {
      url: f.url,
      ...(f.clientId !== undefined && { clientId: f.clientId }),
      ...(f.mqttVersion !== undefined && { protocolVersion: f.mqttVersion }),
      ...(f.username !== undefined && { username: f.username }),
      ...(f.password !== undefined && { password: f.password }),
    },
    group: f.group === false ? null : f.group,
    ...(f.batch !== undefined && { maxRows: f.batch }),
    ...(f.flushMs !== undefined && { maxDelayMs: f.flushMs }),
    retention: { maxAgeDays: f.retainDays === 0 ? null : f.retainDays, maxBytes: f.retainSize ?? null },
  };
}

/** Checks the recorder's options (URL, group, sizes) before anything is opened; throws INVALID_OPTIONS naming every bad field. */
export function checkRecorderFlags(f: RecorderFlags): void {
  parseOptions(RecorderOptions, recorderOptions(f), 'recorder');
}

export async function openFlagDb(f: { db?: string }, log: Log): Promise<Db> {
  const spec = parseDbSpec(f.db ?? defaultDbDir());
  if (spec.kind === 'pglite' && !existsSync(join(spec.dir, 'pgdata'))) log.info({ dir: spec.dir }, 'creating the embedded database (a few seconds, once)');
  const db = await openDb(spec);
  log.info({ db: db.where, kind: db.kind }, 'database open');
  return db;
}

/** Resolves on SIGINT or SIGTERM. */
export const untilSignal = () =>
  new Promise<string>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
  });

export function recordCommand(): Command {
  return recorderFlags(new Command('record').description('store every result, status, state, health message, event and deployment state from the broker in PostgreSQL (embedded PGlite or a server)'))
    .option('--stats-every <s>', 'log the recorder\'s counters every s seconds', (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new InvalidArgumentError(`--stats-every takes a positive number of seconds, got "${v}"`);
      return n;
    }, 10)
    .option('--leave', 'take this recorder (its --client-id) out of service: store its backlog, leave the group, end its session on the broker, exit')
    .action(
    async (f: RecorderFlags & { leave?: boolean }) => {
      const log = defaultLog('edgeprompt.record');
      checkRecorderFlags(f);
      const db = await openFlagDb(f, log);
      let rec: Recorder;
      try {
        rec = await Recorder.start(db, recorderOptions(f), { log });
      } catch (e) {
        await db.close();
        throw e;
      }
      if (f.leave) {
        await rec.leave();
        log.info({ clientId: rec.clientId, stored: rec.stats().stored }, 'recorder: left; its session is gone and the group\'s messages go to the other recorders');
        await db.close();
        return;
      }
      log.info({ url: f.url, clientId: rec.clientId, group: rec.options.group }, 'recorder: started');
      void rec.ready.then(() => log.info({}, 'recorder: subscribed'));
      const every = (f.statsEvery ?? 10) * 1000;
      let last = rec.stats();
      const timer = setInterval(() => {
        const s = rec.stats();
        const { received, stored, duplicates, malformed, buffered, pendingAcks, connected, lastError } = s;
        log.info({ received, stored, perS: Math.round(((s.stored - last.stored) * 1000) / every), duplicates, malformed, buffered, pendingAcks, connected, lastError }, 'recorder');
        last = s;
      }, every);
      timer.unref();
      const why = await untilSignal();
      clearInterval(timer);
      log.info({ why }, 'recorder: stopping');
      await rec.close();
      await db.close();
    },
  );
}
