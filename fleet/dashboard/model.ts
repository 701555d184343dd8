// What the dashboard shows, kept in memory and rebuilt into views on demand.
//
// Two sources feed it:
// - the built-in recorder's stored batches (at once: what this process stored is live on the
//   page within one tick), and
// - a poll of the database every few seconds, for what other recorders on the same database
//   stored (their share of a shared subscription) and for derived figures (sequence gaps).
// The two are kept apart and shown as the larger of the two per 15-minute bucket. Each is a lower
// bound of the truth (what this process stored; what the database held when the poll read it),
// so their maximum never counts a result twice and is exact once the poll has seen everything.
// Merging a poll INTO the applied counts would not be: a batch committed but not yet applied
// when the poll read it would be counted by the poll and then again by its apply (seen in the
// browser test as one more OK and NG than the database held).

import type { StoredBatch } from '../record/batcher.ts';
import type { Queryable } from '../record/db.ts';
import { cameraLatest, countBuckets, latestMessages, malformed, sequences, type MalformedSummary, type SequenceSummary } from '../record/queries.ts';
import type { DeployStatePayload } from '../../runtime/schema/deploy.ts';
import type { EventPayload, HealthPayload, ResultPayload, StatePayload, StatusPayload } from '../../runtime/schema/payloads.ts';
import type { CameraView, Counts, DeviceView, MalformedView, ResultView, ShiftDef } from './protocol.ts';
import { BUCKET_MS, bucketOf, currentShift, hourly, localMidnight, shiftWindows, sumBuckets } from './shifts.ts';

/** Buckets kept in memory: a week of shifts plus a day. */
const KEEP_MS = 8 * 86_400_000;

interface Latest {
  receivedTs: number;
  payload: unknown;
}

interface CameraInfo {
  lastCaptureTs: number;
  model: string | null;
  prompt: string | null;
}

export const camKey = (device: string, camera: string) => `${device}/${camera}`;

export const resultView = (r: ResultPayload): ResultView => ({
  device: r.device,
  camera: r.camera,
  seq: r.seq,
  seqEpoch: r.seqEpoch,
  frameId: r.frameId,
  triggerId: r.triggerId,
  captureTs: r.captureTs,
  publishTs: r.publishTs,
  label: r.label,
  score: r.score,
  decision: r.decision,
  inferMs: r.latency.inferMs,
  totalMs: r.latency.totalMs,
  model: `${r.model.name}@${r.model.version}`,
  prompt: r.prompt ? `${r.prompt.name}@${r.prompt.version}` : null,
});

export class LiveModel {
  private latest = new Map<string, Map<string, Latest>>(); // device → kind → newest
  private applied = new Map<string, Map<number, Counts>>(); // camera key → bucket start → counts this process stored
  private polled = new Map<string, Map<number, Counts>>(); // the same, as the last poll read the database
  private cameras = new Map<string, CameraInfo>();
  private seqs: SequenceSummary[] = [];
  private bad: MalformedSummary[] = [];
  /** Bumped on every change; views are rebuilt when it moved. */
  version = 0;
  /** Camera keys whose counts changed since takeChangedCameras(). */
  private changedCameras = new Set<string>();

  constructor(readonly shifts: readonly ShiftDef[]) {}

  /** A batch the built-in recorder stored. */
  apply(b: StoredBatch): void {
    for (const r of b.results) {
      const key = camKey(r.device, r.camera);
      const map = this.applied.get(key) ?? this.applied.set(key, new Map()).get(key)!;
      const bucket = bucketOf(r.captureTs);
      const c = map.get(bucket) ?? map.set(bucket, { ok: 0, ng: 0 }).get(bucket)!;
      if (r.decision === 'OK') c.ok++;
      else c.ng++;
      const info = this.cameras.get(key);
      if (!info || r.captureTs >= info.lastCaptureTs) {
        this.cameras.set(key, { lastCaptureTs: r.captureTs, model: `${r.model.name}@${r.model.version}`, prompt: r.prompt ? `${r.prompt.name}@${r.prompt.version}` : null });
      }
      this.changedCameras.add(key);
    }
    for (const m of b.messages) this.setLatest(m.value.device, m.kind, { receivedTs: m.receivedTs, payload: m.value });
    if (b.results.length > 0 || b.messages.length > 0) this.version++;
  }

