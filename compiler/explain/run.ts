/**
 * `explain` end to end: images from a folder → both model forms traced → overlays → one HTML page
 * (`explain.html`) and the numbers behind it (`explain.json`) in the output folder.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gridOf } from '../backbones/vit-variants.ts';
import { decodeImage, listImages } from '../data/image-folder.ts';
import { preprocessFor, toBatch } from '../data/transforms.ts';
import { CompilerError } from '../ops/errors.ts';
import type { ExplainModel } from './model.ts';
import { Tracer, type ImageTrace, type Variant } from './trace.ts';
import { byMax, imagePng, overlayPng } from './overlay.ts';
import { renderExplainReport, type ReportImage } from './report.ts';

export interface ExplainOptions {
  imagesDir: string;
  outDir: string;
  /** Side of each displayed image in pixels. */
  size: number;
  batch?: number;
  log?: (line: string) => void;
}

export interface VariantResult {
  predicted: string;
  score: number;
  probs: number[];
  rollout: { patches: number[]; cls: number; prompt: number };
  gradcam: number[];
}

export interface ExplainResult {
  html: string;
  json: string;
  images: { file: string; prompted: VariantResult; bare: VariantResult }[];
}

/** Image files under dir (recursively, sorted), or a clear error naming the folder. */
async function listInputImages(dir: string): Promise<string[]> {
  let st;
  try {
    st = await stat(dir);
  } catch {
    throw new CompilerError('FILE_NOT_FOUND', `--images ${dir}: no such folder; give a folder of .jpg/.jpeg/.png/.webp images`);
  }
  if (!st.isDirectory()) throw new CompilerError('FLAG_INVALID', `--images ${dir}: is a file, expected a folder of images`);
  const files = await listImages(dir);
  if (files.length === 0) throw new CompilerError('FLAG_INVALID', `--images ${dir}: no .jpg/.jpeg/.png/.webp images in it (or its sub-folders)`);
  return files;
}

export async function explain(model: ExplainModel, o: ExplainOptions): Promise<ExplainResult> {
  const { cfg } = model;
  if (!Number.isInteger(o.size) || o.size < 16) throw new CompilerError('FLAG_INVALID', `--size ${o.size}: expected an integer of at least 16 (pixels per displayed image)`);
  const files = await listInputImages(o.imagesDir);
  const S = cfg.imgSize;
  const g = gridOf(cfg);
  // The training/runtime contract: stretch to S×S (compile.ts writes resize 'stretch' into the manifest).
  const pre = preprocessFor(cfg, 'stretch');
  const tracers: Record<Variant, Tracer> = { prompted: new Tracer(model, 'prompted'), bare: new Tracer(model, 'bare') };
  const labels: Record<Variant, string> = { prompted: `with prompt (${model.method.name})`, bare: 'without prompt (frozen backbone, same head)' };
  const report: ReportImage[] = [];
  const results: ExplainResult['images'] = [];
  const batch = o.batch ?? 16;
  try {
    for (let start = 0; start < files.length; start += batch) {
      const chunk = files.slice(start, start + batch);
      const samples = await Promise.all(
        chunk.map(async (file) => {
          try {
            return { image: await decodeImage(file, S, 'stretch'), label: 0, source: file };
          } catch (e) {
            throw new CompilerError('BAD_FILE', `${file}: not a readable image (${(e as Error).message.split('\n')[0]}); fix or remove it`);
          }
        }),
      );
      const { x } = toBatch(samples, pre);
      const traced = { prompted: tracers.prompted.trace(x, chunk.length), bare: tracers.bare.trace(x, chunk.length) };
      for (const [b, file] of chunk.entries()) {
        const name = relative(o.imagesDir, file);
        const rows = [];
        const entry: Partial<Record<Variant, VariantResult>> = {};
        for (const v of ['prompted', 'bare'] as const) {
          const t: ImageTrace = traced[v][b]!;
          const patches = t.rollout.patches.reduce((a, p) => a + p, 0);
          rows.push({
            label: labels[v],
            predicted: model.classes[t.top]!,
            score: t.probs[t.top]!,
            input: await imagePng(t.view, S, o.size),
            rollout: await overlayPng(t.view, S, byMax(t.rollout.patches), g, o.size),
            gradcam: await overlayPng(t.view, S, t.gradcam, g, o.size),
            shares: { patches, cls: t.rollout.cls, prompt: t.rollout.prompt },
          });
          entry[v] = {
            predicted: model.classes[t.top]!,
            score: t.probs[t.top]!,
            probs: [...t.probs],
            rollout: { patches: [...t.rollout.patches], cls: t.rollout.cls, prompt: t.rollout.prompt },
            gradcam: [...t.gradcam],
          };
        }
        report.push({ name, rows });
        results.push({ file: name, prompted: entry.prompted!, bare: entry.bare! });
        o.log?.(`${name}: with prompt ${entry.prompted!.predicted} ${entry.prompted!.score.toFixed(3)} | without ${entry.bare!.predicted} ${entry.bare!.score.toFixed(3)}`);
      }
    }
  } finally {
    tracers.prompted.dispose();
    tracers.bare.dispose();
  }
  const notes = [model.metadata.epoch ? `epoch ${model.metadata.epoch}` : '', model.metadata.val_top1 ? `validation top-1 ${(100 * Number(model.metadata.val_top1)).toFixed(1)} %` : ''].filter(Boolean);
  const html = renderExplainReport({ name: model.name, method: model.method.name, options: model.options, arch: cfg.name, grid: g, checkpoint: model.checkpoint, classes: model.classes, notes }, report);
  const json = JSON.stringify({ name: model.name, method: model.method.name, options: model.options, arch: cfg.name, grid: g, checkpoint: model.checkpoint, classes: model.classes, images: results }, null, 1);
  mkdirSync(o.outDir, { recursive: true });
  writeFileSync(join(o.outDir, 'explain.html'), html);
  writeFileSync(join(o.outDir, 'explain.json'), json);
  return { html, json, images: results };
}
