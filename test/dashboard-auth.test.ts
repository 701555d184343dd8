/**
 * Who may see and do what on a dashboard that other machines can reach: without a users file it
 * refuses to start; with one, data (API, WebSocket) needs a session, a viewer may look but not
 * send commands, an operator's command goes to the device over MQTT and the device's own refusal
 * comes back with its code. Requests from another site are refused. A real device side (the
 * runtime's MQTT reporter with command handlers) answers over mosquitto.
 */
import test from 'ava';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthError, hashPassword } from '../fleet/dashboard/auth.ts';
import { startDashboard } from '../fleet/dashboard/dashboard.ts';
import { openDb, type Db } from '../fleet/record/db.ts';
import { CommandError } from '../runtime/mqtt/errors.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { startReporter } from '../runtime/mqtt/reporter.ts';
import { recordingLog, sampleState, startMosquitto } from './helpers/brokers.ts';
import { launchChromium } from './helpers/browser.ts';
import { pgliteDir } from './helpers/fleet.ts';

test('a non-local listener without a users file refuses to start, before it touches the database', async (t) => {
  const db = new Proxy({} as Db, { get: () => t.fail('the database was touched') });
  const e = await t.throwsAsync(startDashboard(db, { recorder: { mqtt: { url: 'mqtt://127.0.0.1:1' } }, host: '0.0.0.0', port: 0, shifts: [] }, recordingLog().log), { instanceOf: AuthError });
  t.is(e.code, 'DASHBOARD_AUTH_REQUIRED');
  t.regex(e.message, /--users/);
});

/** Upgrade to a WebSocket; resolves with the HTTP status when the server answers instead. */
function wsStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url.replace(/^http/, 'http') + 'ws', {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('response', (res) => (res.resume(), resolve(res.statusCode!)));
    req.on('upgrade', (_res, socket) => (socket.destroy(), resolve(101)));
    req.on('error', reject);
    req.end();
  });
}

