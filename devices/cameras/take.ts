// Collects frames from a source without owning it: for tests, benchmarks and one-shot snapshots.

import type { EndInfo, Frame, FrameSource } from './frame.ts';

export class TakeTimeoutError extends Error {
  readonly code = 'E_TAKE_TIMEOUT';
  override readonly name = 'TakeTimeoutError';
}

/**
 * Resolves with the next `count` frames. Resolves early with fewer when the source ends (check the
 * length); rejects with code E_TAKE_TIMEOUT after `timeoutMs`. Does not start or stop the source.
 */
export function takeFrames(source: FrameSource, count: number, timeoutMs = 10_000): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const got: Frame[] = [];
    const done = (): void => {
      clearTimeout(timer);
      source.off('frame', onFrame);
      source.off('end', onEnd);
    };
    const onFrame = (f: Frame): void => {
      got.push(f);
      if (got.length >= count) {
        done();
        resolve(got);
      }
    };
    const onEnd = (_info: EndInfo): void => {
      done();
      resolve(got);
    };
    const timer = setTimeout(() => {
      done();
      reject(new TakeTimeoutError(`camera '${source.camera}': ${got.length} of ${count} frames after ${timeoutMs} ms (state ${source.state})`));
    }, timeoutMs);
    source.on('frame', onFrame);
    source.on('end', onEnd);
  });
}
