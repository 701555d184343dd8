// source → trigger → inference → postprocess → sinks, for any number of cameras sharing one model.
//
// Every captured frame is offered to its camera's trigger first (a frame a trigger picked must not
// be the one dropped); hits wait in the camera's FrameSlot (newest free-run frame wins, triggered
// frames queue). One inference loop serves all cameras: whenever it is free it takes up to
// maxBatch waiting frames, round-robin across cameras, and runs them as one batch. Results go to
// every sink in order without blocking the next batch; a sink's promise is awaited on stop().

import { EventEmitter } from 'node:events';
import type { Frame } from '../../devices/cameras/frame.ts';
import { QuantileRing } from '../health/quantile.ts';
import { RateMeter } from '../health/rate.ts';
import type { Latency, ResultInput } from '../schema/payloads.ts';
import { FrameSlot, type Pending } from './slot.ts';
import { decide, ThresholdState } from './thresholds.ts';
import type { CameraInput, CameraStats, PipelineEvents, PipelineFailure, PipelineOptions, PipelineResult, Sink } from './types.ts';

export type { CameraInput, CameraStats, PipelineEvents, PipelineFailure, PipelineOptions, PipelineResult, Sink } from './types.ts';

interface Unit extends CameraInput {
  slot: FrameSlot;
  paused: boolean;
  ended: boolean;
  last: Frame | null;
  c: { framesIn: number; triggered: number; processed: number; ignored: number; failures: number };
  fpsIn: RateMeter;
  fpsOut: RateMeter;
}

export class Pipeline extends EventEmitter<PipelineEvents> {
  readonly thresholds: ThresholdState;
  /** Per-batch inference time, for health p50/p99. */
  readonly inferMs = new QuantileRing(1024);
  /** Result hand-off → sink promise settled (the MQTT sink: durable in the outbox). */
  readonly sinkMs = new QuantileRing(1024);
  private readonly units: Unit[];
  private readonly byId = new Map<string, Unit>();
  private readonly sinks: Sink[];
  private readonly pendingSinks = new Set<Promise<unknown>>();
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private rr = 0;
  private started = false;
  private stopped = false;
  private endedEmitted = false;
  private lastErrorLog = -Infinity;

  constructor(private readonly o: PipelineOptions) {
    super();
    this.thresholds = o.thresholds ?? new ThresholdState();
    this.sinks = [...(o.sinks ?? [])];
    this.units = o.cameras.map((c) => ({
      ...c,
      slot: new FrameSlot(),
      paused: false,
      ended: false,
      last: null,
      c: { framesIn: 0, triggered: 0, processed: 0, ignored: 0, failures: 0 },
      fpsIn: new RateMeter(),
      fpsOut: new RateMeter(),
    }));
    for (const u of this.units) {
      if (this.byId.has(u.id)) throw new RangeError(`camera id ${u.id} is used twice`);
      this.byId.set(u.id, u);
      u.source.on('frame', (f) => this.onFrame(u, f));
      u.source.on('state', (e) => this.emit('camera', e));
      u.source.on('end', (info) => {
        if (info.reason === 'eof' && u.source.finite) {
          u.ended = true;
          this.maybeEnded();
        }
      });
    }
  }

  get cameraIds(): string[] {
    return this.units.map((u) => u.id);
  }

  addSink(s: Sink): void {
    this.sinks.push(s);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await Promise.all(this.units.map((u) => u.source.start()));
  }

  /** Stops the cameras, processes what was already waiting, and waits for the sinks. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.units.map((u) => u.source.stop()));
    for (const u of this.units) u.trigger.close();
    this.kick();
    await this.loopDone;
    await Promise.allSettled([...this.pendingSinks]);
  }

  hasCamera(id: string): boolean {
    return this.byId.has(id);
  }

  /** Pauses one camera or all; frames arriving while paused are not offered to the trigger. */
  setPaused(paused: boolean, camera?: string): void {
    const u = camera === undefined ? null : this.byId.get(camera);
    if (u === undefined) throw new RangeError(`no camera ${camera} in this pipeline`);
    for (const x of u === null ? this.units : [u]) x.paused = paused;
  }

  get pausedCameras(): string[] {
    return this.units.filter((u) => u.paused).map((u) => u.id);
  }

  lastFrame(camera: string): Frame | null {
    return this.byId.get(camera)?.last ?? null;
  }

  stats(): Record<string, CameraStats> {
    return Object.fromEntries(
      this.units.map((u) => [u.id, { state: u.source.state, ...u.c, dropped: u.slot.dropped, fpsIn: u.fpsIn.rate(), fpsProcessed: u.fpsOut.rate() }]),
    );
  }

  private onFrame(u: Unit, f: Frame): void {
    u.c.framesIn++;
    u.fpsIn.mark();
    u.last = f;
    if (u.paused || this.stopped) {
      u.c.ignored++;
      return;
    }
    const hit = u.trigger.offer(f);
    if (hit === null) return;
    u.c.triggered++;
    u.slot.put({ frame: f, hit });
    this.kick();
  }

