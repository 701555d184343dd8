/**
 * The measuring parts of bench:retune (bench/retune.ts): an artifact's figures on a set of parts
 * (top-1, escape and false-reject rates through the manifest's own pass rule), the drift alarm's
 * delay on a stream that drifts, the sizes of the encodings a kept frame can travel in, and the
 * runtime's results/s with and without keep rules.
 */
import { Aedes } from 'aedes';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { renderPart, PART_CLASSES } from '../compiler/data/parts.ts';
import type { LabeledSet } from '../compiler/data/types.ts';
import { readArtifact, type Artifact } from '../runtime/artifact/index.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { DriftConfig, DriftMonitor } from '../runtime/drift/monitor.ts';
import { encodeJpeg } from '../runtime/keep/jpeg.ts';
import { inspectionMetrics, okScoreOf, type InspectedPart } from '../runtime/pipeline/inspection.ts';
import { decide } from '../runtime/pipeline/thresholds.ts';
import { encodePng } from '../runtime/pipeline/png.ts';
import type { PipelineResult } from '../runtime/pipeline/types.ts';
import type { KeepConfigInput } from '../runtime/keep/config.ts';
import { median } from './lib.ts';

export interface Figures {
  top1: number;
  escapeRate: number | null;
  falseRejectRate: number | null;
}

export interface Scored {
  /** Per image: top-1 class index and score, the decision, truth. */
  rows: { predicted: number; score: number; okScore: number; decision: 'OK' | 'NG'; truth: number }[];
  figures: Figures;
}

/** Runs the artifact's model over the set (batches of 32) and applies its manifest's rule. */
export async function score(epk: Uint8Array, set: LabeledSet): Promise<Scored> {
  const a: Artifact = readArtifact(epk, 'bench');
  const m = a.manifest;
  const s = await ort.InferenceSession.create(a.model, { intraOpNumThreads: 2, logSeverityLevel: 3 });
  const C = m.labels.length;
  const okClasses = (m.thresholds.okLabels ?? m.labels).map((l) => m.labels.indexOf(l));
  const truthIndex = set.classes.map((c) => m.labels.indexOf(c));
  const rows: Scored['rows'] = [];
  try {
    for (let i = 0; i < set.samples.length; i += 32) {
      const batch = set.samples.slice(i, i + 32);
      const x = new Uint8Array(batch.length * set.size * set.size * 3);
      batch.forEach((b, k) => x.set(b.image, k * b.image.length));
      const out = await s.run({ [m.input.name]: new ort.Tensor('uint8', x, [batch.length, set.size, set.size, 3]) });
      const probs = out[m.outputs.probs]!.data as Float32Array;
      batch.forEach((b, k) => {
        const p = probs.subarray(k * C, (k + 1) * C);
        let best = 0;
        for (let c = 1; c < C; c++) if (p[c]! > p[best]!) best = c;
        const d = decide({ label: m.labels[best]!, score: p[best]!, probs: p }, m, m.thresholds.minConfidence);
        rows.push({ predicted: best, score: p[best]!, okScore: okScoreOf(p, okClasses), decision: d.decision, truth: truthIndex[b.label]! });
      });
    }
  } finally {
    await s.release();
  }
  const parts: InspectedPart[] = rows.map((r) => ({ truth: r.truth, predicted: r.predicted, okScore: r.okScore }));
  const i = inspectionMetrics(parts, { okClasses, minConfidence: m.thresholds.minConfidence }, C);
  return { rows, figures: { top1: rows.filter((r) => r.predicted === r.truth).length / rows.length, escapeRate: i.escapeRate, falseRejectRate: i.falseRejectRate } };
}

/**
 * Frames after the drift starts until the device's drift monitor (default settings unless given)
 * raises `drifting`, fed with the model's predictions on `before` then `after` (each in the order
 * given). null: no alarm within `after`. `falseAlarm`: it fired on `before` already.
 */
export function alarmDelay(epk: Uint8Array, before: Scored, after: Scored, cfg = DriftConfig.parse({})): { delay: number | null; falseAlarm: boolean } {
  const m = readArtifact(epk, 'bench').manifest;
  let fired = -1;
  let n = 0;
  const mon = new DriftMonitor(cfg, (e) => {
    if (e.type === 'drift' && e.state === 'drifting' && fired < 0) fired = n;
  });
  const feed = (r: Scored['rows'][number]) => {
    n++;
    mon.observe({ input: { camera: 'cam', label: m.labels[r.predicted]!, score: r.score, model: { name: m.name, version: m.version, sha256: 'a'.repeat(64) } }, manifest: m } as unknown as PipelineResult);
  };
  before.rows.forEach(feed);
  const falseAlarm = fired >= 0;
  const start = n;
  fired = -1;
  after.rows.forEach(feed);
  return { delay: fired < 0 ? null : fired - start, falseAlarm };
}

