// `edgeprompt dashboard`: a recorder (fleet/record/) and a web server showing what it stores,
// live. Assembles the parts: database schema, recorder, live model (polled from the database
// too, for other recorders' rows), command client, WebSocket hub, Fastify server, page bundle.

import type { AddressInfo } from 'node:net';
import { connectCommandClient, type CommandClient } from '../../runtime/mqtt/command-client.ts';
import type { Log } from '../../runtime/log.ts';
import { VERSION } from '../../runtime/version.ts';
import type { Db } from '../record/db.ts';
import { migrate } from '../record/migrations.ts';
import { Recorder, type RecorderOptionsInput } from '../record/recorder.ts';
import { readUsers, requireUsersOffLoopback, Sessions } from './auth.ts';
import { ensureWebBundle } from './bundle.ts';
import { Hub } from './hub.ts';
import { LiveModel } from './model.ts';
import type { ShiftDef } from './protocol.ts';
import { buildServer } from './server.ts';

export interface DashboardOptions {
  /** The broker and the built-in recorder's settings. */
  recorder: RecorderOptionsInput;
  /** false: only show what other recorders store in this database. */
  record?: boolean;
  host: string;
  port: number;
  /** Required unless `host` is a loopback address. */
  usersFile?: string;
  shifts: readonly ShiftDef[];
  /** How often the database is read for what other recorders stored. */
  pollMs?: number;
  commandTimeoutMs?: number;
}

export interface Dashboard {
  url: string;
  port: number;
  recorder: Recorder | null;
  hub: Hub;
  close(): Promise<void>;
}


/** A command client connected on first use (and again after a failure), so a broker that is down at start does not stop the dashboard. */
function lazyCommands(o: RecorderOptionsInput['mqtt'], log: Log): CommandClient & { closeAll(): Promise<void> } {
  let client: Promise<CommandClient> | null = null;
  const get = () => {
    client ??= connectCommandClient({ ...o, clientId: undefined }).catch((e: unknown) => {
      client = null;
      log.warn({ err: (e as Error).message }, 'dashboard: cannot reach the broker for commands');
      throw Object.assign(new Error(`cannot reach the broker at ${o.url}: ${(e as Error).message}`), { code: 'BROKER_UNREACHABLE' });
    });
    return client;
  };
  return {
    send: async (device, name, args, opts) => (await get()).send(device, name, args, opts),
    close: async () => {},
    closeAll: async () => {
      if (client) await (await client.catch(() => null))?.close();
    },
  };
}

export async function startDashboard(db: Db, o: DashboardOptions, log: Log): Promise<Dashboard> {
  requireUsersOffLoopback(o.host, o.usersFile);
  const sessions = o.usersFile ? new Sessions(readUsers(o.usersFile)) : null;
  const bundle = await ensureWebBundle();
  if (bundle.built) log.info({ dir: bundle.dir, bytes: bundle.bytes, gzipBytes: bundle.gzipBytes }, 'dashboard: page built');
  const recorder = o.record === false ? null : await Recorder.start(db, o.recorder, { log, role: 'dashboard' });
  if (!recorder) await migrate(db);
  const model = new LiveModel(o.shifts);
  await model.poll(db);
  const commands = lazyCommands(o.recorder.mqtt, log);
  const hub = new Hub(model, db, () => recorder?.stats() ?? null, (user) => ({ type: 'hello', user, auth: sessions !== null, shifts: [...o.shifts], version: VERSION }), log);
  recorder?.on('stored', (b) => hub.stored(b));
  let polling: Promise<void> | null = null;
  const poll = setInterval(() => {
    polling ??= model
      .poll(db)
      .catch((e: unknown) => log.warn({ err: (e as Error).message }, 'dashboard: reading the database failed'))
      .finally(() => (polling = null));
  }, o.pollMs ?? 5000);
  poll.unref();
  const app = await buildServer({ hub, db, commands, sessions, webDir: bundle.dir, log, ...(o.commandTimeoutMs !== undefined && { commandTimeoutMs: o.commandTimeoutMs }) });
  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (e) {
    clearInterval(poll);
    hub.close();
    await recorder?.close();
    throw Object.assign(new Error(`cannot listen on ${o.host}:${o.port}: ${(e as Error).message}`), { code: 'LISTEN_FAILED' });
  }
  const port = (app.server.address() as AddressInfo).port;
  const shown = o.host.includes(':') ? `[${o.host}]` : o.host === '0.0.0.0' ? '127.0.0.1' : o.host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${shown}:${port}/`,
    port,
    recorder,
    hub,
    close() {
      closing ??= (async () => {
        clearInterval(poll);
        hub.close();
        await app.close();
        await recorder?.close();
        await polling;
        await commands.closeAll();
      })();
      return closing;
    },
  };
}
