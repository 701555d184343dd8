// The dashboard's web server (Fastify): the page's static files, the WebSocket (hub.ts), and a
// small JSON API — sign in and out, the device's latest frame, commands, the action log, gaps.
//
// Access: an open dashboard (loopback, no users file) treats every request as the local
// operator. Otherwise /api and /ws need a session cookie (auth.ts); the page's own files are
// public (they hold no data). Requests that change anything must be JSON and, when the browser
// says where it comes from (Origin), come from this site; so must the WebSocket upgrade.

import fastifyCookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CommandTimeoutError, type CommandClient } from '../../runtime/mqtt/command-client.ts';
import { formatIssues } from '../../runtime/schema/codec.ts';
import { CameraId, commandSchemas, DeviceId } from '../../runtime/schema/payloads.ts';
import type { Log } from '../../runtime/log.ts';
import type { Queryable } from '../record/db.ts';
import { gaps, recentActions } from '../record/queries.ts';
import { insertAction } from '../record/store.ts';
import type { Sessions } from './auth.ts';
import type { Hub } from './hub.ts';
import type { Role } from './protocol.ts';
import { registerReview } from './review-api.ts';

const COOKIE = 'ep_session';

export interface ServerDeps {
  hub: Hub;
  db: Queryable;
  commands: CommandClient;
  /** null: open dashboard (loopback, no users). */
  sessions: Sessions | null;
  webDir: string;
  log: Log;
  commandTimeoutMs?: number;
}

type User = { name: string; role: Role };
declare module 'fastify' {
  interface FastifyRequest {
    user: User | null;
  }
}

const CommandBody = z.strictObject({
  device: DeviceId,
  command: z.enum(['set-threshold', 'pause', 'resume']),
  args: z.record(z.string(), z.unknown()).default({}),
});
const SnapshotQuery = z.strictObject({ device: DeviceId, camera: CameraId });
const GapsQuery = z.strictObject({ device: DeviceId });
const LoginBody = z.strictObject({ name: z.string().max(64), password: z.string().max(1024) });

const fail = (reply: FastifyReply, status: number, code: string, message: string) => reply.code(status).send({ ok: false, code, message });

