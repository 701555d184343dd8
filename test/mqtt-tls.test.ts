// TLS, client certificates and username/password against mosquitto, with certificates made by
// openssl for this run (a throwaway CA, a server cert for 127.0.0.1, a client cert per device).

import test from 'ava';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MqttOptionsError } from '../runtime/mqtt/errors.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { startReporter, type ReporterOptionsInput } from '../runtime/mqtt/reporter.ts';
import { StatusPayload } from '../runtime/schema/payloads.ts';
import { record, recordingLog, sampleState, startMosquitto, until, type Mosquitto } from './helpers/brokers.ts';

const DEVICE = 'line2-box';
let dir = '';
let m: Mosquitto;
const pem = (f: string) => join(dir, f);

function makeCert(name: string, cn: string, san?: string) {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  const ext = san ? ['-extfile', `${name}.ext`] : [];
  if (san) execFileSync('sh', ['-c', `printf 'subjectAltName=${san}' > ${name}.ext`], { cwd: dir });
  ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...ext);
}

test.before(async () => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
  } catch {
    throw new Error('the TLS tests make their certificates with the openssl CLI: apt-get install openssl');
  }
  dir = await mkdtemp(join(tmpdir(), 'ep-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=edgeprompt-test-ca'], { cwd: dir, stdio: 'pipe' });
  makeCert('server', 'localhost', 'IP:127.0.0.1,DNS:localhost');
  makeCert('client', DEVICE);
  execFileSync('mosquitto_passwd', ['-b', '-c', pem('passwd'), 'device', 's3cret'], { stdio: 'pipe' });
  await writeFile(pem('other-ca.crt'), await readFile(pem('server.crt'))); // not a CA for the server cert
  m = await startMosquitto({
    dir,
    secure: true,
    allowAnonymous: false,
    config: [`password_file ${pem('passwd')}`],
    listenerConfig: [
      `cafile ${pem('ca.crt')}`,
      `certfile ${pem('server.crt')}`,
      `keyfile ${pem('server.key')}`,
      'require_certificate true',
    ],
  });
});
test.after.always(async () => {
  await m?.stop();
  await rm(dir, { recursive: true, force: true });
});

const tls = () => ({ caFile: pem('ca.crt'), certFile: pem('client.crt'), keyFile: pem('client.key') });

function start(extra: Partial<ReporterOptionsInput>) {
  const { log, lines } = recordingLog();
  const r = startReporter(
    { url: m.url, device: DEVICE, reconnectPeriodMs: 200, healthIntervalMs: 0, username: 'device', password: 's3cret', tls: tls(), ...extra },
    { outbox: createMemoryOutbox(), state: sampleState(), log },
  );
  const refused = () => until(() => lines.some((l) => l.msg === 'mqtt: connection error'), 'a connection error');
  return { r, lines, refused };
}

test.serial('mqtts with CA, client certificate and username/password: online status arrives', async (t) => {
  const { r } = start({});
  t.teardown(() => r.close());
  await once(r, 'connect');
  const sub = await record(m.url, `edgeprompt/v1/${DEVICE}/status`, {
    username: 'device',
    password: 's3cret',
    ca: await readFile(pem('ca.crt')),
    cert: await readFile(pem('client.crt')),
    key: await readFile(pem('client.key')),
  });
  t.teardown(() => sub.close());
  const s = await sub.waitFor(() => true, 'retained status over TLS');
  t.like(StatusPayload.parse(s.json()), { state: 'online', device: DEVICE });
});

test.serial('a wrong password, a missing client certificate, or an unknown CA never connect, and say why', async (t) => {
  const cases: [string, Partial<ReporterOptionsInput>, RegExp][] = [
    ['wrong password', { password: 'nope' }, /Bad username or password|Not authorized/i],
    ['no client certificate', { tls: { caFile: pem('ca.crt') } }, /certificate required/],
    ['server not signed by the trusted CA', { tls: { ...tls(), caFile: pem('other-ca.crt') } }, /certificate|self.signed|verify/i],
  ];
  for (const [what, extra, why] of cases) {
    const { r, lines, refused } = start(extra);
    await refused();
    t.false(r.connected, what);
    const err = String((lines.find((l) => l.msg === 'mqtt: connection error')!.obj as { err: string }).err);
    t.regex(err, why, `${what}: ${err}`);
    t.log(`${what}: ${err}`);
    await r.close();
  }
});

test.serial('rejectUnauthorized:false accepts a server the CA list does not vouch for', async (t) => {
  const { r } = start({ tls: { ...tls(), caFile: pem('other-ca.crt'), rejectUnauthorized: false } });
  t.teardown(() => r.close());
  await once(r, 'connect');
  t.true(r.connected);
});

test('TLS option mistakes are caught before connecting, naming the field', (t) => {
  const missing = t.throws(() => start({ tls: { ...tls(), certFile: '/nonexistent/client.crt' } }), {
    instanceOf: MqttOptionsError,
  });
  t.is(missing?.code, 'TLS_FILE_UNREADABLE');
  t.regex(missing?.message ?? '', /tls\.certFile "\/nonexistent\/client\.crt" cannot be read \(ENOENT\)/);
  const half = t.throws(() => start({ tls: { caFile: pem('ca.crt'), certFile: pem('client.crt') } }), {
    instanceOf: MqttOptionsError,
  });
  t.is(half?.code, 'INVALID_OPTIONS');
  t.regex(half?.message ?? '', /tls\.key: a client certificate needs both cert and key/);
  const both = t.throws(() => start({ tls: { ca: 'x', caFile: pem('ca.crt') } }), { instanceOf: MqttOptionsError });
  t.regex(both?.message ?? '', /tls\.ca: give ca or caFile, not both/);
});
