// Who may look and who may act. A dashboard bound to a loopback address with no users file is
// open to that machine's own users (role operator). On any other address, a users file is
// required: people sign in with a password (stored as an scrypt hash, compared in constant
// time), get a random session token in an HttpOnly, SameSite=Strict cookie, and act according
// to their role: `operator` may send commands, `viewer` may only look.
//
// users.yaml:
//   users:
//     - name: lead
//       role: operator
//       password: scrypt$16384$8$1$<salt, base64>$<key, base64>   # edgeprompt dashboard-user

import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import YAML from 'yaml';
import { z } from 'zod';
import { formatIssues } from '../../runtime/schema/codec.ts';
import type { Role } from './protocol.ts';

export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly code: 'USERS_FILE_INVALID' | 'DASHBOARD_AUTH_REQUIRED' | 'BAD_PASSWORD_HASH',
    message: string,
  ) {
    super(message);
  }
}

const scrypt = (pw: string, salt: Buffer, keylen: number, o: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) => scryptCb(pw, salt, keylen, o, (e, k) => (e ? reject(e) : resolve(k))));

const N = 16384;
const R = 8;
const P = 1;

/** `scrypt$N$r$p$salt$key` (base64), from a password. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, { N, r: R, p: P });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const HASH = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = HASH.exec(hash);
  if (!m) return false;
  const key = Buffer.from(m[5]!, 'base64');
  const got = await scrypt(password, Buffer.from(m[4]!, 'base64'), key.length, { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]), maxmem: 256 * Number(m[1]) * Number(m[2]) });
  return got.length === key.length && timingSafeEqual(got, key);
}

const User = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'must be 1-64 letters, digits, _ . @ -'),
  role: z.enum(['operator', 'viewer']),
  password: z.string().regex(HASH, 'must be a hash made by `edgeprompt dashboard-user` (scrypt$N$r$p$salt$key), never a plain password'),
});
const UsersFile = z.strictObject({ users: z.array(User) });
export type User = z.infer<typeof User>;

export function readUsers(file: string): User[] {
  let raw: unknown;
  try {
    raw = YAML.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new AuthError('USERS_FILE_INVALID', `${file}: cannot read it (${(e as Error).message})`);
  }
  const r = UsersFile.safeParse(raw ?? { users: [] });
  if (!r.success) throw new AuthError('USERS_FILE_INVALID', `${file}: ${formatIssues(r.error.issues)}`);
  const names = new Set<string>();
  for (const u of r.data.users) {
    if (names.has(u.name)) throw new AuthError('USERS_FILE_INVALID', `${file}: user ${u.name} appears twice`);
    names.add(u.name);
  }
  return r.data.users;
}

/** Adds or replaces a user in the file (created when missing). */
export async function addUser(file: string, name: string, role: Role, password: string): Promise<void> {
  const users = existsSync(file) ? readUsers(file) : [];
  const entry = User.parse({ name, role, password: await hashPassword(password) });
  const next = [...users.filter((u) => u.name !== name), entry];
  writeFileSync(file, YAML.stringify({ users: next }), { mode: 0o600 });
}

/** A listener other machines can reach needs a users file: throws DASHBOARD_AUTH_REQUIRED otherwise. */
export function requireUsersOffLoopback(host: string, usersFile: string | undefined): void {
  if (isLoopback(host) || usersFile) return;
  throw new AuthError(
    'DASHBOARD_AUTH_REQUIRED',
    `--listen ${host} is reachable from other machines: give a users file (--users users.yaml; make one with edgeprompt dashboard-user), or listen on 127.0.0.1`,
  );
}

/** 127.0.0.0/8, ::1, localhost: only this machine can connect. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const h = host.replace(/^\[|\]$/g, '');
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1';
  return false;
}

export interface Session {
  user: string;
  role: Role;
  expires: number;
}

/** Sessions in memory (a restart signs everyone out), sliding expiry, and a brake on guessing. */
export class Sessions {
  private sessions = new Map<string, Session>();
  private failures = new Map<string, { count: number; until: number }>();

  constructor(
    private readonly users: readonly User[],
    private readonly idleMs = 12 * 3600_000,
  ) {}

  /** A token, or why not: 'bad' (unknown user or wrong password), 'throttled' (too many failures from this address). */
  async login(name: string, password: string, from: string, now = Date.now()): Promise<{ token: string; session: Session } | 'bad' | 'throttled'> {
    const f = this.failures.get(from);
    if (f && f.until > now) return 'throttled';
    const user = this.users.find((u) => u.name === name);
    // Hash even for an unknown name so its answer takes as long.
    const ok = await verifyPassword(password, user?.password ?? 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    if (!user || !ok) {
      if (this.failures.size > 10_000) this.failures.clear(); // bounded memory under a flood
      const count = (f?.count ?? 0) + 1;
      this.failures.set(from, { count, until: count >= 5 ? now + 60_000 : 0 });
      return 'bad';
    }
    this.failures.delete(from);
    const token = randomBytes(32).toString('base64url');
    const session = { user: user.name, role: user.role, expires: now + this.idleMs };
    this.sessions.set(token, session);
    return { token, session };
  }

  check(token: string | undefined, now = Date.now()): Session | null {
    if (!token) return null;
    const s = this.sessions.get(token);
    if (!s) return null;
    if (s.expires <= now) {
      this.sessions.delete(token);
      return null;
    }
    s.expires = now + this.idleMs;
    return s;
  }

  logout(token: string | undefined): void {
    if (token) this.sessions.delete(token);
  }
}
