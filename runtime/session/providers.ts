// Opening an onnxruntime session with the device profile's execution providers in order.
// onnxruntime-node throws when an EP's libraries are missing (it does not fall back by itself,
// docs/platform.md "Execution providers"), so each provider is tried in turn — with the ones
// after it as ORT's per-node fallbacks — and warmed up; every failure is kept and reported, and
// the first provider that works is the one in use. If none works, EP_ALL_FAILED lists them all
// (docs/style.md "Fallbacks").

import * as ort from 'onnxruntime-node';
import { ArtifactError } from '../artifact/errors.ts';
import type { DeviceProfile, ExecutionProvider } from '../config/profile.ts';
import type { Log } from '../log.ts';
import type { Engine, EngineSession } from './engine.ts';
import { SessionError, type EpAttempt } from './errors.ts';
import { mainEngine } from './main-engine.ts';
import { workerEngine } from './worker-engine.ts';

export interface SessionOptions {
  profile: DeviceProfile;
  /** Overrides profile.warmupRuns. */
  warmupRuns?: number;
  /** Overrides profile.maxBatch. */
  maxBatch?: number;
  log?: Log;
}

function providerOption(ep: ExecutionProvider): ort.InferenceSession.ExecutionProviderConfig {
  return ep.name === 'cpu' ? 'cpu' : { name: ep.name, deviceId: ep.deviceId };
}

/** The Node binding passes only deviceId to TensorRT; its other settings are read from the environment. */
function tensorrtEnv(ep: ExecutionProvider): void {
  if (ep.name !== 'tensorrt') return;
  const set = (k: string, v: string) => {
    if (process.env[k] === undefined) process.env[k] = v; // an operator's explicit setting wins
  };
  set('ORT_TENSORRT_FP16_ENABLE', ep.fp16 ? '1' : '0');
  set('ORT_TENSORRT_INT8_ENABLE', ep.int8 ? '1' : '0');
  if (ep.engineCacheDir !== undefined) {
    set('ORT_TENSORRT_ENGINE_CACHE_ENABLE', '1');
    set('ORT_TENSORRT_CACHE_PATH', ep.engineCacheDir);
  }
  if (ep.workspaceMiB !== undefined) set('ORT_TENSORRT_MAX_WORKSPACE_SIZE', String(ep.workspaceMiB * 1024 * 1024));
}

function sessionOptions(profile: DeviceProfile, eps: readonly ExecutionProvider[]): ort.InferenceSession.SessionOptions {
  const spin = profile.threads.spinning ? '1' : '0';
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: eps.map(providerOption),
    graphOptimizationLevel: profile.graphOptimizationLevel,
    executionMode: 'sequential', // 'parallel' is slower for ViTs (docs/platform.md "Session options")
    interOpNumThreads: profile.threads.interOp,
    logSeverityLevel: 3, // ORT's own warnings (unused initializers) are noise; failures reach us as errors
    // The binding flattens `extra` into session config entries: idle threads stop spinning.
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
  if (profile.threads.intraOp > 0) o.intraOpNumThreads = profile.threads.intraOp;
  return o;
}

/** The engine a profile asks for (`threads.inference`, default worker). */
function engineFor(profile: DeviceProfile): Engine {
  return profile.threads.inference === 'main' ? mainEngine : workerEngine();
}

export const errText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 500);

/**
 * Tries each provider of the profile: creates the ORT session (in the profile's engine: the
 * inference worker or this thread) and hands it, with the engine, to `make` (which checks
 * the graph against the manifest, wraps and warms it up). The model's own faults (graph vs
 * manifest, a pack that does not fit) are thrown at once: another provider would not fix them.
 */
export async function openWithFallback<S>(artifact: { file: string; model: Uint8Array }, opts: SessionOptions, make: (session: EngineSession, ep: string, attempts: EpAttempt[], engine: Engine) => Promise<S>): Promise<S> {
  const eps = opts.profile.executionProviders;
  const engine = engineFor(opts.profile);
  const attempts: EpAttempt[] = [];
  for (let i = 0; i < eps.length; i++) {
    const ep = eps[i]!;
    const t0 = performance.now();
    let session: EngineSession | null = null;
    try {
      tensorrtEnv(ep);
      session = await engine.open(artifact.model, sessionOptions(opts.profile, eps.slice(i)), artifact.file);
      const s = await make(session, ep.name, attempts, engine);
      attempts.push({ ep: ep.name, ok: true, ms: performance.now() - t0 });
      for (const a of attempts.filter((x) => !x.ok)) opts.log?.warn({ ep: a.ep, err: a.error }, 'session: execution provider unavailable, fell back');
      return s;
    } catch (e) {
      await session?.release().catch(() => {});
      if ((e instanceof SessionError && e.code === 'SESSION_IO_MISMATCH') || e instanceof ArtifactError) throw e; // the model is wrong, not the provider
      attempts.push({ ep: ep.name, ok: false, ms: performance.now() - t0, error: errText(e) });
    }
  }
  throw new SessionError('EP_ALL_FAILED', `${artifact.file}: no execution provider could run the model: ${attempts.map((a) => `${a.ep}: ${a.error}`).join('; ')}`, attempts);
}
