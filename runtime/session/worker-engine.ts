// The worker engine: one worker thread per process (worker.ts) owns the ORT sessions; the main
// thread holds proxies (WorkerSession) with the same interface as an in-thread session.
// - Frames are copied once into a pooled buffer (frameBuffer) that is transferred to the worker,
//   wrapped there without a copy, and transferred back with the result.
// - A prompt pack's tensors cross once per session and are referred to by number afterwards.
// - An error inside the worker rejects that run with ORT's message.
// - If the worker dies (an uncaught exception, a bad exit), the runs in flight reject, a `crashed`
//   event is emitted, and a new worker is started that reopens every live session from the model
//   bytes kept here; after 3 crashes within a minute sessions are reopened only when next used,
//   so a model that crashes the worker cannot spin.
// - The worker keeps the process alive only while a request is outstanding, and is terminated when
//   the last session is released (so closing the host ends it; nothing hangs at exit).

import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import type { Engine, EngineSession } from './engine.ts';
import type { Feed, FeedData, OpenInfo, Outputs, Reply, Request, RunResult } from './worker-protocol.ts';

export interface WorkerCrash {
  /** The worker's exit code. */
  code: number;
  /** The uncaught error that ended it, if any. */
  error: string | null;
  /** Runs and opens that were in flight (each rejected). */
  inFlight: number;
  /** Sessions being reopened in the new worker (0 when restarts are deferred to the next use). */
  reopening: number;
}

export type WorkerEvents = {
  crashed: [crash: WorkerCrash];
  /** The sessions live at a crash are open again in a new worker. */
  restarted: [info: { sessions: number; ms: number }];
};

/** The worker's entry: worker.ts in the source tree, edgeprompt-runtime-worker.mjs beside the bundle. */
function workerUrl(): URL {
  const candidates = ['./worker.ts', './edgeprompt-runtime-worker.mjs'].map((p) => new URL(p, import.meta.url));
  const found = candidates.find((u) => existsSync(fileURLToPath(u)));
  if (!found) throw new Error(`the inference worker is missing: none of ${candidates.map((u) => fileURLToPath(u)).join(', ')} exists (copy edgeprompt-runtime-worker.mjs next to the runtime bundle, or set threads.inference: main in the device profile)`);
  return found;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  what: string;
}

const CRASH_WINDOW_MS = 60_000;
const EAGER_RESTARTS = 3;

export class InferenceWorker extends EventEmitter<WorkerEvents> {
  private worker: Worker | null = null;
  private lastError: Error | null = null;
  /** Bumped when a worker dies: sessions opened in an older generation must be reopened. */
  gen = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Live proxies (reopened after a crash). */
  readonly sessions = new Set<WorkerSession>();
  /** Sessions open or being opened: the worker is terminated when this reaches 0. */
  private users = 0;
  private crashes: number[] = [];
  /** Frees a constant in the worker when its tensor is collected on this side. */
  readonly constants = new FinalizationRegistry<{ gen: number; session: number; ref: number }>((h) => {
    if (h.gen === this.gen && this.worker) this.worker.postMessage({ op: 'drop', session: h.session, ref: h.ref } satisfies Request);
  });

  /** Frame buffers by byte length, back from the worker; `issued`: the ones that may be transferred. */
  private readonly freeFrames = new Map<number, ArrayBuffer[]>();
  private readonly issued = new WeakSet<ArrayBuffer>();

  /** A buffer of exactly `bytes` for one run's frames (pooled: runs of a size reuse a few). */
  frameBuffer(bytes: number): Uint8Array {
    const buf = this.freeFrames.get(bytes)?.pop() ?? new ArrayBuffer(bytes);
    this.issued.add(buf);
    return new Uint8Array(buf);
  }

  /** True for a frame buffer this engine issued: it moves to the worker instead of being copied. */
  transferable(b: ArrayBufferLike): b is ArrayBuffer {
    return b instanceof ArrayBuffer && this.issued.has(b);
  }

  returnFrames(bufs: readonly ArrayBuffer[]): void {
    for (const b of bufs) {
      const free = this.freeFrames.get(b.byteLength) ?? [];
      if (free.length < 8) free.push(b); // at most a few runs are in flight at once
      this.freeFrames.set(b.byteLength, free);
    }
  }

