// Broker access control with the sample ACL in docs (docs/broker/mosquitto-acl.conf), on mosquitto
// 2.0.11 with a password file: each device may write only under its own topic root and read only
// its own commands. What a device that tries another device's topics sees, and what the runtime
// reports; and what MQTT 3.1.1 hides (docs/mqtt.md "Broker access control").

import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { connectCommandClient } from '../runtime/mqtt/command-client.ts';
import { openFileOutbox } from '../runtime/mqtt/outbox-file.ts';
import { startReporter } from '../runtime/mqtt/reporter.ts';
import { topics } from '../runtime/mqtt/topics.ts';
import { record, recordingLog, sampleResult, sampleState, startMosquitto, until } from './helpers/brokers.ts';

const ACL = join(import.meta.dirname, '../docs/broker/mosquitto-acl.conf');
const USERS = { 'press-7': 'pw-7', 'press-8': 'pw-8', 'line-pc': 'pw-lp' } as const;

async function securedBroker(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'ep-acl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'passwd');
  for (const [i, [user, pass]] of Object.entries(USERS).entries()) {
    execFileSync('/usr/bin/mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', pw, user, pass], { stdio: 'ignore' });
  }
  const m = await startMosquitto({ dir, allowAnonymous: false, config: [`password_file ${pw}`, `acl_file ${ACL}`] });
  t.teardown(() => m.stop());
  return { m, dir };
}

const login = (user: keyof typeof USERS) => ({ username: user, password: USERS[user] });

/** The line PC sends `ping` to press-7 and waits for the reply. */
async function ping(t: ExecutionContext, url: string) {
  const cc = await connectCommandClient({ url, protocolVersion: 5, ...login('line-pc') });
  t.teardown(() => cc.close());
  return cc.send('press-7', 'ping', {}, { timeoutMs: 10_000 });
}

/** A device runtime's MQTT side: reporter + file outbox, as `device` with `user`'s credentials. */
async function device(t: ExecutionContext, url: string, dir: string, id: string, user: keyof typeof USERS) {
  const outbox = await openFileOutbox({ dir: join(dir, `outbox-${id}-${user}`) });
  t.teardown(() => outbox.close());
  const { log, lines } = recordingLog();
  const r = startReporter({ url, device: id, ...login(user), clientId: `edgeprompt-${id}-${user}`, protocolVersion: 5, reconnectPeriodMs: 100, healthIntervalMs: 0 }, { outbox, state: sampleState(), log });
  t.teardown(() => r.close());
  return { r, lines, outbox };
}

test('the sample ACL: a device publishes under its own root and gets its own commands; the line PC reads all and commands', async (t) => {
  const { m, dir } = await securedBroker(t);
  const pc = await record(m.url, 'edgeprompt/v1/#', { protocolVersion: 5, ...login('line-pc') });
  t.teardown(() => pc.close());
  const d = await device(t, m.url, dir, 'press-7', 'press-7');
  for (let i = 0; i < 3; i++) await d.r.publishResult(sampleResult('cam1', i));
  await d.r.drained();
  t.like(d.r.counters(), { acked: 3, rejected: 0 });
  await pc.waitFor((x) => x.topic === topics.result('press-7', 'cam1') && (x.json() as { seq: number }).seq === 2, 'the third result');
  await pc.waitFor((x) => x.topic === topics.status('press-7'), 'the retained status');
  const reply = await ping(t, m.url);
  t.true(reply.ok, 'the command reached the device and its reply reached the line PC');
  t.false(d.lines.some((l) => l.level === 'error'), d.lines.map((l) => l.msg).join('\n'));
});

test("a device with another device's id is refused by the broker: every result refused (0x87), counted, logged once with the cause; no command reaches it", async (t) => {
  const { m, dir } = await securedBroker(t);
  const pc = await record(m.url, 'edgeprompt/v1/#', { protocolVersion: 5, ...login('line-pc') });
  t.teardown(() => pc.close());
  // Configured as press-7, logging in with press-8's credentials (a copied config, a swapped certificate).
  const d = await device(t, m.url, dir, 'press-7', 'press-8');
  await until(() => d.r.connected, 'connected');
  for (let i = 0; i < 5; i++) await d.r.publishResult(sampleResult('cam1', i));
  await d.r.drained(); // the refused results leave the outbox: nothing stalls behind them
  t.like(d.r.counters(), { acked: 0, rejected: 5, outboxDepth: 0 });
  const refused = d.lines.filter((l) => l.msg.startsWith('mqtt: broker refused a result'));
  t.is(refused.length, 1, 'logged once, not once per result');
  t.like(refused[0]!.obj, { reasonCode: 0x87, topic: topics.result('press-7', 'cam1') });
  t.regex(refused[0]!.msg, /check that device id press-7 matches the broker username/);
  // Nothing it sent under press-7's root reached anyone (status, state and events are refused alike).
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(pc.messages.filter((x) => x.topic.startsWith('edgeprompt/v1/press-7/')).map((x) => x.topic), []);
  // mosquitto 2.0.11 grants the command subscription (it checks read access when delivering, not
  // when subscribing), so the device cannot tell that commands will not come; none does.
  let commands = 0;
  d.r.on('command', () => commands++);
  const cc = await connectCommandClient({ url: m.url, protocolVersion: 5, ...login('line-pc') });
  t.teardown(() => cc.close());
  await t.throwsAsync(cc.send('press-7', 'ping', {}, { timeoutMs: 1000 }), { name: 'CommandTimeoutError' });
  t.is(commands, 0);
  t.false(d.lines.some((l) => l.msg.startsWith('mqtt: command subscription failed')), 'nothing to see at subscribe time');
});