  private setLatest(device: string, kind: string, l: Latest): boolean {
    const kinds = this.latest.get(device) ?? this.latest.set(device, new Map()).get(device)!;
    const prev = kinds.get(kind);
    if (prev && prev.receivedTs > l.receivedTs) return false;
    kinds.set(kind, l);
    return true;
  }

  /** Reads the database and merges what it holds (other recorders' rows, gaps, malformed). */
  async poll(q: Queryable, now = Date.now()): Promise<void> {
    const [latest, counts, seqs, bad, cams] = await Promise.all([latestMessages(q), countBuckets(q, now - KEEP_MS), sequences(q), malformed(q), cameraLatest(q)]);
    for (const l of latest) this.setLatest(l.device, l.kind, { receivedTs: l.receivedTs, payload: l.payload });
    const polled = new Map<string, Map<number, Counts>>();
    for (const c of counts) {
      const key = camKey(c.device, c.camera);
      const map = polled.get(key) ?? polled.set(key, new Map()).get(key)!;
      map.set(c.bucket, { ok: c.ok, ng: c.ng });
      const before = this.polled.get(key)?.get(c.bucket);
      if (!before || before.ok !== c.ok || before.ng !== c.ng) this.changedCameras.add(key);
    }
    this.polled = polled;
    for (const c of cams) {
      const key = camKey(c.device, c.camera);
      const info = this.cameras.get(key);
      if (!info || c.captureTs > info.lastCaptureTs) this.cameras.set(key, { lastCaptureTs: c.captureTs, model: c.model, prompt: c.prompt });
    }
    for (const map of this.applied.values()) for (const b of map.keys()) if (b < now - KEEP_MS) map.delete(b);
    this.seqs = seqs;
    this.bad = bad;
    this.version++;
  }

  /** One camera's counts per bucket: the larger of what this process stored and what the poll read. */
  private counts(key: string): Map<number, Counts> | undefined {
    const a = this.applied.get(key);
    const p = this.polled.get(key);
    if (!a || !p) return a ?? p;
    const out = new Map(p);
    for (const [b, c] of a) {
      const q = out.get(b);
      out.set(b, q ? { ok: Math.max(c.ok, q.ok), ng: Math.max(c.ng, q.ng) } : c);
    }
    return out;
  }

  markCameraChanged(key: string): void {
    this.changedCameras.add(key);
  }

  takeChangedCameras(): Set<string> {
    const c = this.changedCameras;
    this.changedCameras = new Set();
    return c;
  }

  private get<T>(device: string, kind: string): T | null {
    return (this.latest.get(device)?.get(kind)?.payload as T | undefined) ?? null;
  }

