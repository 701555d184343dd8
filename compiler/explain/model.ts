/**
 * What `explain` reads: the compile config (backbone, method, output folder) and the trained
 * tensors (`<output.dir>/best.safetensors`, or a file given). No data is loaded: the class names
 * and count come from the tensors the trainer wrote.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { CompileConfig } from '../config/compile-config.ts';
import { vitConfig, type VitConfig } from '../backbones/vit-variants.ts';
import { loadVitWeights } from '../backbones/vit-weights.ts';
import { isClipArch } from '../backbones/clip-variants.ts';
import { readSafetensors, type StateDict } from '../backbones/safetensors.ts';
import { methodByName } from '../methods/registry.ts';
import type { PromptMethod } from '../methods/method.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { CompilerError } from '../ops/errors.ts';

export interface ExplainModel {
  name: string;
  cfg: VitConfig;
  /** The pretrained backbone, head removed (every task trains its own). */
  backbone: StateDict;
  method: PromptMethod<Record<string, unknown>>;
  options: Record<string, unknown>;
  /** Trained tensors: prompts and head (and backbone keys for `full`). */
  params: Map<string, HostTensor>;
  classes: string[];
  checkpoint: string;
  /** best.safetensors metadata: epoch and val_top1 when the trainer wrote them. */
  metadata: Record<string, string>;
}

export function defaultCheckpoint(config: CompileConfig, configFile: string): string {
  return join(resolve(dirname(resolve(configFile)), config.output.dir), 'best.safetensors');
}

export function loadExplainModel(config: CompileConfig, configFile: string, checkpoint?: string): ExplainModel {
  const base = dirname(resolve(configFile));
  if (isClipArch(config.backbone.arch)) {
    throw new CompilerError('UNSUPPORTED', `${configFile}: backbone.arch ${config.backbone.arch} is a CLIP model; explain reads ViT tasks with a linear head and does not trace CLIP's text head yet`);
  }
  const file = checkpoint ? resolve(checkpoint) : defaultCheckpoint(config, configFile);
  if (!existsSync(file)) {
    throw new CompilerError('FILE_NOT_FOUND', `${file}: no trained tensors for ${configFile}; train first (edgeprompt train -c ${configFile}) or pass --checkpoint <best.safetensors>`);
  }
  const { tensors: params, metadata } = readSafetensors(file);
  const method = methodByName(config.method.name);
  if (metadata.method !== undefined && metadata.method !== method.name) {
    throw new CompilerError('CHECKPOINT_MISMATCH', `${file}: trained with method "${metadata.method}" but ${configFile} has method.name "${method.name}"; pass the matching --checkpoint or config`);
  }
  if (metadata.arch !== undefined && metadata.arch !== config.backbone.arch) {
    throw new CompilerError('CHECKPOINT_MISMATCH', `${file}: trained on arch "${metadata.arch}" but ${configFile} has backbone.arch "${config.backbone.arch}"`);
  }
  const head = params.get('head.weight');
  if (!head || head.shape.length !== 2) throw new CompilerError('MISSING_TENSOR', `${file}: no "head.weight" [classes, dim]; is this a best.safetensors written by edgeprompt train?`);
  const C = head.shape[0]!;
  const classes = metadata.classes ? metadata.classes.split(',') : Array.from({ length: C }, (_, i) => `class ${i}`);
  if (classes.length !== C) throw new CompilerError('BAD_FILE', `${file}: metadata names ${classes.length} classes but head.weight has ${C} rows`);
  const cfg = vitConfig(config.backbone.arch, { ...(config.backbone.imgSize ? { imgSize: config.backbone.imgSize } : {}), numClasses: C });
  const loaded = loadVitWeights(resolve(base, config.backbone.weights), cfg);
  const backbone: StateDict = new Map([...loaded.stateDict].filter(([k]) => !k.startsWith('head.')));
  return { name: config.name, cfg, backbone, method, options: method.resolveOptions(config.method.options), params, classes, checkpoint: file, metadata };
}
