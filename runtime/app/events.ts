// Turns what happens on the device into MQTT `event` messages: model loaded/rejected, a camera
// lost (watchdog: stalled, restarting, out of restarts) and restored (with its downtime), a crashed
// inference worker, and inference errors — the latter at most once per code and camera every 10 s, so a broken model
// does not flood the broker at 30 fps.

import type { CameraStateEvent } from '../../devices/cameras/frame.ts';
import type { Reporter } from '../mqtt/reporter.ts';
import type { PipelineFailure } from '../pipeline/pipeline.ts';
import type { LoadedInfo } from '../session/host.ts';
import type { WorkerCrash } from '../session/worker-engine.ts';

type Publish = Pick<Reporter, 'publishEvent'>;
const clip = (s: string) => (s.length > 2000 ? `${s.slice(0, 1997)}...` : s) || '-';

export class EventRelay {
  private readonly lostSince = new Map<string, number>();
  private readonly lastError = new Map<string, number>();

  constructor(
    private readonly reporter: Publish,
    private readonly errorEveryMs = 10_000,
  ) {}

  /** model-loaded, preceded by one `error` EP_FALLBACK per execution provider that could not be used. */
  modelLoaded(info: LoadedInfo): void {
    const s = info.session;
    for (const a of s.attempts.filter((x) => !x.ok)) {
      this.reporter.publishEvent({ type: 'error', code: 'EP_FALLBACK', message: clip(`${a.ep} unavailable, running on ${s.ep}: ${a.error ?? '?'}`) });
    }
    this.reporter.publishEvent({ type: 'model-loaded', model: s.ref, ep: s.ep, warmupMs: Math.round(s.warmupMs * 100) / 100 });
  }

  /** The inference worker died: its runs in flight failed; `reopening` sessions are on their way back. */
  workerCrashed(c: WorkerCrash): void {
    const how = c.reopening > 0 ? `reopening ${c.reopening} session(s) in a new worker` : 'sessions reopen on their next run (repeated crashes)';
    this.reporter.publishEvent({ type: 'error', code: 'INFERENCE_WORKER_CRASHED', message: clip(`the inference worker exited (code ${c.code}${c.error ? `: ${c.error}` : ''}); ${c.inFlight} run(s) in flight failed; ${how}`) });
  }

  modelRejected(err: Error & { code?: string }): void {
    this.reporter.publishEvent({ type: 'model-rejected', code: clip(err.code ?? 'LOAD_FAILED').slice(0, 64), message: clip(err.message) });
  }

  camera(e: CameraStateEvent): void {
    const lost = e.state === 'stalled' || e.state === 'restarting' || (e.state === 'stopped' && e.reason === 'budget_exhausted');
    if (lost && !this.lostSince.has(e.camera)) {
      this.lostSince.set(e.camera, e.ts);
      const detail = [e.reason, e.error?.message, ...(e.stderrTail ?? []).slice(-3)].filter(Boolean).join(': ');
      this.reporter.publishEvent({ type: 'camera-lost', camera: e.camera, reason: clip(detail) });
    } else if (e.state === 'running' && this.lostSince.has(e.camera)) {
      const since = this.lostSince.get(e.camera)!;
      this.lostSince.delete(e.camera);
      this.reporter.publishEvent({ type: 'camera-restored', camera: e.camera, downMs: Math.max(0, e.ts - since) });
    }
  }

  /** An MQTT `trigger` that got no frame in time (camera down or paused): its requester waits for nothing. */
  triggerExpired(camera: string, triggerId: string): void {
    this.reporter.publishEvent({ type: 'error', code: 'TRIGGER_EXPIRED', camera, message: `trigger ${triggerId} on camera ${camera} got no frame in time (camera down or paused?)` });
  }

  failure(f: PipelineFailure): void {
    const code = (f.error.code ?? 'INFERENCE_FAILED').slice(0, 64);
    const key = `${code}/${f.camera}`;
    const now = Date.now();
    if (now - (this.lastError.get(key) ?? -Infinity) < this.errorEveryMs) return;
    this.lastError.set(key, now);
    this.reporter.publishEvent({ type: 'error', code, message: clip(f.error.message), camera: f.camera });
  }
}
