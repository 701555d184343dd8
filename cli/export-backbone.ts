/**
 * `edgeprompt export-backbone`: a timm checkpoint to ONNX through the model definition. The head
 * follows the checkpoint unless --num-classes says otherwise, and the command says which it did.
 */
import { writeFileSync } from 'node:fs';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { adaptVitStateDict } from '../compiler/backbones/vit-weights.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { exportVitBackbone } from '../compiler/export/backbone.ts';
import { initTf, describeBackend } from '../compiler/ops/tf-backend.ts';
import { verifyBackboneExport } from '../compiler/export/verify-backbone.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { fmtShape } from '../compiler/ops/host-tensor.ts';

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

/** The class count to export and the line that says why: the checkpoint's own head by default. */
export function chooseHead(head: readonly number[] | undefined, flag: number | undefined): { numClasses: number; line: string } {
  const rows = head?.length === 2 ? head[0]! : undefined;
  if (flag === undefined) {
    return rows === undefined
      ? { numClasses: 0, line: 'head: the checkpoint has none, so the model outputs features (pass --num-classes only with a checkpoint that has a head)' }
      : { numClasses: rows, line: `head: kept the checkpoint's head (${rows} classes, head.weight ${fmtShape(head!)})` };
  }
  if (flag === 0) return { numClasses: 0, line: `head: dropped (--num-classes 0), the model outputs features${rows === undefined ? '' : ` (the checkpoint's head had ${rows} classes)`}` };
  if (rows === flag) return { numClasses: flag, line: `head: kept the checkpoint's head (${rows} classes, as --num-classes asked)` };
  throw new CompilerError(
    'FLAG_INVALID',
    `--num-classes ${flag}: ${rows === undefined ? 'the checkpoint has no head' : `the checkpoint's head has ${rows} classes (head.weight ${fmtShape(head!)})`}; export cannot invent a trained head: leave --num-classes out to keep the checkpoint's, or pass 0 for features only`,
  );
}

export async function exportBackboneCommand(f: ExportBackboneFlags): Promise<void> {
  const { tensors, metadata } = readSafetensors(f.weights);
  const head = chooseHead(tensors.get('head.weight')?.shape, f.numClasses);
  const cfg = vitConfig(f.arch, { ...(f.imgSize !== undefined ? { imgSize: f.imgSize } : {}), numClasses: head.numClasses });
  const info = await initTf();
  const loaded = adaptVitStateDict(tensors, cfg, f.weights, metadata);
  for (const n of loaded.notes) console.log(`note: ${n}`);
  console.log(head.line);
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
