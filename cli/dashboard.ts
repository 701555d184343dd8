/**
 * `edgeprompt dashboard`: the line dashboard with its recorder built in (fleet/dashboard/), and
 * `edgeprompt dashboard-user`: adds people to its users file. `startDemoDashboard` is the demo's
 * one-line way to watch its line live (`npm run demo -- --dashboard`).
 */
import { Command, InvalidArgumentError } from 'commander';
import { destination, pino } from 'pino';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { addUser, readUsers, requireUsersOffLoopback } from '../fleet/dashboard/auth.ts';
import { startDashboard, type Dashboard } from '../fleet/dashboard/dashboard.ts';
import { DEFAULT_SHIFTS, parseShifts } from '../fleet/dashboard/shifts.ts';
import { openDb, type Db } from '../fleet/record/db.ts';
import { defaultLog, type Log } from '../runtime/log.ts';
import { checkRecorderFlags, openFlagDb, recorderFlags, recorderOptions, untilSignal, type RecorderFlags } from './record.ts';

interface DashboardFlags extends RecorderFlags {
  listen: { host: string; port: number };
  users?: string;
  shifts: string;
  record: boolean;
}

/** `127.0.0.1:8080`, `0.0.0.0:80`, `[::1]:8080`, `:8080` or `8080` (loopback). */
export function parseListen(v: string): { host: string; port: number } {
  const bad = () => new InvalidArgumentError(`--listen takes HOST:PORT (e.g. 127.0.0.1:8080 or 0.0.0.0:8080), got "${v}"`);
  const s = v.trim();
  const m = /^\d+$/.test(s) ? ['', '', '', s] : /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(s);
  if (!m) throw bad();
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port > 65535) throw bad();
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

export function dashboardCommand(): Command {
  return recorderFlags(new Command('dashboard').description('the line dashboard (Fleet, Camera, Actions pages), with the recorder built in'))
    .option('--listen <host:port>', 'address to serve on; anything but loopback needs --users', parseListen, { host: '127.0.0.1', port: 8080 })
    .option('--users <file>', 'users file (name, role operator|viewer, scrypt password hash): sign-in required')
    .option('--shifts <list>', 'shifts in local time, NAME=HH:MM-HH:MM,… (quarter hours; "none" for none)', DEFAULT_SHIFTS)
    .option('--no-record', 'do not record: show what other recorders store in this database')
    .action(async (f: DashboardFlags) => {
      const log = defaultLog('edgeprompt.dashboard');
      // Everything that can be refused is checked before the database is opened (or created).
      const shifts = parseShifts(f.shifts);
      requireUsersOffLoopback(f.listen.host, f.users);
      checkRecorderFlags(f);
      if (f.users) readUsers(f.users);
      const db = await openFlagDb(f, log);
      let d: Dashboard;
      try {
        d = await startDashboard(db, { recorder: recorderOptions(f), record: f.record, host: f.listen.host, port: f.listen.port, shifts, ...(f.users !== undefined && { usersFile: f.users }) }, log);
      } catch (e) {
        await db.close();
        throw e;
      }
      log.info({ url: d.url, db: db.where, recording: d.recorder !== null, auth: f.users ? 'users file' : 'open (loopback)' }, 'dashboard: serving');
      process.stderr.write(`dashboard: ${d.url}\n`);
      const why = await untilSignal();
      log.info({ why }, 'dashboard: stopping');
      await d.close();
      await db.close();
    });
}

/** The password from a terminal (not echoed) or the first line of piped stdin. */
async function readPassword(prompt: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: process.stdin.isTTY === true });
  if (process.stdin.isTTY) {
    process.stderr.write(prompt);
    // Replace what readline echoes with nothing while the password is typed.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
  }
  const line = await new Promise<string>((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(''));
  });
  rl.close();
  if (process.stdin.isTTY) process.stderr.write('\n');
  return line;
}

export function dashboardUserCommand(): Command {
  return new Command('dashboard-user')
    .description('add a person to the dashboard\'s users file (or change their role or password); the password is read from the terminal or stdin')
    .argument('<name>', 'user name (letters, digits, _ . @ -)')
    .requiredOption('--users <file>', 'users file (created if missing)')
    .option('--role <role>', 'operator (may send commands) or viewer (may only look)', (v) => {
      if (v !== 'operator' && v !== 'viewer') throw new InvalidArgumentError('--role takes operator or viewer');
      return v;
    }, 'viewer')
    .action(async (name: string, f: { users: string; role: 'operator' | 'viewer' }) => {
      const password = await readPassword(`password for ${name}: `);
      if (password.length < 8) throw Object.assign(new Error('the password must have at least 8 characters'), { code: 'BAD_PASSWORD' });
      await addUser(f.users, name, f.role, password);
      process.stderr.write(`${name} (${f.role}) written to ${f.users}\n`);
    });
}

/** The demo prints its own story: warnings and errors only, unless EDGEPROMPT_LOG_LEVEL says otherwise. */
const quietLog = () => pino({ name: 'edgeprompt.dashboard', level: process.env.EDGEPROMPT_LOG_LEVEL ?? 'warn' }, destination(2));

/**
 * For `npm run demo -- --dashboard`: a dashboard on the demo's in-process broker (aedes: MQTT
 * 3.1.1, no shared subscriptions), its database under the demo's work directory.
 */
export async function startDemoDashboard(brokerUrl: string, workDir: string, listen = { host: '127.0.0.1', port: 8080 }, log: Log = quietLog()): Promise<{ url: string; close(): Promise<void> }> {
  const db: Db = await openDb({ kind: 'pglite', dir: join(workDir, 'db') });
  const start = (port: number) =>
    startDashboard(db, { recorder: { mqtt: { url: brokerUrl, protocolVersion: 4, reconnectPeriodMs: 200 }, group: null }, host: listen.host, port, shifts: parseShifts(DEFAULT_SHIFTS) }, log);
  // Port taken (another dashboard?): any free port rather than no dashboard.
  const d = await start(listen.port)
    .catch(() => start(0))
    .catch(async (e: unknown) => {
      await db.close();
      throw e;
    });
  return { url: d.url, close: async () => (await d.close(), await db.close()) };
}
