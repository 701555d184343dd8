// Cameras that flap (issue: reliability hardening): a running device (the fixture model, aedes,
// an ffmpeg camera on a live network source) whose source goes away and comes back, as often and
// for as long as a plan says. Two sources:
//   ffmpeg  an ffmpeg process serving MPEG-TS on tcp://127.0.0.1:<port> (-listen 1), killed with SIGKILL
//           (it is "back" once it listens: seen in /proc/net/tcp, since a probe connection would be its one client)
//   rtsp    an RTSP server (gst-rtsp-server, test/helpers/rtsp_server.py) killed with SIGKILL and started again
// For each outage it measures, from the device's own MQTT events: loss detected (camera-lost after
// the kill) and recovery (camera-restored after the source is back: spawned for ffmpeg, listening
// for rtsp: from when it listens), and after the last one that results still flow (no stuck state).
// Used by test/camera-flaps.test.ts (CI-sized) and bench/flaps.ts.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveFfmpeg } from '../../devices/cameras/ffmpeg.ts';
import { generateKeyPair, publicKeyPem } from '../../runtime/artifact/index.ts';
import { Runtime } from '../../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../../runtime/config/device-config.ts';
import type { EventPayload } from '../../runtime/schema/payloads.ts';
import { freePort, record, recordingLog, startAedes, until } from './brokers.ts';
import { makeArtifact, tempDir, writeArtifact } from './runtime-models.ts';

export type FlapSource = 'ffmpeg' | 'rtsp';

export interface FlapPlan {
  source: FlapSource;
  /** How long the source stays away, per outage (ms). */
  outages: number[];
  /** How long the camera runs between outages (ms), counted from its recovery. */
  upMs: number;
  /** The camera's watchdog settings (device config); default: the defaults. */
  watchdog?: Record<string, unknown>;
  progress?: (msg: string) => void;
}

export interface Outage {
  downMs: number;
  /** Kill → camera-lost (ms). */
  detectMs: number;
  /** Source back (listening) → camera-restored (ms). */
  recoverMs: number;
}

export interface FlapStats {
  source: FlapSource;
  outages: Outage[];
  /** camera-lost / camera-restored events received. */
  lostEvents: number;
  restoredEvents: number;
  /** Results in the 2 s after the last recovery (the camera is not stuck). */
  resultsAfter: number;
  violations: string[];
  ms: number;
}

interface Source {
  url: string;
  /** Starts it; resolves with the time it is back (spawned, or listening). */
  start(): Promise<number>;
  kill(): Promise<void>;
}

