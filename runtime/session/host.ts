// The model host: holds the model in use and swaps it on reload. A reload reads, verifies,
// creates and warms the new session completely before the swap, so the pipeline never waits and
// never sees a half-loaded model; any failure (unreadable, tampered, wrong key, no EP, wrong input
// size) leaves the current model running and is reported. The old session is released once the
// runs already using it have finished.
//
// A shared backbone runs prompt packs: one per camera, or a default for every camera without its
// own. Loading an .epp swaps a pack between two batches without touching the session (a pack is
// just the tensors fed beside the frames); a pack that does not fit, is unsigned or tampered with is
// refused and the running one stays. Loading the backbone again re-reads the packs it runs and
// binds them to the new session before the swap.

import { EventEmitter } from 'node:events';
import { readFileBytes } from '../artifact/container.ts';
import type { PromptPack } from '../artifact/prompt-pack.ts';
import { readSignedFile, verifyArtifact, type ModelArtifact, type SignedFile, type Verification } from '../artifact/read.ts';
import { ArtifactError } from '../artifact/errors.ts';
import type { TrustedKey } from '../artifact/keys.ts';
import type { DeviceProfile } from '../config/profile.ts';
import type { Log } from '../log.ts';
import { BackboneSession, type PackTask } from './backbone.ts';
import { SessionError } from './errors.ts';
import { ModelSession, type OrtSession } from './session.ts';
import type { BatchResult, ModelTask, Prediction } from './task.ts';
import { inferenceWorker, type InferenceWorker, type WorkerCrash } from './worker-engine.ts';

/** Where the packs of a shared backbone come from (paths or http(s) URLs): a default and per camera id. */
export interface PackSources {
  default?: string;
  cameras?: Readonly<Record<string, string>>;
}

export interface HostOptions {
  profile: DeviceProfile;
  trustedKeys: readonly TrustedKey[];
  allowUnsigned?: boolean;
  warmupRuns?: number;
  maxBatch?: number;
  log?: Log;
  /** Fetches an http(s) artifact; default: global fetch. */
  fetchBytes?: (url: string) => Promise<Uint8Array>;
  /** The packs a shared-backbone artifact starts with. */
  packs?: PackSources;
}

export interface LoadedInfo {
  /** The task now in force by default: the fused session, or the default pack on a backbone. */
  session: ModelTask;
  verification: Verification;
  loadMs: number;
  /** When a prompt pack was loaded: it, and the slots it now serves ('*': the default). */
  pack?: { task: PackTask; slots: string[] };
}

export type HostEvents = {
  loaded: [info: LoadedInfo];
  rejected: [error: Error & { code?: string }, source: string];
  /** The inference worker died; its runs in flight failed and it is being restarted with the model. */
  workerCrashed: [crash: WorkerCrash];
  /** After a crash: the model is open again in a new inference worker. */
  workerRestarted: [info: { sessions: number; ms: number }];
};

/** What the pipeline needs from a model: the current task, and a batched run decided per frame. */
export interface Classifier {
  readonly current: ModelTask | null;
  /** `cameras[i]` names frame i's camera (which prompt pack it runs on a shared backbone). */
  classify(frames: readonly Uint8Array[], topK: number, cameras?: readonly string[]): Promise<BatchResult & { session: ModelTask }>;
}

/** The slot of the default pack: cameras without their own. */
export const DEFAULT_PACK = '*';

interface Slot {
  /** Where the pack was read from (read again when the backbone reloads), or the pack itself when it came as bytes. */
  source: string | PromptPack;
  task: PackTask;
}
type Active = { kind: 'fused'; session: ModelSession } | { kind: 'shared'; session: BackboneSession; slots: ReadonlyMap<string, Slot> };

export class ModelHost extends EventEmitter<HostEvents> implements Classifier {
  private active: Active | null = null;
  private readonly inflight = new Map<OrtSession, number>();
  private readonly retiring = new Set<OrtSession>();
  private loading: Promise<unknown> = Promise.resolve();

