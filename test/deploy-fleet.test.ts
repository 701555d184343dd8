// The fleet with real parts: mosquitto, six `edgeprompt run` processes (synthetic cameras, file
// outboxes, deploy directories) and `edgeprompt deploy` as a process. d1–d5 trust the release key,
// d6 another one. In order: a rollout to five devices completes although the broker restarts
// during the canary's transfer and the deploy command is killed (SIGKILL) mid-rollout and started
// again; a device that does not trust the release key fails the canary and the rollout stops before
// its next stage; a device killed during its transfer and again during its shadow recovers and
// commits; an older release is refused unless the signed document allows that exact file. At the
// end no device's result sequence has a gap.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyPem, publicKeyPem } from '../runtime/artifact/keys.ts';
import { subscribeResults, type Subscription } from '../runtime/mqtt/client.ts';
import type { DeployStatePayload } from '../runtime/schema/deploy.ts';
import { runRollout } from '../fleet/deploy/controller.ts';
import { startMosquitto, until, type Mosquitto } from './helpers/brokers.ts';
import { demoRelease, deployKeys, deviceJson, fastPolicy, recordDeploy } from './helpers/deploy.ts';
import { repoPath } from './helpers/fixtures.ts';
import { tempDir } from './helpers/runtime-models.ts';

const DEVICES = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'];
const keys = deployKeys();
const other = generateKeyPair();

interface Fleet {
  dir: string;
  broker: Mosquitto;
  deploy: Awaited<ReturnType<typeof recordDeploy>>;
  seqs: Map<string, Set<number>>;
  procs: Map<string, ChildProcess>;
  logs: Map<string, string[]>;
  start(d: string): ChildProcess;
  file(name: string, bytes: Uint8Array): Promise<string>;
}
let fleet: Fleet;
const cleanups: (() => Promise<unknown> | void)[] = [];

test.before(async () => {
  const { dir, cleanup } = await tempDir('ep-fleet-');
  cleanups.push(cleanup);
  const broker = await startMosquitto({ dir });
  cleanups.unshift(() => broker.stop());
  await writeFile(join(dir, 'base.epk'), demoRelease(1, keys.release).bytes);
  await writeFile(join(dir, 'base-other.epk'), demoRelease(1, other).bytes);
  await writeFile(join(dir, 'release.pub'), keys.releasePub);
  await writeFile(join(dir, 'other.pub'), publicKeyPem(other.publicKey));
  await writeFile(join(dir, 'release.key'), privateKeyPem(keys.release.privateKey));
  const seqs = new Map(DEVICES.map((d) => [d, new Set<number>()]));
  const sub: Subscription = subscribeResults({ url: broker.url, clientId: 'fleet-line-pc', reconnectPeriodMs: 200 }, (m) => void seqs.get(m.result.device)?.add(m.result.seq));
  await sub.ready;
  cleanups.unshift(() => sub.close());
  const deploy = await recordDeploy(broker.url);
  cleanups.unshift(() => deploy.close());
  const procs = new Map<string, ChildProcess>();
  const logs = new Map<string, string[]>();
  for (const [i, d] of DEVICES.entries()) {
    const own = d === 'd6' ? { artifact: join(dir, 'base-other.epk'), trustedKeys: [join(dir, 'other.pub')] } : {};
    const cfg = deviceJson(dir, d, broker.url, { ...own, cameras: [{ id: 'cam', kind: 'synthetic', fps: 20, pattern: 'bars', seed: i + 1 }], outbox: { kind: 'file', dir: join(dir, `outbox-${d}`) } });
    await writeFile(join(dir, `${d}.json`), JSON.stringify(cfg));
  }
  const start = (d: string) => {
    const p = spawn(process.execPath, ['--import', 'tsx', repoPath('runtime/cli.ts'), 'run', '-c', join(dir, `${d}.json`)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'warn' } });
    const log = logs.get(d) ?? [];
    logs.set(d, log);
    p.stderr!.setEncoding('utf8').on('data', (s: string) => log.push(...s.split('\n').filter(Boolean).slice(-50)));
    procs.set(d, p);
    return p;
  };
  cleanups.unshift(() => Promise.all([...procs.values()].map((p) => (p.exitCode === null && p.signalCode === null ? (p.kill('SIGKILL'), new Promise((r) => p.once('exit', r))) : null))));
  for (const d of DEVICES) start(d);
  fleet = { dir, broker, deploy, seqs, procs, logs, start, file: async (name, bytes) => (await writeFile(join(dir, name), bytes), join(dir, name)) };
  // Every device up: its retained deploy state (published on connect) and results flowing.
  await until(() => DEVICES.every((d) => fleet.deploy.last(d) !== null && fleet.seqs.get(d)!.size >= 3), `all six devices running:\n${[...logs].map(([d, l]) => `${d}: ${l.slice(-3).join(' | ')}`).join('\n')}`, 90_000);
});

