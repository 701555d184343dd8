/**
 * `engine: ort | tfjs | auto` → an Engine, saying which runs and why. `auto` takes ort when its
 * training graph builds and a session opens (onnxruntime's multithreaded kernels train many
 * times faster than tfjs-wasm, see docs/bench/train-throughput.md); otherwise tfjs, with the
 * reason ort did not build.
 */
import type { Engine } from './engine.ts';

export type EngineKind = 'tfjs' | 'ort' | 'auto';

export interface EngineFactories {
  tfjs: () => Engine;
  ort: () => Promise<Engine>;
  log: (line: string) => void;
}

function describe(e: Engine, why: string): string {
  const notes = e.notes?.length ? `\n  ${e.notes.join('\n  ')}` : '';
  return `engine ${e.name} (${e.backend}): ${why}${notes}`;
}

export async function chooseEngine(kind: EngineKind, f: EngineFactories): Promise<Engine> {
  if (kind === 'tfjs') {
    const e = f.tfjs();
    f.log(describe(e, 'set in the config'));
    return e;
  }
  if (kind === 'ort') {
    const e = await f.ort();
    f.log(describe(e, 'set in the config'));
    return e;
  }
  try {
    const e = await f.ort();
    f.log(describe(e, 'auto picks ort: whole training steps run in onnxruntime'));
    return e;
  } catch (err) {
    const e = f.tfjs();
    f.log(describe(e, `auto fell back to tfjs because the ort engine did not build: ${(err as Error).message}`));
    return e;
  }
}
