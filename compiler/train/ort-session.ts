/**
 * onnxruntime sessions for the ort training engine: execution provider choice with fallback
 * (docs/platform.md "Execution providers": asking for a provider whose libraries are missing throws
 * instead of falling back, so CUDA is tried alone and CPU retried on failure, and every failure is
 * reported), sequential execution with one intra-op thread per core.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';

export type OrtProvider = 'auto' | 'cpu' | 'cuda';

export interface OrtSessionOptions {
  ep?: OrtProvider;
  threads?: number;
  optimization?: 'all' | 'extended' | 'basic' | 'disabled';
}

export interface OpenedSession {
  session: ort.InferenceSession;
  ep: 'cpu' | 'cuda';
  threads: number;
  /** Why a preferred provider was not used. */
  skipped: string[];
}

/** Where onnxruntime-node keeps its native libraries (CUDA provider .so files land there when installed). */
function bindingDir(): string | null {
  try {
    const index = createRequire(import.meta.url).resolve('onnxruntime-node');
    return join(dirname(index), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return null;
  }
}

/** Whether CUDA is worth trying, or why not. */
export function cudaAvailability(): { ok: boolean; why: string } {
  const listed = ort.listSupportedBackends?.().some((b) => b.name === 'cuda') ?? false;
  if (!listed) return { ok: false, why: 'cuda: this onnxruntime-node build has no CUDA provider' };
  const dir = bindingDir();
  if (!dir || !existsSync(join(dir, 'libonnxruntime_providers_cuda.so'))) {
    return { ok: false, why: 'cuda: libonnxruntime_providers_cuda.so is not installed (onnxruntime-node was installed with ONNXRUNTIME_NODE_INSTALL=skip or without CUDA 12)' };
  }
  return { ok: true, why: '' };
}

export const ortVersion = (): string => ort.env.versions?.node ?? ort.env.versions?.common ?? '?';

export async function openSession(bytes: Uint8Array, o: OrtSessionOptions = {}): Promise<OpenedSession> {
  const threads = o.threads ?? availableParallelism();
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential', // 'parallel' is slower for ViTs (docs/platform.md "Session options")
    graphOptimizationLevel: o.optimization ?? 'all',
    logSeverityLevel: 3,
  };
  const skipped: string[] = [];
  const want = o.ep ?? 'auto';
  if (want !== 'cpu') {
    const cuda = cudaAvailability();
    if (cuda.ok) {
      try {
        return { session: await ort.InferenceSession.create(bytes, { ...base, executionProviders: ['cuda'] }), ep: 'cuda', threads, skipped };
      } catch (e) {
        skipped.push(`cuda: ${(e as Error).message.split('\n')[0]}`);
      }
    } else {
      skipped.push(cuda.why);
    }
  }
  return { session: await ort.InferenceSession.create(bytes, { ...base, executionProviders: ['cpu'] }), ep: 'cpu', threads, skipped };
}