/** The browser's Origin, when it sent one, must name this host. */
function sameOrigin(req: FastifyRequest): boolean {
  const origin = req.headers.origin;
  if (!origin) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export async function buildServer(d: ServerDeps): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  await app.register(fastifyCookie);
  await app.register(fastifyWebsocket, { options: { maxPayload: 64 * 1024 } });
  await app.register(fastifyStatic, { root: d.webDir, prefix: '/', index: ['index.html'], cacheControl: false });
  app.decorateRequest('user', null);

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) d.log.error({ err: err.message }, 'dashboard: request failed');
    void fail(reply, status, err.code ?? 'ERROR', err.message);
  });

  // Who is asking: on every API and WebSocket request.
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (!(path.startsWith('/api/') || path === '/ws')) return;
    if (req.method !== 'GET' && req.method !== 'HEAD' && !sameOrigin(req)) return fail(reply, 403, 'CROSS_ORIGIN', 'requests must come from the dashboard page itself');
    if (path === '/ws' && !sameOrigin(req)) return fail(reply, 403, 'CROSS_ORIGIN', 'the WebSocket must be opened by the dashboard page itself');
    if (!d.sessions) {
      req.user = { name: 'local', role: 'operator' };
      return;
    }
    const s = d.sessions.check(req.cookies[COOKIE]);
    if (s) req.user = { name: s.user, role: s.role };
    else if (path !== '/api/login' && path !== '/api/me') return fail(reply, 401, 'UNAUTHENTICATED', 'sign in first');
  });

  app.get('/api/me', async (req, reply) => (req.user ? { user: req.user, auth: d.sessions !== null } : fail(reply, 401, 'UNAUTHENTICATED', 'sign in first')));

  app.post('/api/login', async (req, reply) => {
    if (!d.sessions) return { user: req.user, auth: false };
    const body = LoginBody.safeParse(req.body);
    if (!body.success) return fail(reply, 400, 'INVALID_REQUEST', formatIssues(body.error.issues));
    const r = await d.sessions.login(body.data.name, body.data.password, req.ip);
    if (r === 'throttled') return fail(reply, 429, 'TOO_MANY_ATTEMPTS', 'too many failed sign-ins from this address; wait a minute');
    if (r === 'bad') return fail(reply, 401, 'BAD_CREDENTIALS', 'unknown user or wrong password');
    void reply.setCookie(COOKIE, r.token, { httpOnly: true, sameSite: 'strict', path: '/', secure: req.protocol === 'https' });
    d.log.info({ user: r.session.user, role: r.session.role, from: req.ip }, 'dashboard: signed in');
    return { user: { name: r.session.user, role: r.session.role }, auth: true };
  });

  app.post('/api/logout', async (req, reply) => {
    d.sessions?.logout(req.cookies[COOKIE]);
    void reply.clearCookie(COOKIE, { path: '/' });
    return { ok: true };
  });

  app.get('/api/snapshot', async (req, reply) => {
    const q = SnapshotQuery.safeParse(req.query);
    if (!q.success) return fail(reply, 400, 'INVALID_REQUEST', formatIssues(q.error.issues));
    try {
      const r = await d.commands.send(q.data.device, 'snapshot', { camera: q.data.camera, format: 'png' }, { timeoutMs: d.commandTimeoutMs ?? 5000 });
      if (!r.ok) return fail(reply, 502, r.error.code, r.error.message);
      if (r.command !== 'snapshot') return fail(reply, 502, 'BAD_REPLY', `the device answered ${r.command}`);
      return reply
        .header('content-type', r.data.contentType)
        .header('cache-control', 'no-store')
        .header('x-frame-id', r.data.frameId)
        .header('x-capture-ts', String(r.data.captureTs))
        .send(Buffer.from(r.data.dataBase64, 'base64'));
    } catch (e) {
      if (e instanceof CommandTimeoutError) return fail(reply, 504, e.code, e.message);
      throw e;
    }
  });

  app.post('/api/command', async (req, reply) => {
    const user = req.user!;
    if (user.role !== 'operator') return fail(reply, 403, 'FORBIDDEN', `${user.name} is a ${user.role}: sending commands needs the operator role`);
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return fail(reply, 415, 'JSON_ONLY', 'send the command as application/json');
    const body = CommandBody.safeParse(req.body);
    if (!body.success) return fail(reply, 400, 'INVALID_REQUEST', formatIssues(body.error.issues));
    const { device, command, args } = body.data;
    const checked = commandSchemas[command].args.safeParse(args);
    if (!checked.success || 'id' in args) return fail(reply, 400, 'INVALID_ARGS', checked.success ? 'id is set by the dashboard' : `${command}: ${formatIssues(checked.error.issues)}`);
    const ts = Date.now();
    let out: { ok: boolean; code?: string; message?: string; data?: unknown };
    let stored: unknown;
    try {
      const r = await d.commands.send(device, command, checked.data as never, { timeoutMs: d.commandTimeoutMs ?? 5000 });
      stored = r;
      out = r.ok ? { ok: true, data: r.data } : { ok: false, code: r.error.code, message: r.error.message };
    } catch (e) {
      if (!(e instanceof CommandTimeoutError)) throw e;
      out = { ok: false, code: e.code, message: e.message };
      stored = { ok: false, error: { code: e.code, message: e.message } };
    }
    await insertAction(d.db, { ts, user: user.name, role: user.role, device, command, args: checked.data, ok: out.ok, reply: stored }).catch((e: unknown) =>
      d.log.warn({ err: (e as Error).message }, 'dashboard: could not log the action'),
    );
    d.log.info({ user: user.name, device, command, args: checked.data, ok: out.ok, code: out.code }, 'dashboard: command');
    if (out.code === 'COMMAND_TIMEOUT') return reply.code(504).send(out);
    return out;
  });

  app.get('/api/actions', async () => recentActions(d.db, 100));

  app.get('/api/gaps', async (req, reply) => {
    const q = GapsQuery.safeParse(req.query);
    if (!q.success) return fail(reply, 400, 'INVALID_REQUEST', formatIssues(q.error.issues));
    return gaps(d.db, q.data.device);
  });

  app.get('/api/fleet', async () => d.hub.fleet());

  registerReview(app, { db: d.db, log: d.log });

  app.get('/ws', { websocket: true }, (socket, req) => {
    const c = d.hub.attach(socket, req.user!);
    socket.on('message', (data: Buffer) => c.message(data.toString('utf8')));
    socket.on('close', () => c.close());
    socket.on('error', () => c.close());
  });

  return app;
}
