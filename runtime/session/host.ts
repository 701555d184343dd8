// The model host: holds the session in use and swaps it on reload. A reload reads, verifies,
// creates and warms the new session completely before the swap, so the pipeline never waits and
// never sees a half-loaded model; any failure (unreadable, tampered, wrong key, no EP, wrong input
// size) leaves the current model running and is reported. The old session is released once the
// runs already using it have finished.

import { EventEmitter } from 'node:events';
import { readArtifact, readArtifactFile, verifyArtifact, type Artifact, type Verification } from '../artifact/read.ts';
import type { TrustedKey } from '../artifact/keys.ts';
import type { DeviceProfile } from '../config/profile.ts';
import type { Log } from '../mqtt/log.ts';
import { SessionError } from './errors.ts';
import { ModelSession, type BatchResult } from './session.ts';

export interface HostOptions {
  profile: DeviceProfile;
  trustedKeys: readonly TrustedKey[];
  allowUnsigned?: boolean;
  warmupRuns?: number;
  maxBatch?: number;
  log?: Log;
  /** Fetches an http(s) artifact; default: global fetch. */
  fetchBytes?: (url: string) => Promise<Uint8Array>;
}

export interface LoadedInfo {
  session: ModelSession;
  verification: Verification;
  loadMs: number;
}

export type HostEvents = {
  loaded: [info: LoadedInfo];
  rejected: [error: Error & { code?: string }, source: string];
};

/** What the pipeline needs from a model: the current one, and a batched run with its manifest. */
export interface Classifier {
  readonly current: ModelSession | null;
  classify(frames: readonly Uint8Array[], topK: number): Promise<BatchResult & { session: ModelSession }>;
}

export class ModelHost extends EventEmitter<HostEvents> implements Classifier {
  private active: ModelSession | null = null;
  private readonly inflight = new Map<ModelSession, number>();
  private readonly retiring = new Set<ModelSession>();
  private loading: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: HostOptions) {
    super();
  }

  get current(): ModelSession | null {
    return this.active;
  }

  /**
   * Loads `source` (a path, an http(s) URL, or bytes) and makes it current. On failure the current
   * model stays and the error is thrown (and emitted as `rejected`). Loads run one at a time.
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
      const artifact = await this.read(source);
      const verification = verifyArtifact(artifact, this.o.trustedKeys, { allowUnsigned: this.o.allowUnsigned ?? false });
      if (!verification.verified) this.o.log?.warn({ file: artifact.file }, 'model: loading an UNSIGNED artifact (allowUnsigned is set)');
      this.checkCompatible(artifact);
      const session = await ModelSession.create(artifact, {
        profile: this.o.profile,
        ...(this.o.warmupRuns !== undefined && { warmupRuns: this.o.warmupRuns }),
        ...(this.o.maxBatch !== undefined && { maxBatch: this.o.maxBatch }),
        ...(this.o.log && { log: this.o.log }),
      });
      const old = this.active;
      this.active = session; // the swap: the next classify() uses the new session
      if (old) this.retire(old);
      const info = { session, verification, loadMs: performance.now() - t0 };
      this.emit('loaded', info);
      return info;
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.emit('rejected', err, name);
      throw err;
    }
  }

  private async read(source: string | Uint8Array): Promise<Artifact> {
    if (typeof source !== 'string') return readArtifact(source);
    if (/^https?:\/\//i.test(source)) {
      const bytes = await (this.o.fetchBytes ?? defaultFetch)(source);
      return readArtifact(bytes, source);
    }
    return readArtifactFile(source.startsWith('file://') ? new URL(source).pathname : source);
  }

  /** Cameras deliver frames at the running model's size; a model needing another size needs a restart. */
  private checkCompatible(next: Artifact): void {
    const cur = this.active?.manifest.input;
    const want = next.manifest.input;
    if (cur && (cur.height !== want.height || cur.width !== want.width || cur.resize !== want.resize)) {
      throw new SessionError(
        'RELOAD_INCOMPATIBLE',
        `${next.file}: takes ${want.width}x${want.height} (${want.resize}) but the cameras deliver ${cur.width}x${cur.height} (${cur.resize}) for the running model; restart the runtime to change the input size`,
      );
    }
  }

  async classify(frames: readonly Uint8Array[], topK: number): Promise<BatchResult & { session: ModelSession }> {
    const session = this.active;
    if (!session) throw new SessionError('NO_MODEL', 'no model is loaded');
    this.inflight.set(session, (this.inflight.get(session) ?? 0) + 1);
    try {
      return { ...(await session.run(frames, topK)), session };
    } finally {
      const n = this.inflight.get(session)! - 1;
      if (n === 0) this.inflight.delete(session);
      else this.inflight.set(session, n);
      if (n === 0 && this.retiring.has(session)) this.release(session);
    }
  }

  private retire(s: ModelSession): void {
    if (this.inflight.has(s)) this.retiring.add(s);
    else this.release(s);
  }

  private release(s: ModelSession): void {
    this.retiring.delete(s);
    s.release().catch((e: unknown) => this.o.log?.warn({ err: String(e) }, 'model: releasing the old session failed'));
  }

  async close(): Promise<void> {
    await this.loading;
    const s = this.active;
    this.active = null;
    if (s) this.retire(s);
  }
}

async function defaultFetch(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw Object.assign(new Error(`GET ${url}: HTTP ${res.status}`), { code: 'ARTIFACT_UNREADABLE' });
  return new Uint8Array(await res.arrayBuffer());
}