  private kick(): void {
    if (this.running) return;
    if (!this.units.some((u) => u.slot.size > 0)) return this.maybeEnded();
    this.running = true;
    this.loopDone = this.loop();
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        const batch = this.takeBatch();
        if (batch.length === 0) break;
        await this.process(batch);
      }
    } finally {
      this.running = false;
    }
    this.maybeEnded();
  }

  /** Up to maxBatch frames, one per camera per pass, starting after the camera served first last time. */
  private takeBatch(): (Pending & { unit: Unit })[] {
    const max = this.o.maxBatch ?? this.o.classifier.current?.maxBatch ?? 1;
    const out: (Pending & { unit: Unit })[] = [];
    const n = this.units.length;
    for (let pass = 0; out.length < max; pass++) {
      let took = false;
      for (let k = 0; k < n && out.length < max; k++) {
        const u = this.units[(this.rr + k) % n]!;
        const p = u.slot.take();
        if (p) {
          out.push({ ...p, unit: u });
          took = true;
        }
      }
      if (!took) break;
    }
    this.rr = (this.rr + 1) % Math.max(1, n);
    return out;
  }

  private async process(batch: (Pending & { unit: Unit })[]): Promise<void> {
    let res;
    try {
      res = await this.o.classifier.classify(batch.map((p) => p.frame.data), this.o.topK ?? 5, batch.map((p) => p.unit.id));
    } catch (e) {
      const error = (e instanceof Error ? e : new Error(String(e))) as Error & { code?: string };
      const now = Date.now();
      if (now - this.lastErrorLog >= 10_000) {
        this.lastErrorLog = now; // a broken model fails every frame: log once per 10 s, count them all
        this.o.log?.error({ err: error.message, code: error.code, batch: batch.length }, 'pipeline: inference failed');
      }
      for (const p of batch) {
        p.unit.c.failures++;
        const f: PipelineFailure = { camera: p.unit.id, frame: p.frame, hit: p.hit, error };
        this.emit('failure', f);
        for (const s of this.sinks) if (s.failure) this.track(s, () => s.failure!(f));
      }
      return;
    }
    this.inferMs.push(res.inferMs);
    for (const [i, p] of batch.entries()) {
      const t0 = performance.now();
      const pred = res.predictions[i]!;
      const task = pred.task ?? res.session; // each camera's prompt pack on a shared backbone
      const manifest = task.manifest;
      const cam = p.unit.id;
      const threshold = this.thresholds.minConfidence(cam, manifest);
      const { decision, okScore } = decide(pred, manifest, threshold);
      const latency: Latency = {
        captureToInferMs: Math.max(0, res.startedAt - p.frame.captureTs),
        inferMs: res.inferMs,
        postMs: 0,
        totalMs: 0,
      };
      if (p.hit.kind !== 'free-run') latency.triggerToCaptureMs = Math.max(0, p.frame.captureTs - p.hit.firedAt);
      const input: ResultInput = {
        camera: cam,
        frameId: String(p.frame.frameId),
        triggerId: p.hit.kind === 'free-run' ? null : p.hit.triggerId,
        captureTs: p.frame.captureTs,
        model: task.ref,
        ...(task.prompt && { prompt: task.prompt }),
        label: pred.label,
        score: pred.score,
        topK: pred.topK,
        decision,
        ...(okScore !== undefined && { okScore }),
        latency,
      };
      latency.postMs = performance.now() - t0;
      latency.totalMs = Math.max(0, Date.now() - p.frame.captureTs);
      p.unit.c.processed++;
      p.unit.fpsOut.mark();
      const r: PipelineResult = { input, frame: p.frame, hit: p.hit, prediction: pred, batchSize: batch.length, manifest, threshold };
      this.emit('result', r);
      for (const s of this.sinks) this.track(s, () => s.result(r));
    }
  }

  private track(s: Sink, call: () => void | Promise<unknown>): void {
    const t0 = performance.now();
    let ret: void | Promise<unknown>;
    try {
      ret = call();
    } catch (e) {
      this.o.log?.error({ sink: s.name, err: (e as Error).message }, 'pipeline: sink failed');
      return;
    }
    if (!(ret instanceof Promise)) return;
    const p = ret.then(
      () => void this.sinkMs.push(performance.now() - t0),
      (e: unknown) => this.o.log?.error({ sink: s.name, err: (e as Error)?.message ?? String(e) }, 'pipeline: sink failed'),
    );
    this.pendingSinks.add(p);
    void p.finally(() => this.pendingSinks.delete(p));
  }

  private maybeEnded(): void {
    if (this.running || this.units.length === 0) return;
    if (this.endedEmitted || !this.units.every((u) => u.ended && u.slot.size === 0)) return;
    this.endedEmitted = true;
    this.emit('ended');
  }
}
