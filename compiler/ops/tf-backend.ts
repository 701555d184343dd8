/**
 * Choosing the tfjs backend: tfjs-node-gpu (a CUDA workstation), tfjs-node (native CPU),
 * else WebAssembly. The native packages are optional; each failure is kept so the log says
 * why a faster backend was not used (docs/style.md rule 7: report every failure).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export type TfBackendPreference = 'auto' | 'gpu' | 'node' | 'wasm' | 'cpu';

export interface TfBackendInfo {
  /** tfjs backend name: 'tensorflow' (native, GPU or CPU), 'wasm' or 'cpu'. */
  backend: string;
  /** The package that provides it. */
  package: string;
  /** Why each preferred candidate before it was not used. */
  skipped: string[];
}

let current: TfBackendInfo | null = null;

async function tryNative(pkg: string): Promise<string | null> {
  try {
    await import(pkg);
    if (!(await tf.setBackend('tensorflow'))) return `${pkg}: loaded but the 'tensorflow' backend did not initialise`;
    return null;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!;
    return `${pkg}: ${(e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' ? 'not installed' : msg}`;
  }
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * Initialise tfjs once per process and say which backend runs. Calls are serialised: two
 * concurrent first calls (tests running side by side) would otherwise race on tf.setBackend
 * and one would fold constants on a backend being replaced.
 */
export function initTf(prefer: TfBackendPreference = 'auto'): Promise<TfBackendInfo> {
  const next = queue.then(() => initTfNow(prefer));
  queue = next.catch(() => undefined);
  return next;
}

async function initTfNow(prefer: TfBackendPreference): Promise<TfBackendInfo> {
  if (current && (prefer === 'auto' || current.package.includes(prefer) || current.backend === prefer)) return current;
  const skipped: string[] = [];
  const natives = prefer === 'gpu' ? ['@tensorflow/tfjs-node-gpu'] : prefer === 'node' ? ['@tensorflow/tfjs-node'] : prefer === 'auto' ? ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] : [];
  for (const pkg of natives) {
    const why = await tryNative(pkg);
    if (!why) return (current = { backend: 'tensorflow', package: pkg, skipped });
    skipped.push(why);
  }
  if (prefer !== 'cpu' && (await tf.setBackend('wasm'))) {
    await tf.ready();
    return (current = { backend: 'wasm', package: '@tensorflow/tfjs-backend-wasm', skipped });
  }
  if (prefer !== 'cpu') skipped.push('@tensorflow/tfjs-backend-wasm: did not initialise');
  await tf.setBackend('cpu');
  await tf.ready();
  return (current = { backend: 'cpu', package: '@tensorflow/tfjs-backend-cpu', skipped });
}

export function describeBackend(info: TfBackendInfo): string {
  const why = info.skipped.length ? ` (skipped: ${info.skipped.join('; ')})` : '';
  return `tfjs backend: ${info.backend} via ${info.package}${why}`;
}
