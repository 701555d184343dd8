/** `edgeprompt record | dashboard | dashboard-user | data export` as a user runs them: bad input is one line and exit 2, before any database is created. */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readUsers, verifyPassword } from '../fleet/dashboard/auth.ts';
import { repoPath } from './helpers/fixtures.ts';

const home = mkdtempSync(join(tmpdir(), 'ep-cli-fleet-'));
const env = { ...process.env, XDG_DATA_HOME: join(home, 'data') };
test.after.always(() => rmSync(home, { recursive: true, force: true }));

function edgeprompt(args: string[], stdin?: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const p = execFile(process.execPath, [repoPath('tools/edgeprompt.mjs'), ...args], { env, timeout: 120_000 }, (e, _out, stderr) => {
      const x = e as { code?: number; killed?: boolean } | null;
      resolve({ code: x ? (x.killed ? -1 : (x.code ?? 1)) : 0, stderr: x?.killed ? `killed after 120 s\n${stderr}` : stderr });
    });
    p.stdin!.end(stdin ?? '');
  });
}

test('refused input: one line naming the option, exit 2, no stack, no database created', async (t) => {
  t.timeout(300_000);
  const cases: [string[], RegExp][] = [
    [['dashboard', '--url', 'mqtt://127.0.0.1:1', '--listen', '0.0.0.0:8080'], /error \[DASHBOARD_AUTH_REQUIRED\]: --listen 0\.0\.0\.0 is reachable from other machines: give a users file/],
    [['dashboard', '--url', 'mqtt://127.0.0.1:1', '--shifts', 'A=6-14'], /error \[BAD_SHIFTS\]: --shifts: "A=6-14" is not NAME=HH:MM-HH:MM/],
    [['dashboard', '--url', 'mqtt://127.0.0.1:1', '--users', join(home, 'missing.yaml')], /error \[USERS_FILE_INVALID\]: .*missing\.yaml: cannot read it/],
    [['record', '--url', 'mqtt://127.0.0.1:1', '--db', 'ftp://somewhere/db'], /error \[DB_BAD_SPEC\]: --db "ftp:\/\/somewhere\/db": only postgres:\/\/ URLs or a directory/],
    [['record', '--url', 'broker:1883'], /error \[INVALID_OPTIONS\]: .*recorder options: mqtt\.url: must look like mqtt:\/\/host:1883/],
    [['record', '--url', 'mqtt://127.0.0.1:1', '--group', 'a/b'], /error \[INVALID_OPTIONS\]: .*recorder options: group: must not hold \/ \+ #/],
    [['data', 'export', '--out', join(home, 'x')], /error \[EXPORT_NO_DB\]: no recorder database at .*edgeprompt\/db; give --db/],
    [['data', 'export', '--out', join(home, 'x'), '--since', 'last week'], /error \[FLAG_INVALID\]: --since: expected an ISO date\/time .* got "last week"/],
  ];
  // Two at a time: each is a Node process starting the whole CLI.
  const results: { code: number; stderr: string }[] = [];
  for (let i = 0; i < cases.length; i += 2) results.push(...(await Promise.all(cases.slice(i, i + 2).map(([args]) => edgeprompt(args)))));
  for (const [i, [args, re]] of cases.entries()) {
    t.is(results[i]!.code, 2, `${args.join(' ')}\n${results[i]!.stderr}`);
    t.regex(results[i]!.stderr, re);
    t.notRegex(results[i]!.stderr, /\n\s+at /);
  }
  t.false(existsSync(join(home, 'data', 'edgeprompt')), 'no database was created for refused input');
});

test('dashboard-user writes a hash from the password on stdin; a short one is refused', async (t) => {
  t.timeout(300_000);
  const file = join(home, 'users.yaml');
  t.is((await edgeprompt(['dashboard-user', 'lead', '--users', file, '--role', 'operator'], 'line-lead-pw\n')).code, 0);
  const [u] = readUsers(file);
  t.like(u, { name: 'lead', role: 'operator' });
  t.true(await verifyPassword('line-lead-pw', u!.password));
  const short = await edgeprompt(['dashboard-user', 'x', '--users', file], 'abc\n');
  t.is(short.code, 2);
  t.regex(short.stderr, /BAD_PASSWORD.*at least 8 characters/);
});