  /** The inference worker's crash reports, relayed while this host runs a model in it. */
  private readonly worker: InferenceWorker | null;
  private readonly onCrash = (c: WorkerCrash) => {
    this.o.log?.error({ code: c.code, err: c.error, inFlight: c.inFlight }, 'model: the inference worker crashed; restarting it');
    this.emit('workerCrashed', c);
  };
  private readonly onRestart = (i: { sessions: number; ms: number }) => {
    this.o.log?.info({ sessions: i.sessions, ms: Math.round(i.ms) }, 'model: inference worker restarted');
    this.emit('workerRestarted', i);
  };

  constructor(private readonly o: HostOptions) {
    super();
    this.worker = o.profile.threads.inference === 'worker' ? inferenceWorker() : null;
    this.worker?.on('crashed', this.onCrash).on('restarted', this.onRestart);
  }

  get current(): ModelTask | null {
    const a = this.active;
    if (!a) return null;
    return a.kind === 'fused' ? a.session : (a.slots.get(DEFAULT_PACK) ?? [...a.slots.values()][0]!).task;
  }

  /** True while a shared backbone runs. */
  get shared(): boolean {
    return this.active?.kind === 'shared';
  }

  /** The pack a camera runs on the shared backbone (its own, else the default), or null. */
  packFor(camera: string): PackTask | null {
    const a = this.active;
    return a?.kind === 'shared' ? (a.slots.get(camera) ?? a.slots.get(DEFAULT_PACK))?.task ?? null : null;
  }

  /**
   * Loads `source` (a path, an http(s) URL, or bytes): a fused or shared-backbone .epk becomes the
   * model, an .epp swaps a prompt pack. On failure the current model stays and the error is thrown
   * (and emitted as `rejected`). Loads run one at a time.
   */
  load(source: string | Uint8Array): Promise<LoadedInfo> {
    const next = this.loading.then(() => this.doLoad(source));
    this.loading = next.catch(() => {});
    return next;
  }

  private async doLoad(source: string | Uint8Array): Promise<LoadedInfo> {
    const name = typeof source === 'string' ? source : '(bytes)';
    const t0 = performance.now();
    try {
      const { file, verification } = await this.readVerified(source);
      let info: LoadedInfo;
      if (file.kind === 'pack') info = this.swapPack(file.pack, typeof source === 'string' ? source : file.pack, verification, t0);
      else {
        this.checkCompatible(file.artifact);
        const next: Active = file.kind === 'fused' ? { kind: 'fused', session: await ModelSession.create(file.artifact, this.sessionOptions()) } : await this.openShared(file.artifact);
        const old = this.active;
        this.active = next; // the swap: the next classify() uses the new session
        if (old) void this.retire(old.session);
        info = { session: this.current!, verification, loadMs: performance.now() - t0 };
      }
      this.emit('loaded', info);
      return info;
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.emit('rejected', err, name);
      throw err;
    }
  }

  private sessionOptions() {
    return {
      profile: this.o.profile,
      ...(this.o.warmupRuns !== undefined && { warmupRuns: this.o.warmupRuns }),
      ...(this.o.maxBatch !== undefined && { maxBatch: this.o.maxBatch }),
      ...(this.o.log && { log: this.o.log }),
    };
  }

