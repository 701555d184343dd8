import { writeFileSync } from 'node:fs';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { loadVitWeights } from '../compiler/backbones/vit-weights.ts';
import { exportVitBackbone } from '../compiler/export/backbone.ts';
import { initTf, describeBackend } from '../compiler/ops/tf-backend.ts';
import { verifyBackboneExport } from '../compiler/export/verify-backbone.ts';

export interface ExportBackboneFlags {
  weights: string;
  arch: string;
  out: string;
  imgSize?: number;
  numClasses?: number;
  fold: boolean;
  fullLastBlock?: boolean;
  verify?: boolean;
}

export async function exportBackboneCommand(f: ExportBackboneFlags): Promise<void> {
  const cfg = vitConfig(f.arch, { ...(f.imgSize !== undefined ? { imgSize: f.imgSize } : {}), ...(f.numClasses !== undefined ? { numClasses: f.numClasses } : {}) });
  const info = await initTf();
  const loaded = loadVitWeights(f.weights, cfg);
  for (const n of loaded.notes) console.log(`note: ${n}`);
  if (loaded.headDropped) cfg.numClasses = 0;
  const t0 = performance.now();
  const bytes = exportVitBackbone(cfg, loaded.stateDict, { fold: f.fold, clsOnlyLastBlock: !f.fullLastBlock });
  writeFileSync(f.out, bytes);
  console.log(`wrote ${f.out}: ${cfg.name} ${cfg.imgSize}px, ${(bytes.byteLength / 1e6).toFixed(2)} MB, ${(performance.now() - t0).toFixed(0)} ms`);
  if (f.verify) {
    console.log(describeBackend(info));
    const r = await verifyBackboneExport(cfg, loaded.stateDict, bytes);
    console.log(`verify: max |logit(onnxruntime) − logit(tfjs)| = ${r.maxAbsDiff.toExponential(2)} over ${r.images} random images, top-1 agreement ${(100 * r.top1Agreement).toFixed(1)} %`);
  }
}
