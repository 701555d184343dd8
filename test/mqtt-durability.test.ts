// Nothing accepted is lost: mosquitto (MQTT v5, persistence on) restarted under a running device,
// and a publisher process killed with SIGKILL mid-stream while the broker is down, then restarted.
// The subscriber uses a persistent session (fixed clientId, clean:false, QoS 1).

import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { subscribeResults, type ResultMessage } from '../runtime/mqtt/client.ts';
import { openFileOutbox } from '../runtime/mqtt/outbox-file.ts';
import { startReporter } from '../runtime/mqtt/reporter.ts';
import { StatusPayload } from '../runtime/schema/payloads.ts';
import { record, recordingLog, sampleResult, sampleState, startMosquitto, until } from './helpers/brokers.ts';

const DEVICE = 'weld-3';
const ROOT = join(import.meta.dirname, '..');
const url = (p: string) => JSON.stringify(pathToFileURL(join(ROOT, p)).href);

async function tempDir(t: ExecutionContext, prefix: string) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function persistentSubscriber(t: ExecutionContext, brokerUrl: string, clientId: string) {
  const got: ResultMessage[] = [];
  const sub = subscribeResults(
    { url: brokerUrl, clientId, protocolVersion: 5, reconnectPeriodMs: 100, device: DEVICE, onError: () => {} },
    (m) => void got.push(m),
  );
  t.teardown(() => sub.close());
  const fresh = () => got.filter((m) => !m.duplicate).map((m) => m.result.seq);
  return { sub, got, fresh };
}

test('results published while mosquitto is down reach a persistent subscriber that was away, across two broker restarts', async (t) => {
  const dir = await tempDir(t, 'ep-dur-a-');
  const m = await startMosquitto({ dir });
  t.teardown(() => m.stop());
  const outbox = await openFileOutbox({ dir: join(dir, 'outbox') });
  t.teardown(() => outbox.close());
  const r = startReporter(
    { url: m.url, device: DEVICE, protocolVersion: 5, reconnectPeriodMs: 100, healthIntervalMs: 0 },
    { outbox, state: sampleState(), log: recordingLog().log },
  );
  t.teardown(() => r.close());

  let s = persistentSubscriber(t, m.url, 'backend-a');
  await s.sub.ready;
  for (let i = 0; i < 5; i++) await r.publishResult(sampleResult('cam1', i));
  await until(() => s.fresh().length === 5, 'results 0-4');
  await s.sub.close(); // a clean DISCONNECT: the v5 session (sessionExpiryS) stays on the broker

  const down = once(r, 'disconnect');
  await m.stop(); // SIGTERM: mosquitto saves its database
  await down;
  for (let i = 5; i < 10; i++) await r.publishResult(sampleResult('cam1', i));
  t.is(outbox.size, 5, 'held in the file outbox while the broker is away');

  const back = once(r, 'connect');
  await m.restart();
  await back;
  await r.drained(); // the broker has them (PUBACK), queued for the absent subscriber
  t.is(outbox.size, 0);
  await m.restart(); // queued messages must survive on disk

  s = persistentSubscriber(t, m.url, 'backend-a');
  await until(() => s.fresh().length === 5, 'results 5-9 from the session', 30_000);
  t.deepEqual(s.fresh(), [5, 6, 7, 8, 9]);
  t.true(s.got.every((x) => !x.gap));
});

