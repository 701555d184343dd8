/**
 * ORT's offline graph optimisation: the model is loaded once with `optimizedModelFilePath` at level
 * 'extended' (fusions such as FusedMatMul, BiasGelu, SkipLayerNormalization, but no
 * hardware-specific layouts, so the file stays portable across execution providers; 'all' would
 * write NCHWc nodes, docs/platform.md "Offline optimisation"). The caller keeps the result only if
 * it verifies.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { createRequire } from 'node:module';

export function ortVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('onnxruntime-node/package.json') as { version: string }).version;
}

export async function optimizeOffline(model: Uint8Array): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), 'ep-opt-'));
  try {
    const file = join(dir, 'optimized.onnx');
    const s = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'extended', optimizedModelFilePath: file, logSeverityLevel: 3 });
    await s.release();
    return new Uint8Array(readFileSync(file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