  devices(now = Date.now()): DeviceView[] {
    const names = new Set<string>([...this.latest.keys(), ...[...this.cameras.keys()].map((k) => k.slice(0, k.indexOf('/')))]);
    const shift = currentShift(this.shifts, now);
    const today = localMidnight(now);
    return [...names].sort().map((device) => {
      const status = this.get<StatusPayload>(device, 'status');
      const state = this.get<StatePayload>(device, 'state');
      const health = this.get<HealthPayload>(device, 'health');
      const event = this.get<EventPayload>(device, 'event');
      const dep = this.get<DeployStatePayload>(device, 'deploy');
      const seqs = this.seqs.filter((s) => s.device === device);
      const camIds = new Set<string>([...(state?.cameras ?? []), ...Object.keys(health?.cameras ?? {})]);
      for (const k of this.cameras.keys()) if (k.startsWith(`${device}/`)) camIds.add(k.slice(device.length + 1));
      const cameras: CameraView[] = [...camIds].sort().map((camera) => {
        const key = camKey(device, camera);
        const h = health?.cameras[camera];
        const info = this.cameras.get(key);
        const b = this.counts(key);
        return {
          camera,
          state: h?.state ?? null,
          fpsIn: h?.fpsIn ?? null,
          fpsProcessed: h?.fpsProcessed ?? null,
          droppedFrames: h?.droppedFrames ?? null,
          paused: state ? state.paused || state.pausedCameras.includes(camera) : false,
          threshold: state ? (state.thresholds.cameras[camera] ?? state.thresholds.default) : null,
          shift: shift ? sumBuckets(b, shift.start, shift.end) : { ok: 0, ng: 0 },
          today: sumBuckets(b, today, now + BUCKET_MS),
          lastCaptureTs: info?.lastCaptureTs ?? null,
          model: info?.model ?? null,
          prompt: info?.prompt ?? null,
          drift: h?.drift ?? null,
        };
      });
      const lastResult = Math.max(...cameras.map((c) => c.lastCaptureTs ?? -Infinity));
      return {
        device,
        online: status ? status.state === 'online' : null,
        statusReason: status?.reason ?? null,
        statusTs: status?.ts ?? null,
        bootId: status?.bootId ?? state?.bootId ?? null,
        model: state?.model ? `${state.model.name}@${state.model.version}` : health?.model ? `${health.model.name}@${health.model.version}` : null,
        ep: state?.ep ?? health?.ep ?? null,
        thresholds: state ? state.thresholds : null,
        pausedCameras: state ? (state.paused ? [...(state.cameras ?? [])] : state.pausedCameras) : [],
        health: health
          ? { ts: health.ts, uptimeS: health.uptimeS, rssBytes: health.rssBytes, cpuTempC: health.cpuTempC, inferMs: health.inferMs, outboxDepth: health.mqtt.outboxDepth, mqttConnected: health.mqtt.connected }
          : null,
        lastResultTs: Number.isFinite(lastResult) ? lastResult : null,
        missing: seqs.reduce((s, q) => s + q.missing, 0),
        epochs: seqs.length,
        lastEvent: event ? { type: event.type, ts: event.ts, text: eventText(event) } : null,
        deploy: dep ? deployView(dep) : null,
        cameras,
      };
    });
  }

  malformed(): MalformedView[] {
    return this.bad.map(({ device, kind, code, count, lastTs, lastTopic, lastMessage }) => ({ device, kind, code, count, lastTs, lastTopic, lastMessage }));
  }

  camera(device: string, camera: string, now = Date.now()) {
    const b = this.counts(camKey(device, camera));
    const shift = currentShift(this.shifts, now);
    const shifts = shiftWindows(this.shifts, localMidnight(now, -6), now)
      .filter((w) => w.start <= now)
      .reverse()
      .map((w) => ({ ...w, ...sumBuckets(b, w.start, w.end) }));
    return {
      counters: {
        shift: { name: shift?.name ?? null, ...(shift ? sumBuckets(b, shift.start, shift.end) : { ok: 0, ng: 0 }) },
        today: sumBuckets(b, localMidnight(now), now + BUCKET_MS),
        last24h: sumBuckets(b, bucketOf(now - 86_400_000) + BUCKET_MS, now + BUCKET_MS),
      },
      hours: hourly(b, now),
      shifts,
    };
  }
}

function deployView(d: DeployStatePayload): DeviceView['deploy'] {
  const m = d.installed.model;
  const x = d.deployment;
  return {
    installed: m ? `${m.name}@${m.version} r${m.release}` : null,
    rollout: x?.rollout ?? null,
    artifact: x ? `${x.artifact.kind} ${x.artifact.name}@${x.artifact.version} r${x.artifact.release}` : null,
    state: x?.state ?? null,
    since: x?.since ?? null,
    reason: x?.reason ? `${x.reason.code}: ${x.reason.message}` : null,
  };
}

function eventText(e: EventPayload): string {
  switch (e.type) {
    case 'model-loaded':
      return `model ${e.model.name}@${e.model.version} loaded on ${e.ep}`;
    case 'model-rejected':
      return `${e.code}: ${e.message}`;
    case 'camera-lost':
      return `camera ${e.camera} lost: ${e.reason}`;
    case 'camera-restored':
      return `camera ${e.camera} back after ${Math.round(e.downMs)} ms`;
    case 'error':
      return `${e.code}${e.camera ? ` (${e.camera})` : ''}: ${e.message}`;
    case 'drift':
      return `camera ${e.camera} ${e.state === 'drifting' ? 'drifting' : 'back to normal'}: score PSI ${e.scorePsi.toFixed(2)} (bound ${e.threshold.scorePsi}), class PSI ${e.classPsi.toFixed(2)} over ${e.frames} results`;
  }
}