  private async readVerified(source: string | Uint8Array): Promise<{ file: SignedFile; verification: Verification }> {
    let bytes: Uint8Array;
    let name = '(bytes)';
    if (typeof source !== 'string') bytes = source;
    else if (/^https?:\/\//i.test(source)) bytes = await (this.o.fetchBytes ?? defaultFetch)((name = source));
    else bytes = await readFileBytes((name = source.startsWith('file://') ? new URL(source).pathname : source));
    const file = readSignedFile(bytes, name);
    const verification = verifyArtifact(file.kind === 'pack' ? file.pack : file.artifact, this.o.trustedKeys, { allowUnsigned: this.o.allowUnsigned ?? false });
    if (!verification.verified) this.o.log?.warn({ file: name }, `model: loading an UNSIGNED ${file.kind === 'pack' ? 'prompt pack' : 'artifact'} (allowUnsigned is set)`);
    return { file, verification };
  }

  /** The backbone with every pack it will run (the running ones on a reload, else the configured ones), bound. */
  private async openShared(artifact: Extract<SignedFile, { kind: 'backbone' }>['artifact']): Promise<Active> {
    const a = this.active;
    const sources = new Map<string, string | PromptPack>();
    if (a?.kind === 'shared') for (const [k, s] of a.slots) sources.set(k, s.source);
    else {
      if (this.o.packs?.default !== undefined) sources.set(DEFAULT_PACK, this.o.packs.default);
      for (const [cam, src] of Object.entries(this.o.packs?.cameras ?? {})) sources.set(cam, src);
    }
    if (sources.size === 0) throw new SessionError('NO_PACK', `${artifact.file}: is a shared backbone, which runs prompt packs: name one in the device config (pack: task.epp, or packs.<camera>)`);
    const packs = new Map<string | PromptPack, PromptPack>();
    for (const src of sources.values()) {
      if (packs.has(src)) continue;
      if (typeof src !== 'string') packs.set(src, src);
      else {
        const { file } = await this.readVerified(src);
        if (file.kind !== 'pack') throw new ArtifactError('ARTIFACT_KIND', src, `is ${file.kind === 'fused' ? 'a fused artifact' : 'a shared backbone'}, not a prompt pack (.epp); fix pack/packs in the device config`);
        packs.set(src, file.pack);
      }
    }
    const first = packs.get(sources.get(DEFAULT_PACK) ?? [...sources.values()][0]!)!;
    const session = await BackboneSession.create(artifact, first, this.sessionOptions());
    try {
      const tasks = new Map<PromptPack, PackTask>();
      const slots = new Map<string, Slot>();
      for (const [k, src] of sources) {
        const pack = packs.get(src)!;
        if (!tasks.has(pack)) tasks.set(pack, session.bind(pack));
        slots.set(k, { source: src, task: tasks.get(pack)! });
      }
      return { kind: 'shared', session, slots };
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /**
   * Swaps a pack in on the running backbone. It replaces the running pack of the same name (a new
   * version of the task, on every camera that runs it); a pack of another name replaces the only
   * pack when one runs, and is PACK_AMBIGUOUS when several do.
   */
  private swapPack(pack: PromptPack, source: string | PromptPack, verification: Verification, t0: number): LoadedInfo {
    const a = this.active;
    if (a?.kind !== 'shared') {
      throw new SessionError('NOT_SHARED', `${pack.file}: a prompt pack runs on a shared-backbone artifact, but this device runs ${a ? `the fused artifact ${a.session.artifact.file}` : 'no model'}; load its backbone first`);
    }
    const task = a.session.bind(pack); // PACK_BACKBONE_MISMATCH / PACK_SHAPE_MISMATCH: nothing changes
    const named = [...a.slots].filter(([, s]) => s.task.pack.manifest.name === pack.manifest.name).map(([k]) => k);
    const running = [...new Set([...a.slots.values()].map((s) => s.task.pack.manifest.name))];
    const targets = named.length > 0 ? named : running.length === 1 ? [...a.slots.keys()] : null;
    if (targets === null) {
      throw new SessionError('PACK_AMBIGUOUS', `${pack.file}: pack ${pack.manifest.name} replaces a running pack of the same name, but this device runs ${running.join(', ')}; name the pack like the one it replaces, or assign it in the device config (packs.<camera>) and reload the backbone`);
    }
    const slots = new Map(a.slots);
    for (const k of targets) slots.set(k, { source, task });
    this.active = { ...a, slots }; // the swap: batches started from now on use the new pack
    return { session: this.current!, verification, loadMs: performance.now() - t0, pack: { task, slots: targets } };
  }

  /** Cameras deliver frames at the running model's size; a model needing another size needs a restart. */
  private checkCompatible(next: ModelArtifact): void {
    const cur = this.active?.session.input;
    const want = next.manifest.input;
    if (cur && (cur.height !== want.height || cur.width !== want.width || cur.resize !== want.resize)) {
      throw new SessionError(
        'RELOAD_INCOMPATIBLE',
        `${next.file}: takes ${want.width}x${want.height} (${want.resize}) but the cameras deliver ${cur.width}x${cur.height} (${cur.resize}) for the running model; restart the runtime to change the input size`,
      );
    }
  }

  async classify(frames: readonly Uint8Array[], topK: number, cameras?: readonly string[]): Promise<BatchResult & { session: ModelTask }> {
    const a = this.active;
    if (!a) throw new SessionError('NO_MODEL', 'no model is loaded');
    const session = a.session;
    this.inflight.set(session, (this.inflight.get(session) ?? 0) + 1);
    try {
      if (a.kind === 'fused') return { ...(await a.session.run(frames, topK)), session: a.session };
      return await this.classifyShared(a, frames, topK, cameras);
    } finally {
      const n = this.inflight.get(session)! - 1;
      if (n === 0) this.inflight.delete(session);
      else this.inflight.set(session, n);
      if (n === 0 && this.retiring.has(session)) void this.release(session);
    }
  }

  /** One run per pack in the batch (a run feeds one pack's tensors); predictions keep the frames' order. */
  private async classifyShared(a: Extract<Active, { kind: 'shared' }>, frames: readonly Uint8Array[], topK: number, cameras?: readonly string[]): Promise<BatchResult & { session: ModelTask }> {
    const tasks = frames.map((_, i) => {
      const cam = cameras?.[i];
      const slot = (cam === undefined ? undefined : a.slots.get(cam)) ?? a.slots.get(DEFAULT_PACK);
      if (!slot) throw new SessionError('NO_PACK', `camera ${cam ?? '(unnamed)'} has no prompt pack on ${a.session.artifact.file}: set packs.${cam ?? '<camera>'} or pack in the device config`);
      return slot.task;
    });
    const groups = new Map<PackTask, number[]>();
    tasks.forEach((t, i) => groups.set(t, [...(groups.get(t) ?? []), i]));
    const predictions = new Array<Prediction>(frames.length);
    let inferMs = 0;
    let startedAt = Number.POSITIVE_INFINITY;
    for (const [task, idx] of groups) {
      const r = await a.session.run(idx.map((i) => frames[i]!), topK, task);
      inferMs += r.inferMs;
      startedAt = Math.min(startedAt, r.startedAt);
      r.predictions.forEach((p, j) => (predictions[idx[j]!] = { ...p, task }));
    }
    return { predictions, inferMs, startedAt: Number.isFinite(startedAt) ? startedAt : Date.now(), session: tasks[0] ?? this.current! };
  }

  private retire(s: OrtSession): Promise<void> {
    if (!this.inflight.has(s)) return this.release(s);
    this.retiring.add(s);
    return Promise.resolve();
  }

  private release(s: OrtSession): Promise<void> {
    this.retiring.delete(s);
    return s.release().catch((e: unknown) => this.o.log?.warn({ err: String(e) }, 'model: releasing the old session failed'));
  }

  /** Releases the model (after the runs in flight); the inference worker ends with the last session. */
  async close(): Promise<void> {
    await this.loading;
    const a = this.active;
    this.active = null;
    if (a) await this.retire(a.session);
    this.worker?.off('crashed', this.onCrash).off('restarted', this.onRestart);
  }
}

async function defaultFetch(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw Object.assign(new Error(`GET ${url}: HTTP ${res.status}`), { code: 'ARTIFACT_UNREADABLE' });
  return new Uint8Array(await res.arrayBuffer());
}
