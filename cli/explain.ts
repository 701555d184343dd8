/**
 * `edgeprompt explain -c config.yaml --images DIR [--out DIR] [--checkpoint FILE]`: attention
 * rollout and Grad-CAM maps of the trained task with and without its prompt, in one HTML page.
 * No trained tensors → an error naming the file (exit 2).
 */
import { dirname, join, resolve } from 'node:path';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { describeBackend, initTf } from '../compiler/ops/tf-backend.ts';
import { defaultCheckpoint, loadExplainModel } from '../compiler/explain/model.ts';
import { explain } from '../compiler/explain/run.ts';

export interface ExplainFlags {
  config: string;
  images: string;
  out?: string;
  checkpoint?: string;
  size: number;
  set: string[];
}

export async function explainCommand(f: ExplainFlags): Promise<void> {
  const config = loadCompileConfig(f.config, f.set);
  const model = loadExplainModel(config, f.config, f.checkpoint);
  console.log(describeBackend(await initTf(config.backend)));
  const outDir = f.out ? resolve(f.out) : join(dirname(defaultCheckpoint(config, f.config)), 'explain');
  console.log(`${model.name}: ${model.method.name} on ${model.cfg.name}, trained tensors ${model.checkpoint}`);
  const r = await explain(model, { imagesDir: f.images, outDir, size: f.size, log: (l) => console.log(l) });
  console.log(`${r.images.length} image(s) explained: ${join(outDir, 'explain.html')} (numbers in explain.json)`);
}