  /** The worker's thread id while one runs, else null. */
  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  private spawn(): Worker {
    const url = workerUrl();
    // From the source tree the entry is TypeScript: a worker does not inherit `--import tsx`
    // (Node 20), so it registers tsx itself before importing the entry. The bundle needs neither.
    const w = url.pathname.endsWith('.ts')
      ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); });`, { eval: true })
      : new Worker(url);
    this.lastError = null;
    w.on('message', (r: Reply) => this.reply(r));
    w.on('error', (e) => (this.lastError = e));
    w.on('exit', (code) => this.exited(w, code));
    w.unref();
    this.worker = w;
    return w;
  }

  request(msg: Request & { id: number }, what: string, transfer: ArrayBuffer[] = []): Promise<unknown> {
    const w = this.worker ?? this.spawn();
    return new Promise((resolve, reject) => {
      this.pending.set(msg.id, { resolve, reject, what });
      if (this.pending.size === 1) w.ref(); // a request outstanding keeps the process alive, like any pending I/O
      w.postMessage(msg, transfer);
    });
  }

  id(): number {
    return this.nextId++;
  }

  private reply(r: Reply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (r.ok) p.resolve(r.value);
    else p.reject(new Error(r.error));
  }

  private exited(w: Worker, code: number): void {
    if (w !== this.worker) return; // terminated on purpose
    this.worker = null;
    this.gen++;
    const why = this.lastError ? `: ${this.lastError.message}` : '';
    const inFlight = [...this.pending.values()];
    this.pending.clear();
    for (const p of inFlight) p.reject(new Error(`the inference worker exited (code ${code}${why}) during ${p.what}; it is restarted with the open sessions`));
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    const eager = this.crashes.length <= EAGER_RESTARTS && this.sessions.size > 0;
    this.emit('crashed', { code, error: this.lastError?.message ?? null, inFlight: inFlight.length, reopening: eager ? this.sessions.size : 0 });
    if (!eager) return;
    const t0 = performance.now();
    const gen = this.gen;
    Promise.all([...this.sessions].map((s) => s.remote())).then(
      () => gen === this.gen && this.emit('restarted', { sessions: this.sessions.size, ms: performance.now() - t0 }),
      () => {}, // reported by the next crash, or by the run that needs the session
    );
  }

  async open(model: Uint8Array, options: ort.InferenceSession.SessionOptions, file: string): Promise<WorkerSession> {
    this.users++;
    try {
      const info = (await this.openRemote(model, options, file)) as OpenInfo;
      const s = new WorkerSession(this, model, options, file, info, this.gen);
      this.sessions.add(s);
      return s;
    } catch (e) {
      this.unuse();
      throw e;
    }
  }

  /** Opens the model in the worker; the bytes are copied for it (the caller keeps its own). */
  openRemote(model: Uint8Array, options: ort.InferenceSession.SessionOptions, file: string): Promise<unknown> {
    const copy = new Uint8Array(model); // a copy even for a Buffer (whose slice() is a view)
    return this.request({ op: 'open', id: this.id(), model: copy, options }, `opening ${file}`, [copy.buffer]);
  }

  unuse(): void {
    if (--this.users > 0 || !this.worker) return;
    const w = this.worker;
    this.worker = null; // before terminate: its exit is not a crash
    void w.terminate();
  }

  /** Tests: makes the worker throw an uncaught exception, as a bug in it would. */
  crashForTest(): void {
    if (!this.worker) throw new Error('no inference worker is running');
    this.worker.postMessage({ op: 'crash' } satisfies Request);
  }
}

/** A session in the worker, seen from the main thread. */
class WorkerSession implements EngineSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  private handle: { gen: number; session: Promise<number> };
  /** Constant feeds already sent in this generation, by tensor. */
  private consts = new WeakMap<ort.Tensor, number>();
  private nextRef = 1;
  private released = false;

  constructor(
    private readonly pool: InferenceWorker,
    private readonly model: Uint8Array,
    private readonly options: ort.InferenceSession.SessionOptions,
    private readonly file: string,
    info: OpenInfo,
    gen: number,
  ) {
    this.inputNames = info.inputNames;
    this.outputNames = info.outputNames;
    this.inputMetadata = info.inputMetadata;
    this.outputMetadata = info.outputMetadata;
    this.handle = { gen, session: Promise.resolve(info.session) };
  }

  /** The session's id in the current worker, reopening it there after a crash. */
  remote(): Promise<number> {
    if (this.handle.gen !== this.pool.gen) {
      const gen = this.pool.gen;
      this.consts = new WeakMap();
      const session = this.pool.openRemote(this.model, this.options, `reopening ${this.file}`).then((i) => (i as OpenInfo).session);
      session.catch(() => {
        if (this.handle.gen === gen) this.handle = { gen: -1, session }; // try again on the next use
      });
      this.handle = { gen, session };
    }
    return this.handle.session;
  }

  async run(feeds: Record<string, ort.Tensor>, fetches: readonly string[]): Promise<Outputs> {
    if (this.released) throw new Error(`${this.file}: run() after release()`);
    const session = await this.remote();
    const gen = this.handle.gen;
    const sent: Feed[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const [name, t] of Object.entries(feeds)) {
      const data = t.data as FeedData;
      const f: Feed = { name, type: t.type, dims: t.dims };
      if (this.pool.transferable(data.buffer)) {
        f.data = data; // frames: moved to the worker, not copied
        transfer.push(data.buffer);
      } else {
        let ref = this.consts.get(t);
        if (ref === undefined) {
          ref = this.nextRef++;
          this.consts.set(t, ref);
          f.data = data.slice() as FeedData; // once per session: a copy of just this view
          this.pool.constants.register(t, { gen, session, ref });
        }
        f.ref = ref;
      }
      sent.push(f);
    }
    const r = (await this.pool.request({ op: 'run', id: this.pool.id(), session, feeds: sent, fetches: [...fetches] }, `a run of ${this.file}`, transfer)) as RunResult;
    this.pool.returnFrames(r.frames);
    return r.outputs;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.pool.sessions.delete(this);
    try {
      if (this.handle.gen === this.pool.gen) {
        const session = await this.handle.session.catch(() => null);
        if (session !== null && this.handle.gen === this.pool.gen) await this.pool.request({ op: 'release', id: this.pool.id(), session }, `releasing ${this.file}`);
      }
    } catch {
      // the worker died meanwhile: the session died with it
    } finally {
      this.pool.unuse();
    }
  }
}

let shared: InferenceWorker | null = null;

/** The process's inference worker (started on first use, ended when its last session is released). */
export function inferenceWorker(): InferenceWorker {
  return (shared ??= new InferenceWorker());
}

export function workerEngine(): Engine {
  const pool = inferenceWorker();
  return {
    kind: 'worker',
    zeroCopyFrames: false,
    open: (model, options, file) => pool.open(model, options, file),
    frameBuffer: (bytes) => pool.frameBuffer(bytes),
  };
}