test.after.always(async () => {
  for (const c of cleanups) await c();
});

const state = (d: string): DeployStatePayload['deployment'] => fleet.deploy.last(d)?.deployment ?? null;

function deployCli(args: string[]) {
  const p = spawn(process.execPath, ['--import', 'tsx', repoPath('cli/deploy.ts'), 'deploy', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  p.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exit = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return { p, exit, out: () => out };
}

test.serial('a rollout to five devices completes: the broker restarts mid-transfer, the deploy command is killed mid-rollout and continues when started again', async (t) => {
  t.timeout(240_000);
  const file = await fleet.file('r2.epk', demoRelease(2, keys.release).bytes);
  const policy = join(fleet.dir, 'rollout.yaml');
  await writeFile(policy, ['canary: 1', 'stages: [40, 100]', 'stageTimeoutS: 120', 'transfer: { via: mqtt, blockKiB: 16, maxKiBps: 1000, stallS: 60 }', 'shadow: { minFrames: 20, maxDurationS: 60 }', 'watch: { durationS: 1, minFrames: 5, maxNgRateJumpPt: 50 }', ''].join('\n'));
  const args = [file, '--devices', 'd1,d2,d3,d4,d5', '--policy', policy, '--sign', join(fleet.dir, 'release.key'), '--url', fleet.broker.url];
  const first = deployCli(args);
  t.teardown(() => void first.p.kill('SIGKILL'));
  // The canary is transferring: the broker goes away and comes back.
  await until(() => (state('d1')?.transfer?.blocks ?? 0) >= 30, `d1 transferring\n${first.out()}`, 90_000);
  const rollout = state('d1')!.rollout;
  await fleet.broker.restart();
  // Stage 40 % has started: the deploy command dies without a word.
  await until(() => state('d2')?.rollout === rollout, `d2 started\n${first.out()}`, 90_000);
  first.p.kill('SIGKILL');
  await first.exit;
  t.regex(first.out(), /stage canary done/);
  const second = deployCli(args);
  t.teardown(() => void second.p.kill('SIGKILL'));
  const code = await second.exit;
  t.is(code, 0, second.out());
  t.regex(second.out(), new RegExp(`rollout ${rollout}: model demo-fmnist 1\\.2\\.0 release 2`), 'the same rollout id, derived from the command');
  t.regex(second.out(), /rollout \S+ completed: 5 device\(s\) committed/);
  t.notRegex(second.out(), /\[canary\] d1: waiting/, 'the canary was not sent again');
  for (const d of ['d1', 'd2', 'd3', 'd4', 'd5']) {
    const s = state(d)!;
    t.is(s.rollout, rollout, d);
    t.is(s.state, 'committed', d);
    t.is(fleet.deploy.last(d)!.installed.model!.release, 2, d);
  }
  const c = state('d1')!.transfer!;
  t.log(`d1 transfer across the broker restart: ${c.fetched} blocks written of ${c.totalBlocks}, ${c.requested} requested, ${c.duplicates} duplicates`);
  t.is(c.fetched, c.totalBlocks, 'each block written once');
  t.true(c.requested < 2 * c.totalBlocks, 'held blocks are not asked for again');
  t.is(state('d6'), null, 'd6 was not a target');
});

test.serial('a device that does not trust the release key fails the canary; the rollout stops before the next stage', async (t) => {
  t.timeout(60_000);
  const file = await fleet.file('r3.epk', demoRelease(3, keys.release).bytes);
  const lines: string[] = [];
  const before = state('d1')!.rollout;
  const r = await runRollout({ connection: { url: fleet.broker.url }, file, devices: 'd6,d1,d2', policy: fastPolicy({ canary: ['d6'] }), signKeys: [keys.release.privateKey], print: (l) => lines.push(l) });
  t.is(r.outcome, 'aborted', lines.join('\n'));
  t.regex(r.reason!.message, /the canary failed: d6; stopped before stage 100%/);
  t.is(r.devices.d6!.status!.reason!.code, 'DEPLOY_UNKNOWN_KEY');
  t.is(r.devices.d1!.outcome, 'pending');
  t.is(state('d1')!.rollout, before, 'd1 never got the document');
  t.is(fleet.deploy.last('d6')!.installed.model!.release, 1);
});

test.serial('a device killed with SIGKILL during its transfer and again during its shadow recovers and commits', async (t) => {
  t.timeout(180_000);
  const file = await fleet.file('r3.epk', demoRelease(3, keys.release).bytes);
  const policy = fastPolicy({ transfer: { via: 'mqtt', blockKiB: 16, maxKiBps: 600, stallS: 60 }, shadow: { minFrames: 60, maxDurationS: 60 }, stageTimeoutS: 150 });
  const lines: string[] = [];
  const done = runRollout({ connection: { url: fleet.broker.url }, file, devices: 'd3', policy, signKeys: [keys.release.privateKey], print: (l) => lines.push(l) });
  const kill = async (what: string) => {
    const p = fleet.procs.get('d3')!;
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));
    t.log(`d3 killed ${what}`);
    fleet.start('d3');
  };
  await until(() => state('d3')?.artifact.release === 3 && (state('d3')!.transfer?.blocks ?? 0) >= 40, 'd3 transferring', 90_000);
  await kill('mid-transfer');
  await until(() => state('d3')?.artifact.release === 3 && state('d3')!.state === 'shadow' && state('d3')!.shadow !== null && state('d3')!.shadow!.frames >= 20, 'd3 in shadow', 120_000).catch((e: Error) => {
    throw new Error(`${e.message}\nd3: ${JSON.stringify(state('d3'))}\n${fleet.logs.get('d3')!.slice(-15).join('\n')}\n${lines.join('\n')}`);
  });
  await kill('mid-shadow');
  const r = await done;
  t.is(r.outcome, 'completed', lines.join('\n'));
  const s = state('d3')!;
  t.is(s.state, 'committed');
  t.true(s.transfer!.resumed > 0, `the transfer resumed with ${s.transfer!.resumed} blocks held`);
  t.is(s.transfer!.fetched, s.transfer!.totalBlocks, 'no block written twice across the kill');
  t.true(s.shadow!.frames >= 60, 'the shadow ran again after the kill');
  t.is(fleet.deploy.last('d3')!.installed.model!.release, 3);
});

