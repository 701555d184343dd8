/**
 * Fleet deployment on loopback (issue 17): mosquitto, N `edgeprompt run` processes (default 5,
 * synthetic cameras at 30 fps, the committed demo model as release 1) and the rollout controller:
 * - rollout time: the demo model as release 2 (a 2.79 MB .epk) through canary → 40 % → 100 %, each
 *   device shadowing 300 frames and watching 3 s after promotion (the policy below);
 * - transfer throughput per device: its bytes / the time it spent downloading (64 KiB blocks over its
 *   MQTT session, no rate limit; several devices share the controller in the last stage);
 * - line latency (capture → result handed to MQTT, `latency.totalMs` of published results) p50 and
 *   p99 on every device while its shadow runs, against the same devices before the rollout;
 * - frames dropped at promotion and at rollback: synthetic frame ids missing at a subscriber within
 *   ±2 s of the swap (the same count over a quiet 4 s window before the rollout, for comparison). The
 *   rollback is forced: release 3 to the canary with watch.maxInferP99Ms 0.001 (WATCH_LATENCY).
 *
 * Measured in --invocations fresh processes (default 3), reported as min / median / max.
 *
 *   npm run bench:deploy [-- --invocations 3 --devices 5 --shadow-frames 300]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { generateKeyPair, packArtifact, privateKeyPem, publicKeyPem, readArtifact, type KeyPair, type ManifestDraft } from '../runtime/artifact/index.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import { runRollout } from '../fleet/deploy/controller.ts';
import { parsePolicy } from '../fleet/deploy/policy.ts';
import { startMosquitto, until } from '../test/helpers/brokers.ts';
import { recordDeploy } from '../test/helpers/deploy.ts';
import { acrossInvocations, fmtSpread, median, repo, spread, writeReport } from './lib.ts';

const { values: f } = parseArgs({ options: { invocations: { type: 'string', default: '3' }, devices: { type: 'string', default: '5' }, 'shadow-frames': { type: 'string', default: '300' } } });
const N = Number(f.devices);
const SHADOW = Number(f['shadow-frames']);
const FPS = 30;

interface Row {
  device: string;
  frameId: number;
  captureTs: number;
  totalMs: number;
  version: string;
}

interface Figures {
  bytes: number;
  rolloutS: number;
  transferMiBps: number[];
  baseline: { p50: number; p99: number };
  shadow: { p50: number; p99: number };
  /** The canary alone: its shadow (no other device shadowing) against its own quiet window. */
  canaryBase: { p50: number; p99: number };
  canaryShadow: { p50: number; p99: number };
  droppedBaseline: number;
  droppedAround: number;
  droppedPromotion: number;
  droppedRollback: number;
  rollbackCode: string;
  load: number;
}

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};

/** Frame ids missing between the first and last result of a device within [from, to] (capture time). */
function missing(rows: Row[], device: string, from: number, to: number): number {
  const ids = [...new Set(rows.filter((r) => r.device === device && r.captureTs >= from && r.captureTs <= to).map((r) => r.frameId))].sort((a, b) => a - b);
  if (ids.length < 2) return 0;
  return ids.at(-1)! - ids[0]! + 1 - ids.length;
}

/** Frame ids skipped at the swap from model version `from` to `to`: between the old model's last result and the new one's first. */
function atSwap(rows: Row[], device: string, from: string, to: string): number {
  const byFrame = rows.filter((r) => r.device === device).sort((a, b) => a.frameId - b.frameId);
  const i = byFrame.findIndex((r, k) => k > 0 && r.version === to && byFrame[k - 1]!.version === from);
  if (i < 0) throw new Error(`${device}: no swap ${from} → ${to} in the results`);
  return byFrame[i]!.frameId - byFrame[i - 1]!.frameId - 1;
}

