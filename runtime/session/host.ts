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
//
// A deployment (runtime/deploy/) splits a load in two: prepare() reads, verifies and opens (or binds)
// the candidate without using it, so it can run beside the current model; commit() is the swap, and
// can keep what it replaced ready to swap back (an instant rollback, no reload).

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
import { DEFAULT_PACK, defaultTask, packTargets, PreparedLoad, type Active, type Prepared, type PreparedState, type Shared, type Slot } from './slots.ts';

export { DEFAULT_PACK, type Prepared } from './slots.ts';

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
    return a.kind === 'fused' ? a.session : defaultTask(a);
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
    return this.serial(source, async () => {
      const p = await this.doPrepare(source);
      try {
        return this.doCommit(p, false).info;
      } catch (e) {
        await this.doDiscard(p);
        throw e;
      }
    });
  }

  /**
   * Reads, verifies and opens `source` (a model: its own session, warmed up; a pack: bound to the
   * running backbone) without putting it in use. Refused like load() (the error is also emitted).
   */
  prepare(source: string | Uint8Array): Promise<Prepared> {
    return this.serial(source, () => this.doPrepare(source));
  }

  /**
   * Puts a prepared model or pack in use between two batches. With `keepPrevious` what it replaced
   * is returned ready to commit back (nothing is released until it is discarded).
   */
  commit(p: Prepared, opts: { keepPrevious?: boolean } = {}): Promise<{ info: LoadedInfo; previous: Prepared | null }> {
    return this.serial('(prepared)', async () => this.doCommit(p as PreparedLoad, opts.keepPrevious === true));
  }

  /** Releases a prepared model that was not (or is no longer) in use. */
  discard(p: Prepared): Promise<void> {
    const next = this.loading.then(() => this.doDiscard(p as PreparedLoad));
    this.loading = next.catch(() => {});
    return next;
  }

  /** What runs now, with the files' bytes: the model and the packs by name (for a deployment's rollback copy). */
  files(): { model: { sha256: string; bytes: Uint8Array; manifest: Prepared['manifest'] } | null; packs: Map<string, { sha256: string; bytes: Uint8Array; manifest: Prepared['manifest'] }> } {
    const a = this.active;
    const packs = new Map<string, { sha256: string; bytes: Uint8Array; manifest: Prepared['manifest'] }>();
    if (!a) return { model: null, packs };
    if (a.kind === 'shared') for (const s of a.slots.values()) packs.set(s.task.pack.manifest.name, { sha256: s.task.pack.sha256, bytes: s.bytes, manifest: s.task.pack.manifest });
    return { model: { sha256: a.session.artifact.sha256, bytes: a.bytes, manifest: a.session.artifact.manifest }, packs };
  }

  private serial<T>(name: string | Uint8Array, run: () => Promise<T>): Promise<T> {
    const next = this.loading.then(run).catch((e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      this.emit('rejected', err, typeof name === 'string' ? name : '(bytes)');
      throw err;
    });
    this.loading = next.catch(() => {});
    return next;
  }

  private async doPrepare(source: string | Uint8Array): Promise<PreparedLoad> {
    const { file, verification, bytes } = await this.readVerified(source);
    if (file.kind === 'pack') {
      const a = this.active;
      if (a?.kind !== 'shared') {
        throw new SessionError('NOT_SHARED', `${file.pack.file}: a prompt pack runs on a shared-backbone artifact, but this device runs ${a ? `the fused artifact ${a.session.artifact.file}` : 'no model'}; load its backbone first`);
      }
      const task = a.session.bind(file.pack); // PACK_BACKBONE_MISMATCH / PACK_SHAPE_MISMATCH: nothing changes
      packTargets(a, file.pack); // PACK_AMBIGUOUS
      const state: PreparedState = { kind: 'pack', pack: file.pack, source: typeof source === 'string' ? source : file.pack, task };
      return new PreparedLoad(state, file.pack.sha256, bytes, file.pack.manifest, task, verification, () => this.active);
    }
    this.checkCompatible(file.artifact);
    const next: Active = file.kind === 'fused' ? { kind: 'fused', session: await ModelSession.create(file.artifact, this.sessionOptions()), bytes } : { ...(await this.openShared(file.artifact)), bytes };
    const task = next.kind === 'fused' ? next.session : defaultTask(next);
    return new PreparedLoad({ kind: 'model', next }, file.artifact.sha256, bytes, file.artifact.manifest, task, verification, () => this.active);
  }

  private doCommit(p: PreparedLoad, keepPrevious: boolean): { info: LoadedInfo; previous: Prepared | null } {
    if (p.released) throw new SessionError('SESSION_RELEASED', 'a discarded model cannot be put in use; prepare it again');
    const t0 = performance.now();
    const a = this.active;
    let previous: PreparedLoad | null = null;
    let pack: LoadedInfo['pack'];
    if (p.state.kind === 'model') {
      if (a && keepPrevious) previous = new PreparedLoad({ kind: 'model', next: a }, a.session.artifact.sha256, a.bytes, a.session.artifact.manifest, this.current!, p.verification, () => this.active);
      this.active = p.state.next; // the swap: the next classify() uses the new session
      if (a && !keepPrevious && a.session !== p.state.next.session) void this.retire(a.session);
    } else {
      if (a?.kind !== 'shared') throw new SessionError('NOT_SHARED', 'the backbone a prepared pack was bound to is no longer running; prepare it again');
      const slots = new Map(a.slots);
      let targets: string[];
      if (p.state.kind === 'slots') {
        targets = [...p.state.slots.keys()];
        for (const [k, s] of p.state.slots) slots.set(k, s.task.session === a.session ? s : { ...s, task: a.session.bind(s.task.pack) });
      } else {
        const task = p.state.task.session === a.session ? p.state.task : a.session.bind(p.state.pack); // the backbone was reloaded since
        targets = packTargets(a, p.state.pack);
        for (const k of targets) slots.set(k, { source: p.state.source, task, bytes: p.bytes });
      }
      if (keepPrevious) {
        const old = new Map(targets.filter((k) => a.slots.has(k)).map((k) => [k, a.slots.get(k)!]));
        const first = [...old.values()][0];
        if (first) previous = new PreparedLoad({ kind: 'slots', slots: old, task: first.task }, first.task.pack.sha256, first.bytes, first.task.pack.manifest, first.task, p.verification, () => this.active);
      }
      this.active = { ...a, slots }; // the swap: batches started from now on use the new pack
      const task = slots.get(targets[0]!)!.task;
      pack = { task, slots: targets };
    }
    const info: LoadedInfo = { session: this.current!, verification: p.verification, loadMs: performance.now() - t0, ...(pack && { pack }) };
    this.emit('loaded', info);
    return { info, previous };
  }

  private async doDiscard(p: PreparedLoad): Promise<void> {
    if (p.released || p.state.kind !== 'model') return;
    const s = p.state.next.session;
    if (this.active?.session === s) return; // in use
    p.released = true;
    await this.retire(s);
  }



  private sessionOptions() {
    return {
      profile: this.o.profile,
      ...(this.o.warmupRuns !== undefined && { warmupRuns: this.o.warmupRuns }),
      ...(this.o.maxBatch !== undefined && { maxBatch: this.o.maxBatch }),
      ...(this.o.log && { log: this.o.log }),
    };
  }

  private async readVerified(source: string | Uint8Array): Promise<{ file: SignedFile; verification: Verification; bytes: Uint8Array }> {
    let bytes: Uint8Array;
    let name = '(bytes)';
    if (typeof source !== 'string') bytes = source;
    else if (/^https?:\/\//i.test(source)) bytes = await (this.o.fetchBytes ?? defaultFetch)((name = source));
    else bytes = await readFileBytes((name = source.startsWith('file://') ? new URL(source).pathname : source));
    const file = readSignedFile(bytes, name);
    const verification = verifyArtifact(file.kind === 'pack' ? file.pack : file.artifact, this.o.trustedKeys, { allowUnsigned: this.o.allowUnsigned ?? false });
    if (!verification.verified) this.o.log?.warn({ file: name }, `model: loading an UNSIGNED ${file.kind === 'pack' ? 'prompt pack' : 'artifact'} (allowUnsigned is set)`);
    return { file, verification, bytes };
  }

  /** The backbone with every pack it will run (the running ones on a reload, else the configured ones), bound. */
  private async openShared(artifact: Extract<SignedFile, { kind: 'backbone' }>['artifact']): Promise<Omit<Shared, 'bytes'>> {
    const a = this.active;
    const sources = new Map<string, string | PromptPack>();
    const bytesOf = new Map<PromptPack, Uint8Array>();
    if (a?.kind === 'shared') for (const [k, s] of a.slots) sources.set(k, s.source);
    else {
      if (this.o.packs?.default !== undefined) sources.set(DEFAULT_PACK, this.o.packs.default);
      for (const [cam, src] of Object.entries(this.o.packs?.cameras ?? {})) sources.set(cam, src);
    }
    if (sources.size === 0) throw new SessionError('NO_PACK', `${artifact.file}: is a shared backbone, which runs prompt packs: name one in the device config (pack: task.epp, or packs.<camera>)`);
    const packs = new Map<string | PromptPack, PromptPack>();
    if (a?.kind === 'shared') for (const s of a.slots.values()) bytesOf.set(s.task.pack, s.bytes);
    for (const src of sources.values()) {
      if (packs.has(src)) continue;
      if (typeof src !== 'string') packs.set(src, src);
      else {
        const { file, bytes } = await this.readVerified(src);
        if (file.kind !== 'pack') throw new ArtifactError('ARTIFACT_KIND', src, `is ${file.kind === 'fused' ? 'a fused artifact' : 'a shared backbone'}, not a prompt pack (.epp); fix pack/packs in the device config`);
        packs.set(src, file.pack);
        bytesOf.set(file.pack, bytes);
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
        slots.set(k, { source: src, task: tasks.get(pack)!, bytes: bytesOf.get(pack) ?? new Uint8Array(0) });
      }
      return { kind: 'shared', session, slots };
    } catch (e) {
      await session.release();
      throw e;
    }
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
  private async classifyShared(a: Shared, frames: readonly Uint8Array[], topK: number, cameras?: readonly string[]): Promise<BatchResult & { session: ModelTask }> {
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
  // A network failure is a refusal with a code like any unreadable file (it was HANDLER_FAILED "fetch failed").
  const unreadable = (why: string, cause?: unknown) => Object.assign(new Error(`GET ${url}: ${why}; check the URL and the network`, { cause }), { code: 'ARTIFACT_UNREADABLE' });
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    const c = (e as Error & { cause?: { code?: string; message?: string } }).cause;
    throw unreadable(c?.code ?? c?.message ?? (e as Error).message, e);
  }
  if (!res.ok) throw unreadable(`HTTP ${res.status}`);
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw unreadable(`the body could not be read (${(e as Error).message})`, e);
  }
}