function ffmpegSource(port: number): Source {
  let p: ChildProcess | null = null;
  return {
    url: `tcp://127.0.0.1:${port}`,
    async start() {
      // Paced (-re) like a camera; a keyframe every 10 frames; one client, then it exits.
      p = spawn(resolveFfmpeg(), ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=30', '-c:v', 'mpeg2video', '-g', '10', '-f', 'mpegts', '-listen', '1', `tcp://127.0.0.1:${port}`], { stdio: 'ignore' });
      const hex = port.toString(16).toUpperCase().padStart(4, '0');
      const listening = async () => (await readFile('/proc/net/tcp', 'utf8')).split('\n').some((l) => l.includes(`:${hex} 00000000:0000 0A`));
      const end = Date.now() + 10_000;
      while (!(await listening()) && Date.now() < end) await sleep(5);
      return Date.now();
    },
    async kill() {
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const gone = once(p, 'exit');
      p.kill('SIGKILL');
      await gone;
    },
  };
}

function rtspSource(port: number): Source {
  let p: ChildProcess | null = null;
  return {
    url: `rtsp://127.0.0.1:${port}/cam`,
    async start() {
      p = spawn('/usr/bin/python3', [join(import.meta.dirname, 'rtsp_server.py'), String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d) => (err += d));
      await new Promise<void>((resolve, reject) => {
        p!.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        p!.once('exit', (c) => reject(new Error(`rtsp_server.py exited (${c}): ${err.slice(-500)}`)));
      });
      return Date.now();
    },
    async kill() {
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const gone = once(p, 'exit');
      p.kill('SIGKILL');
      await gone;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runFlaps(plan: FlapPlan): Promise<FlapStats> {
  const t0 = performance.now();
  const say = plan.progress ?? (() => {});
  const stats: FlapStats = { source: plan.source, outages: [], lostEvents: 0, restoredEvents: 0, resultsAfter: 0, violations: [], ms: 0 };
  const { dir, cleanup } = await tempDir('ep-flaps-');
  const undo: (() => Promise<unknown>)[] = [cleanup];
  try {
    const key = generateKeyPair();
    await writeArtifact(dir, 'model.epk', makeArtifact({}, { privateKey: key.privateKey }));
    const src = plan.source === 'ffmpeg' ? ffmpegSource(await freePort()) : rtspSource(await freePort());
    undo.unshift(() => src.kill());
    await src.start();
    const broker = await startAedes();
    undo.unshift(() => broker.stop());
    const ev = await record(broker.url, ['edgeprompt/v1/flap/event', 'edgeprompt/v1/flap/+/result'], { protocolVersion: 4 });
    undo.unshift(() => ev.close());
    const events = () => ev.messages.filter((m) => m.topic.endsWith('/event')).map((m) => ({ at: m, e: m.json() as EventPayload }));
    const results = () => ev.messages.filter((m) => m.topic.endsWith('/result')).length;
    const cfg = parseDeviceConfig(
      {
        device: 'flap',
        artifact: 'model.epk',
        trustedKeys: [publicKeyPem(key.publicKey)],
        profile: { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1 },
        cameras: [{ id: 'cam1', kind: 'ffmpeg', input: { kind: 'url', url: src.url }, fps: 10, ...(plan.watchdog && { watchdog: plan.watchdog }) }],
        mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 100 },
        outbox: { kind: 'memory' },
        health: { intervalMs: 0 },
      },
      join(dir, 'device.yaml'),
    );
    const rt = await Runtime.start(cfg, { log: recordingLog().log });
    undo.unshift(() => rt.stop());
    await until(() => results() >= 3, 'first results', 30_000);

    for (const [k, downMs] of plan.outages.entries()) {
      await sleep(plan.upMs);
      const before = events().length;
      const tKill = Date.now();
      await src.kill();
      const lost = await until(() => events().slice(before).some((x) => x.e.type === 'camera-lost'), `camera-lost after outage ${k}`, downMs + 10_000).then(
        () => events().slice(before).find((x) => x.e.type === 'camera-lost')!.e,
        () => null,
      );
      await sleep(Math.max(0, tKill + downMs - Date.now()));
      const tBack = await src.start();
      const restored = await until(() => events().slice(before).some((x) => x.e.type === 'camera-restored'), `camera-restored after outage ${k}`, 30_000).then(
        () => events().slice(before).find((x) => x.e.type === 'camera-restored')!.e,
        () => null,
      );
      if (!lost) stats.violations.push(`outage ${k}: no camera-lost event`);
      if (!restored) stats.violations.push(`outage ${k}: no camera-restored within 30 s of the source coming back`);
      const o = { downMs, detectMs: lost ? lost.ts - tKill : NaN, recoverMs: restored ? restored.ts - tBack : NaN };
      stats.outages.push(o);
      say(`outage ${k + 1}/${plan.outages.length} (${downMs} ms): lost after ${o.detectMs} ms, restored ${o.recoverMs} ms after the source was back`);
      if (!restored) break;
    }
    const n = results();
    await sleep(2000);
    stats.resultsAfter = results() - n;
    if (stats.resultsAfter === 0) stats.violations.push('no results in the 2 s after the last recovery: stuck');
    stats.lostEvents = events().filter((x) => x.e.type === 'camera-lost').length;
    stats.restoredEvents = events().filter((x) => x.e.type === 'camera-restored').length;
    if (stats.lostEvents !== plan.outages.length || stats.restoredEvents !== plan.outages.length) {
      stats.violations.push(`${stats.lostEvents} camera-lost and ${stats.restoredEvents} camera-restored events for ${plan.outages.length} outages`);
    }
  } finally {
    for (const f of undo) await f().catch(() => {});
  }
  stats.ms = performance.now() - t0;
  return stats;
}
