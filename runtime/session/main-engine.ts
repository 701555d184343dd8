// The main engine: sessions run in the calling thread (profile `threads.inference: main`), for
// debugging and as the reference the worker engine must equal (engine.ts says why the worker is the default).

import * as ort from 'onnxruntime-node';
import type { Engine } from './engine.ts';

/** In the calling thread: ORT's own session. */
export const mainEngine: Engine = {
  kind: 'main',
  zeroCopyFrames: true,
  async open(model, options) {
    const s = await ort.InferenceSession.create(model, options);
    return {
      inputNames: s.inputNames,
      outputNames: s.outputNames,
      inputMetadata: s.inputMetadata,
      outputMetadata: s.outputMetadata,
      run: (feeds, fetches) => s.run(feeds, [...fetches]),
      release: () => s.release(),
    };
  },
  frameBuffer: (bytes) => new Uint8Array(bytes),
};
