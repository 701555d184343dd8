/**
 * The CLIP half of turning a compile config into a job (job.ts): weights in either name scheme
 * with the activation of their source, the tokenizer, the data split at the image tower's size
 * and normalisation, and the class words (the data's class names, or `text.classNames`) with
 * the zero-shot class embeddings computed once (ClipTask).
 */
import { resolve } from 'node:path';
import type { CompileConfig } from '../config/compile-config.ts';
import { fieldError } from '../config/load.ts';
import { loadClipWeights } from '../backbones/clip-weights.ts';
import { makeClipTask, type ClipTask } from '../backbones/clip-task.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import { ClipTokenizer } from '../text/tokenizer.ts';
import { loadSplit } from './data-source.ts';
import type { Split } from '../data/types.ts';

export interface PreparedClip {
  cfg: VitConfig;
  backbone: StateDict;
  split: Split;
  clip: ClipTask;
  notes: string[];
}

export async function prepareClip(config: CompileConfig, configFile: string, base: string): Promise<PreparedClip> {
  const b = config.backbone;
  if (!b.tokenizer) throw fieldError(configFile, 'backbone.tokenizer', `a CLIP backbone (${b.arch}) needs the tokenizer.json its weights were trained with`);
  const loaded = loadClipWeights(resolve(base, b.weights), b.arch, b.source);
  if (b.imgSize !== undefined && b.imgSize !== loaded.cfg.vision.imgSize) {
    throw fieldError(configFile, 'backbone.imgSize', `${b.imgSize} differs from ${b.arch}'s ${loaded.cfg.vision.imgSize}; CLIP towers run at their own size (leave imgSize out)`);
  }
  const tokenizer = ClipTokenizer.fromFile(resolve(base, b.tokenizer));
  const split = await loadSplit(config.data, loaded.cfg.vision, base);
  const dataClasses = split.train.classes;
  const words = config.text.classNames;
  if (words && words.length !== dataClasses.length) {
    throw fieldError(configFile, 'text.classNames', `${words.length} names for ${dataClasses.length} classes in the data (${dataClasses.join(', ')}); give one per class, in that order`);
  }
  const clip = makeClipTask({ cfg: loaded.cfg, stateDict: loaded.stateDict, tokenizer, classes: words ?? dataClasses, templates: config.text.templates, field: words ? 'text.classNames' : 'data classes' });
  return { cfg: { ...loaded.cfg.vision, numClasses: dataClasses.length }, backbone: loaded.stateDict, split, clip, notes: loaded.notes };
}