test("a device cannot read another device's commands or artifact blocks, not even through a wildcard", async (t) => {
  const { m, dir } = await securedBroker(t);
  const own = await device(t, m.url, dir, 'press-7', 'press-7');
  await until(() => own.r.connected, 'press-7 connected');
  const spy = mqtt.connect(m.url, { protocolVersion: 5, clientId: 'spy', ...login('press-8') });
  t.teardown(() => spy.endAsync(true));
  const got: string[] = [];
  spy.on('message', (topic) => got.push(topic));
  await new Promise((r) => spy.once('connect', r));
  const exact = await spy.subscribeAsync('edgeprompt/v1/press-7/cmd/+', { qos: 1 }).then(
    (g) => g.map((x) => x.qos),
    (e: Error & { code?: number }) => [e.code ?? -1],
  );
  t.deepEqual(exact, [1], 'mosquitto 2.0.11 grants it: read access is checked on delivery');
  await spy.subscribeAsync(['edgeprompt/v1/+/cmd/+', 'edgeprompt/v1/+/deploy/block'], { qos: 1 }).catch(() => {});
  const reply = await ping(t, m.url);
  t.true(reply.ok, 'press-7 got its command');
  // Artifact blocks for press-7 (the deploy controller on the line PC) reach press-7 only.
  const blocks = await record(m.url, topics.deployBlock('press-7'), { protocolVersion: 5, clientId: 'press-7-blocks', ...login('press-7') });
  t.teardown(() => blocks.close());
  const lp = mqtt.connect(m.url, { protocolVersion: 5, clientId: 'lp', ...login('line-pc') });
  t.teardown(() => lp.endAsync(true));
  await new Promise((r) => lp.once('connect', r));
  await lp.publishAsync(topics.deployBlock('press-7'), Buffer.from('EPB1 block'), { qos: 1 });
  await blocks.waitFor((x) => x.payload.toString() === 'EPB1 block', 'the block at press-7');
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(got, [], 'press-8 saw none of it');
});

test('MQTT 3.1.1 hides refusals: mosquitto PUBACKs a publish the ACL refused and one over message_size_limit, and drops both', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ep-acl-v4-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'passwd');
  for (const [i, [user, pass]] of Object.entries(USERS).entries()) execFileSync('/usr/bin/mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', pw, user, pass], { stdio: 'ignore' });
  const m = await startMosquitto({ dir, allowAnonymous: false, config: [`password_file ${pw}`, `acl_file ${ACL}`, 'message_size_limit 1024'] });
  t.teardown(() => m.stop());
  const pc = await record(m.url, 'edgeprompt/v1/#', { protocolVersion: 4, ...login('line-pc') });
  t.teardown(() => pc.close());
  const c = mqtt.connect(m.url, { protocolVersion: 4, clientId: 'v4', ...login('press-8') });
  t.teardown(() => c.endAsync(true));
  await new Promise((r) => c.once('connect', r));
  const other = await c.publishAsync(topics.result('press-7', 'cam1'), Buffer.from('{}'), { qos: 1 });
  const big = await c.publishAsync(topics.result('press-8', 'cam1'), Buffer.alloc(4096, 32), { qos: 1 });
  const fine = await c.publishAsync(topics.result('press-8', 'cam1'), Buffer.from('{"ok":1}'), { qos: 1 });
  t.truthy(other && big && fine, 'all three PUBACKed without an error: the client cannot tell');
  await pc.waitFor((x) => x.payload.toString() === '{"ok":1}', 'the allowed one');
  t.deepEqual(pc.messages.map((x) => x.payload.toString()), ['{"ok":1}'], 'the refused two were dropped');
});