test('sign-in required off localhost; a viewer cannot send commands; an operator can, and sees the device\'s refusals', async (t) => {
  t.timeout(120_000);
  const dir = await mkdtemp(join(tmpdir(), 'ep-auth-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const applied: unknown[] = [];
  const reporter = startReporter(
    { url: broker.url, device: 'press-9', healthIntervalMs: 0 },
    {
      outbox: createMemoryOutbox(),
      state: sampleState(),
      log: recordingLog().log,
      handlers: {
        'set-threshold': (args, ctx) => {
          if (args.camera !== undefined && args.camera !== 'cam1') throw new CommandError('CAMERA_UNKNOWN', `no camera ${args.camera}`);
          applied.push({ threshold: args.threshold, camera: args.camera });
          const thresholds = { default: 0.5, cameras: { ...(args.camera && { [args.camera]: args.threshold }) } };
          ctx.setState({ thresholds });
          return { thresholds };
        },
      },
    },
  );
  t.teardown(() => reporter.close());
  const users = join(dir, 'users.yaml');
  await writeFile(users, `users:\n  - { name: lead, role: operator, password: "${await hashPassword('operator-pw-1')}" }\n  - { name: guest, role: viewer, password: "${await hashPassword('viewer-pw-1')}" }\n`);
  const pg = await pgliteDir();
  t.teardown(pg.cleanup);
  const db = await openDb({ kind: 'pglite', dir: pg.dir });
  t.teardown(() => db.close());
  const dash = await startDashboard(db, { recorder: { mqtt: { url: broker.url, clientId: 'auth-dashboard' } }, host: '0.0.0.0', port: 0, usersFile: users, shifts: [] }, recordingLog().log);
  t.teardown(() => dash.close());
  const base = `http://127.0.0.1:${dash.port}/`;

  // Not signed in: the page loads (it holds no data), nothing else does.
  t.is((await fetch(base)).status, 200);
  for (const path of ['api/fleet', 'api/actions', 'api/snapshot?device=press-9&camera=cam1', 'api/gaps?device=press-9']) t.is((await fetch(base + path)).status, 401, path);
  t.is((await fetch(base + 'api/command', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: 'press-9', command: 'set-threshold', args: { threshold: 0.9 } }) })).status, 401);
  t.is(await wsStatus(base), 401, 'the WebSocket too');

  const login = async (name: string, password: string) => {
    const r = await fetch(base + 'api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
    return { status: r.status, cookie: (r.headers.get('set-cookie') ?? '').split(';')[0]!, body: (await r.json()) as { code?: string } };
  };
  t.like(await login('lead', 'wrong'), { status: 401, body: { code: 'BAD_CREDENTIALS' } });
  t.like(await login('nobody', 'operator-pw-1'), { status: 401, body: { code: 'BAD_CREDENTIALS' } });
  const command = (cookie: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(base + 'api/command', { method: 'POST', headers: { 'content-type': 'application/json', cookie, ...headers }, body: JSON.stringify(body) });

  // A viewer looks, and is refused commands.
  const viewer = await login('guest', 'viewer-pw-1');
  t.is(viewer.status, 200);
  t.is((await fetch(base + 'api/fleet', { headers: { cookie: viewer.cookie } })).status, 200);
  t.is(await wsStatus(base, { cookie: viewer.cookie }), 101);
  const refused = await command(viewer.cookie, { device: 'press-9', command: 'set-threshold', args: { threshold: 0.9 } });
  t.is(refused.status, 403);
  t.like(await refused.json(), { code: 'FORBIDDEN' });

  // An operator's command reaches the device; the device's refusal carries its code.
  const op = await login('lead', 'operator-pw-1');
  const ok = await command(op.cookie, { device: 'press-9', command: 'set-threshold', args: { threshold: 0.8, camera: 'cam1' } });
  t.is(ok.status, 200);
  t.like(await ok.json(), { ok: true, data: { thresholds: { cameras: { cam1: 0.8 } } } });
  t.deepEqual(applied, [{ threshold: 0.8, camera: 'cam1' }], 'only the operator\'s command was applied');
  const bad = await command(op.cookie, { device: 'press-9', command: 'set-threshold', args: { threshold: 0.8, camera: 'cam9' } });
  t.like(await bad.json(), { ok: false, code: 'CAMERA_UNKNOWN' });
  t.like(await (await command(op.cookie, { device: 'press-9', command: 'set-threshold', args: { threshold: 3 } })).json(), { code: 'INVALID_ARGS' });
  t.is((await command(op.cookie, { device: 'press-9', command: 'set-threshold', args: { threshold: 0.7 } }, { origin: 'http://evil.example' })).status, 403, 'another site');
  t.is((await fetch(base + 'api/command', { method: 'POST', headers: { 'content-type': 'text/plain', cookie: op.cookie }, body: '{}' })).status, 415);
  t.is(await wsStatus(base, { cookie: op.cookie, origin: 'http://evil.example' }), 403);
  const log = (await (await fetch(base + 'api/actions', { headers: { cookie: op.cookie } })).json()) as { user: string; ok: boolean }[];
  t.deepEqual(log.map((a) => [a.user, a.ok]), [['lead', false], ['lead', true]], 'the action log names who did what');

  // In the browser: the viewer signs in and finds the controls disabled.
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`${base}#/actions`);
  await page.getByTestId('login').waitFor();
  await page.locator('input[name=name]').fill('guest');
  await page.locator('input[name=password]').fill('viewer-pw-1');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('read-only').waitFor({ timeout: 20_000 });
  await page.getByTestId('actions-press-9').waitFor({ timeout: 20_000 });
  t.true(await page.getByTestId('threshold-set').isDisabled());
  t.regex((await page.getByTestId('user').textContent()) ?? '', /guest \(viewer\)/);

  // Guessing is slowed down (last: it locks this address out for a minute).
  for (let i = 0; i < 5; i++) await login('lead', `guess-${i}`);
  t.like(await login('lead', 'operator-pw-1'), { status: 429, body: { code: 'TOO_MANY_ATTEMPTS' } });
});