/** A device process: file outbox + reporter, storing one result every `intervalMs`. */
async function spawnPublisher(t: ExecutionContext, dir: string, brokerUrl: string) {
  const script = join(dir, 'publisher.mts'); // .mts: the temp dir has no package.json saying type=module
  await writeFile(
    script,
    `import { openFileOutbox } from ${url('runtime/mqtt/outbox-file.ts')};
     import { startReporter } from ${url('runtime/mqtt/reporter.ts')};
     import { recordingLog, sampleResult, sampleState } from ${url('test/helpers/brokers.ts')};
     const outbox = await openFileOutbox({ dir: ${JSON.stringify(join(dir, 'outbox'))} });
     const r = startReporter(
       { url: ${JSON.stringify(brokerUrl)}, device: ${JSON.stringify(DEVICE)}, protocolVersion: 5,
         reconnectPeriodMs: 100, healthIntervalMs: 0, keepaliveS: 5 },
       { outbox, state: sampleState(), log: recordingLog().log });
     r.on('connect', () => process.stdout.write('connected\\n'));
     for (let i = 0; ; i++) {
       const { seq } = await r.publishResult(sampleResult('cam1', i));
       process.stdout.write('stored ' + seq + '\\n');
       await new Promise((ok) => setTimeout(ok, 3));
     }`,
  );
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let stored = -1;
  let connects = 0;
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      if (l === 'connected') connects++;
      else if (l.startsWith('stored ')) stored = Number(l.slice(7));
    }
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    stored: () => stored,
    connects: () => connects,
    // Only bounds a failure: at load 20-30 a tsx child took seconds to start (the test flaked at 10 s).
    waitStored: (n: number, what: string) => until(() => stored >= n || !alive(), what, 60_000),
    kill9: async () => {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

test('kill -9 the publisher mid-stream while the broker is down; after restarting both, every seq arrives', async (t) => {
  const dir = await tempDir(t, 'ep-dur-b-');
  const m = await startMosquitto({ dir });
  t.teardown(() => m.stop());
  const s = persistentSubscriber(t, m.url, 'backend-b');
  await s.sub.ready;
  const status = await record(m.url, `edgeprompt/v1/${DEVICE}/status`, { protocolVersion: 5 });
  t.teardown(() => status.close());

  const p1 = await spawnPublisher(t, dir, m.url);
  await p1.waitStored(30, 'first publisher storing');
  await m.stop(); // broker away: the publisher keeps storing into its outbox
  const atStop = p1.stored();
  await p1.waitStored(atStop + 30, 'storing while the broker is down');
  await p1.kill9(); // mid-stream: puts in flight, PUBACKs never recorded
  const confirmed1 = p1.stored();
  t.true(confirmed1 >= atStop + 30);

  await m.restart();
  const p2 = await spawnPublisher(t, dir, m.url);
  await p2.waitStored(confirmed1 + 20, 'second publisher storing after the outbox');
  const confirmed2 = p2.stored();
  await until(() => new Set(s.fresh()).size > confirmed2, `every seq 0..${confirmed2} at the subscriber`, 60_000);

  const seqs = s.fresh();
  t.deepEqual(
    seqs.slice(0, confirmed2 + 1),
    Array.from({ length: confirmed2 + 1 }, (_, i) => i),
    'each seq once (not counting flagged duplicates), none missing, in order',
  );
  t.true(s.got.every((x) => !x.gap), 'no gap was ever reported');
  t.log(`seqs 0..${confirmed2}; stored by the killed process: 0..${confirmed1}; duplicates flagged: ${s.got.length - seqs.length}`);

  // The abrupt end of a connected device is announced by its last will.
  const willsBefore = status.messages.length;
  await p2.kill9();
  const will = await status.waitFor(
    (x) => status.messages.indexOf(x) >= willsBefore && StatusPayload.parse(x.json()).state === 'offline',
    'last will after kill -9',
    30_000,
  );
  t.like(StatusPayload.parse(will.json()), { state: 'offline', reason: 'connection-lost', device: DEVICE });
});

test('a result the broker refuses (v5 reason code, here an ACL) leaves the outbox and is counted, instead of blocking it', async (t) => {
  const dir = await tempDir(t, 'ep-dur-c-');
  const acl = join(dir, 'acl');
  // Anonymous clients may do everything under edgeprompt/ except publish cam2 results.
  await writeFile(acl, 'topic readwrite edgeprompt/v1/+/status\ntopic readwrite edgeprompt/v1/+/state\n' +
    'topic readwrite edgeprompt/v1/+/cmd/#\ntopic readwrite edgeprompt/v1/+/cam1/result\ntopic read edgeprompt/#\n');
  const m = await startMosquitto({ dir, config: [`acl_file ${acl}`] });
  t.teardown(() => m.stop());
  const s = persistentSubscriber(t, m.url, 'backend-c');
  await s.sub.ready;
  const { log, lines } = recordingLog();
  const outbox = await openFileOutbox({ dir: join(dir, 'outbox') });
  t.teardown(() => outbox.close());
  const r = startReporter(
    { url: m.url, device: DEVICE, protocolVersion: 5, reconnectPeriodMs: 100, healthIntervalMs: 0 },
    { outbox, state: sampleState(), log },
  );
  t.teardown(() => r.close());
  for (let i = 0; i < 4; i++) await r.publishResult(sampleResult(i % 2 ? 'cam2' : 'cam1', i));
  await r.drained();
  t.like(r.counters(), { acked: 2, rejected: 2, outboxDepth: 0 });
  t.true(lines.some((l) => l.msg.startsWith('mqtt: broker refused a result') && (l.obj as { reasonCode: number }).reasonCode === 0x87));
  await until(() => s.fresh().length === 2, 'the two cam1 results');
  t.deepEqual(s.fresh(), [0, 2]);
  t.deepEqual(s.got[1]!.gap, { from: 1, to: 1 }, 'the subscriber sees the refused result as a gap');
});