async function measure(): Promise<Figures> {
  const work = join(repo, '.cache/bench/deploy');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const broker = await startMosquitto({ dir: work });
  const procs: ChildProcess[] = [];
  try {
    const key: KeyPair = generateKeyPair();
    const demo = readArtifact(readFileSync(join(repo, 'test/fixtures/garment-line/fmnist-vpt-deep.epk')), 'demo.epk');
    const { schemaVersion: _s, model: _m, ...draft } = demo.manifest;
    const release = (n: number) => packArtifact({ manifest: { ...(draft as ManifestDraft), version: `1.${n}.0`, release: n }, model: demo.model }, { privateKey: key.privateKey }).bytes;
    writeFileSync(join(work, 'base.epk'), release(1));
    writeFileSync(join(work, 'r2.epk'), release(2));
    writeFileSync(join(work, 'r3.epk'), release(3));
    writeFileSync(join(work, 'release.pub'), publicKeyPem(key.publicKey));
    writeFileSync(join(work, 'release.key'), privateKeyPem(key.privateKey));
    const devices = Array.from({ length: N }, (_, i) => `bench-${i + 1}`);
    const rows: Row[] = [];
    const sub = subscribeResults({ url: broker.url, clientId: 'bench-line-pc' }, ({ result: r }) => void rows.push({ device: r.device, frameId: Number(r.frameId), captureTs: r.captureTs, totalMs: r.latency.totalMs, version: r.model.version }));
    await sub.ready;
    const deploy = await recordDeploy(broker.url);
    for (const [i, d] of devices.entries()) {
      const cfg = {
        device: d,
        artifact: 'base.epk',
        trustedKeys: ['release.pub'],
        profile: 'x86-cpu',
        cameras: [{ id: 'cam', kind: 'synthetic', fps: FPS, pattern: 'bars', seed: i + 1 }],
        mqtt: { url: broker.url },
        outbox: { kind: 'file', dir: `outbox-${d}` },
        health: { intervalMs: 0 },
        deploy: { dir: `deploy-${d}` },
      };
      writeFileSync(join(work, `${d}.json`), JSON.stringify(cfg));
      procs.push(spawn(process.execPath, ['--import', 'tsx', join(repo, 'runtime/cli.ts'), 'run', '-c', join(work, `${d}.json`)], { stdio: 'ignore', env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'error' } }));
    }
    await until(() => devices.every((d) => rows.filter((r) => r.device === d).length >= FPS), 'every device publishing', 120_000);
    // A quiet window: the line without any deployment.
    const baseFrom = Date.now();
    await new Promise((r) => setTimeout(r, 5000));
    const baseTo = Date.now();

    const policy = parsePolicy(
      {
        canary: 1,
        stages: [40, 100],
        stageTimeoutS: 600,
        transfer: { via: 'mqtt', blockKiB: 64 },
        shadow: { minFrames: SHADOW, maxDurationS: 300 },
        watch: { durationS: 3, minFrames: 30, maxNgRateJumpPt: 100 },
      },
      'bench policy',
    );
    const t0 = performance.now();
    const r2 = await runRollout({ connection: { url: broker.url }, file: join(work, 'r2.epk'), devices: devices.join(','), policy, signKeys: [key.privateKey], print: (l) => console.log(`  ${l}`) });
    const rolloutS = (performance.now() - t0) / 1000;
    if (r2.outcome !== 'completed') throw new Error(`the rollout did not complete: ${JSON.stringify(r2.reason)}`);

    // Per device: when each state was entered (device clock = this machine's).
    const since = (d: string, rollout: string, state: string) => deploy.states(d).find((s) => s.deployment?.rollout === rollout && s.deployment.state === state)?.deployment?.since;
    const transferMiBps: number[] = [];
    const shadowRows: number[] = [];
    let droppedPromotion = 0;
    let droppedAround = 0;
    for (const d of devices) {
      const down = deploy.states(d).find((s) => s.deployment?.rollout === r2.rollout && s.deployment.state === 'downloading')!.deployment!.since;
      const ver = since(d, r2.rollout, 'verifying')!;
      const bytes = r2.devices[d]!.status!.artifact.bytes;
      transferMiBps.push(bytes / 1048576 / ((ver - down) / 1000));
      const sh = since(d, r2.rollout, 'shadow')!;
      const pr = since(d, r2.rollout, 'promoted')!;
      shadowRows.push(...rows.filter((r) => r.device === d && r.captureTs >= sh && r.captureTs <= pr).map((r) => r.totalMs));
      droppedAround += missing(rows, d, pr - 2000, pr + 2000);
      droppedPromotion += atSwap(rows, d, '1.1.0', '1.2.0');
    }
    const baseRows = rows.filter((r) => r.captureTs >= baseFrom && r.captureTs <= baseTo).map((r) => r.totalMs);
    const first = devices[0]!;
    const canaryBaseRows = rows.filter((r) => r.device === first && r.captureTs >= baseFrom && r.captureTs <= baseTo).map((r) => r.totalMs);
    const [csh, cpr] = [since(first, r2.rollout, 'shadow')!, since(first, r2.rollout, 'promoted')!];
    const canaryShadowRows = rows.filter((r) => r.device === first && r.captureTs >= csh && r.captureTs <= cpr).map((r) => r.totalMs);
    const droppedBaseline = devices.reduce((n, d) => n + missing(rows, d, baseFrom, baseFrom + 4000), 0);

    // A forced rollback on the canary.
    const forced = parsePolicy({ ...policy, shadow: { ...policy.shadow, minFrames: 30 }, watch: { durationS: 30, minFrames: 10, maxNgRateJumpPt: 100, maxInferP99Ms: 0.001 } }, 'bench policy (forced rollback)');
    const r3 = await runRollout({ connection: { url: broker.url }, file: join(work, 'r3.epk'), devices: devices.join(','), policy: forced, signKeys: [key.privateKey], print: (l) => console.log(`  ${l}`) });
    const canary = devices[0]!;
    const back = r3.devices[canary]!.status!;
    await new Promise((r) => setTimeout(r, 1500));
    const droppedRollback = atSwap(rows, canary, '1.3.0', '1.2.0');
    await sub.close();
    await deploy.close();
    return {
      bytes: r2.devices[canary]!.status!.artifact.bytes,
      rolloutS,
      transferMiBps,
      baseline: { p50: q(baseRows, 0.5), p99: q(baseRows, 0.99) },
      shadow: { p50: q(shadowRows, 0.5), p99: q(shadowRows, 0.99) },
      canaryBase: { p50: q(canaryBaseRows, 0.5), p99: q(canaryBaseRows, 0.99) },
      canaryShadow: { p50: q(canaryShadowRows, 0.5), p99: q(canaryShadowRows, 0.99) },
      droppedBaseline,
      droppedAround,
      droppedPromotion,
      droppedRollback,
      rollbackCode: back.reason?.code ?? back.state,
      load: loadavg()[0]!,
    };
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : null)));
    await broker.stop();
  }
}