test.serial('an older release is refused; the signed document can allow that exact file', async (t) => {
  t.timeout(90_000);
  const file = await fleet.file('r1.epk', demoRelease(1, keys.release).bytes);
  const refused = await runRollout({ connection: { url: fleet.broker.url }, file, devices: 'd2', policy: fastPolicy(), signKeys: [keys.release.privateKey], print: () => {} });
  t.is(refused.outcome, 'aborted');
  t.is(refused.devices.d2!.status!.reason!.code, 'DOWNGRADE_REFUSED');
  t.regex(refused.devices.d2!.status!.reason!.message, /release 1 is older than release 2/);
  t.is(fleet.deploy.last('d2')!.installed.model!.release, 2);
  const allowed = await runRollout({ connection: { url: fleet.broker.url }, file, devices: 'd2', policy: fastPolicy({ allowDowngrade: true }), signKeys: [keys.release.privateKey], print: () => {} });
  t.is(allowed.outcome, 'completed');
  t.is(fleet.deploy.last('d2')!.installed.model!.release, 1);
});

test.serial('edgeprompt deploy status prints every device: release before → after, state, shadow figures, reason', async (t) => {
  t.timeout(120_000);
  const p = spawn(process.execPath, [repoPath('tools/edgeprompt.mjs'), 'deploy', 'status', '--url', fleet.broker.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  p.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  t.is(await new Promise((r) => p.once('exit', r)), 0, out);
  t.log(`\n${out}`);
  const lines = out.trim().split('\n');
  t.regex(lines[0]!, /^DEVICE\s+ONLINE\s+ROLLOUT\s+ARTIFACT\s+RELEASE\s+STATE\s+TRANSFER\s+SHADOW\s+REASON$/);
  const row = (d: string) => lines.find((l) => l.startsWith(`${d} `)) ?? '';
  t.regex(row('d3'), /yes\s+\S+\s+model demo-fmnist\s+2 → 3\s+committed\s+171\/171 blocks \(\d+ resumed\)\s+\d+ frames, agree 100\.0%/);
  t.regex(row('d6'), /rejected .*DEPLOY_UNKNOWN_KEY: /);
  t.regex(row('d2'), /2 → 1\s+committed/);
});

test.serial('no device lost a result through all of it (swaps, broker restart, kills)', async (t) => {
  t.timeout(30_000);
  await new Promise((r) => setTimeout(r, 1500));
  for (const d of DEVICES) {
    const s = [...fleet.seqs.get(d)!].sort((a, b) => a - b);
    const gaps = s.filter((x, i) => i > 0 && x !== s[i - 1]! + 1);
    t.deepEqual(gaps, [], `${d}: seq ${s[0]}..${s.at(-1)}`);
  }
});