export interface EncodingRow {
  px: number;
  format: string;
  bytes: number;
  ms: number;
}

/** Median bytes and encode ms of parts images at each size, per encoding (the last row of each size is the raw frame). */
export async function encodings(sizes: readonly number[], perClass: number): Promise<EncodingRow[]> {
  const out: EncodingRow[] = [];
  const enc: [string, (p: Uint8Array, s: number) => Buffer][] = [
    ['PNG, no filter (snapshot)', (p, s) => encodePng(p, s, s, 3)],
    ['PNG, adaptive filters (keep: png)', (p, s) => encodePng(p, s, s, 3, { filter: 'adaptive' })],
    ['JPEG q95', (p, s) => encodeJpeg(p, s, s, 3, 95)],
    ['JPEG q90 (keep: jpeg)', (p, s) => encodeJpeg(p, s, s, 3, 90)],
    ['JPEG q75', (p, s) => encodeJpeg(p, s, s, 3, 75)],
  ];
  for (const px of sizes) {
    const images: Uint8Array[] = [];
    for (const cls of PART_CLASSES) for (let i = 0; i < perClass; i++) images.push(await renderPart(11, cls, i, px));
    for (let w = 0; w < 3; w++) for (const [, fn] of enc) for (const img of images) fn(img, px); // warm-up: the first calls run cold code
    for (const [format, fn] of enc) {
      const bytes: number[] = [];
      const ms: number[] = [];
      for (const img of images) {
        bytes.push(fn(img, px).length);
        for (let k = 0; k < 3; k++) {
          const t0 = performance.now();
          fn(img, px);
          ms.push(performance.now() - t0);
        }
      }
      out.push({ px, format, bytes: median(bytes), ms: median(ms) });
    }
    out.push({ px, format: 'raw RGB', bytes: px * px * 3, ms: 0 });
  }
  return out;
}

export type KeepMode = 'off' | 'on' | 'all-png' | 'all-jpeg';

const KEEP: Record<Exclude<KeepMode, 'off'>, Omit<KeepConfigInput, 'dir'>> = {
  // The defaults: NG and uncertain frames and a 1 % random sample, at most 10 a minute.
  on: { rules: { random: { rate: 0.01 } } },
  // Every frame kept and encoded (no limits): the most the keeper can cost.
  'all-png': { maxEncoding: 64, rules: { random: { rate: 1 }, limits: { perMinute: null, perHour: null, perDay: null, minIntervalMs: 0 } } },
  'all-jpeg': { maxEncoding: 64, encoding: { format: 'jpeg' }, rules: { random: { rate: 1 }, limits: { perMinute: null, perHour: null, perDay: null, minIntervalMs: 0 } } },
};

/**
 * Results/s of the device runtime on one camera that delivers frames faster than the model takes
 * them (a free-running synthetic camera; newest frame wins), over `seconds` after a warm-up, with
 * the keep section of `mode`. MQTT to `url` (an in-process broker), memory outbox.
 */
export async function resultsPerSecond(epkFile: string, url: string, mode: KeepMode, seconds: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'ep-keepcost-'));
  try {
    const cfg = parseDeviceConfig(
      {
        device: 'bench',
        artifact: epkFile,
        allowUnsigned: true,
        profile: { schemaVersion: 1, name: 'bench-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 2 }, warmupRuns: 3, maxBatch: 1 },
        cameras: [{ id: 'cam', kind: 'synthetic', fps: 2000, seed: 3, pattern: 'noise' }],
        mqtt: { url, protocolVersion: 4 },
        outbox: { kind: 'memory' },
        health: { intervalMs: 0 },
        ...(mode !== 'off' && { keep: { dir: join(dir, 'keep'), ...KEEP[mode] } }),
      },
      join(dir, 'device.yaml'),
    );
    const rt = await Runtime.start(cfg, { log: { debug() {}, info() {}, warn() {}, error() {} } });
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const n0 = rt.pipeline.stats().cam!.processed;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, seconds * 1000));
      return (rt.pipeline.stats().cam!.processed - n0) / ((performance.now() - t0) / 1000);
    } finally {
      await rt.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** An MQTT broker in this process (aedes) on a free loopback port. */
export async function inProcessBroker(): Promise<{ url: string; stop(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  const server = net.createServer((s) => broker.handle(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise((r) => server.close(r));
    },
  };
}