const runs = await acrossInvocations(Number(f.invocations), measure);
const s = (pick: (x: Figures) => number, digits = 2) => fmtSpread(spread(runs.map(pick)), digits);
const body = `
${N} devices (\`edgeprompt run\` processes, synthetic camera at ${FPS} fps, x86-cpu profile, demo model) and mosquitto on loopback; the
rollout controller in the bench process. ${runs.length} invocations; each figure is min / median / max over them. The machine was
shared with other work (1-minute load average at the end of each invocation: ${runs.map((r) => r.load.toFixed(1)).join(', ')}), so the
times are upper bounds for a quiet machine.

Policy: canary 1 → 40 % → 100 %; blocks of 64 KiB over MQTT, no rate limit; shadow ${SHADOW} frames (every frame, cpuBudget 0.5,
agreement ≥ 0.97, NG-rate difference ≤ 2 pt); watch 3 s.

| figure | min / median / max |
|---|---|
| rollout of a ${(runs[0]!.bytes / 1e6).toFixed(2)} MB artifact to ${N} devices, canary → 100 % (s) | ${s((x) => x.rolloutS, 1)} |
| transfer throughput per device, median of the ${N} (MiB/s) | ${s((x) => median(x.transferMiBps))} |
| transfer throughput, slowest device (MiB/s) | ${s((x) => Math.min(...x.transferMiBps))} |
| canary, line latency p50 without / while shadowing (ms) | ${s((x) => x.canaryBase.p50)} → ${s((x) => x.canaryShadow.p50)} |
| canary, line latency p99 without / while shadowing (ms) | ${s((x) => x.canaryBase.p99)} → ${s((x) => x.canaryShadow.p99)} |
| canary, p99 while shadowing ÷ p99 without (target ≤ 1.5) | ${s((x) => x.canaryShadow.p99 / x.canaryBase.p99)} |
| all devices pooled, line latency p50 without / while shadowing (ms) | ${s((x) => x.baseline.p50)} → ${s((x) => x.shadow.p50)} |
| all devices pooled, line latency p99 without / while shadowing (ms) | ${s((x) => x.baseline.p99)} → ${s((x) => x.shadow.p99)} |
| all devices pooled, p99 while shadowing ÷ p99 without | ${s((x) => x.shadow.p99 / x.baseline.p99)} |
| frames dropped at the promotion, all ${N} devices together (target 0) | ${s((x) => x.droppedPromotion, 0)} |
| frames dropped at the rollback, canary (target 0) | ${s((x) => x.droppedRollback, 0)} |
| frames dropped within ±2 s of the promotion (the shadow's last 2 s included), all ${N} devices | ${s((x) => x.droppedAround, 0)} |
| frames dropped in a quiet 4 s window before the rollout, all ${N} devices | ${s((x) => x.droppedBaseline, 0)} |

The rollback was forced with \`watch.maxInferP99Ms: 0.001\` on release 3 (reason: ${[...new Set(runs.map((r) => r.rollbackCode))].join(', ')}).
Line latency is capture → result handed to the MQTT reporter (\`latency.totalMs\` of every published result, whole ms): in a
quiet 5 s window before the rollout, and on each device between entering \`shadow\` and its promotion. The canary rows compare
one device with itself while it is the only one shadowing. The pooled rows take every device; in the last stage three of the
five device processes shadow at once on this machine's two cores (on a line each device has its own CPU), so they measure
CPU contention between devices as much as the shadow's cost on one device. Frames dropped at a swap:
synthetic frame ids skipped between the last result of the old model and the first of the new one, at the subscriber (frames
the camera delivered but no model decided). The ±2 s and quiet windows count frame ids missing between the first and the last
result of the window: frames the pipeline dropped because inference fell behind the camera (newest frame wins), with and
without a shadow run competing for the CPU.
`;
console.log(body);
console.log(`wrote ${writeReport('deploy', 'Fleet deployment: rollout time, transfer, shadow cost, frames dropped at swaps', `npm run bench:deploy -- --invocations ${f.invocations} --devices ${N} --shadow-frames ${SHADOW}`, body)}`);
