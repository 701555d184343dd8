/**
 * The outputs of a contrastive (CLIP) pretraining run, from the final tensors:
 * - `<name>.safetensors`: the whole CLIP stored F16 under EdgePrompt's CLIP names (the image tower
 *   in timm's CLIP layout, `image_proj.weight`, the text tower under `text.`, `logit_scale`;
 *   compiler/backbones/clip-weights.ts), metadata `clip.act` so the loader knows the activation;
 * - `<name>.tokenizer.json`: the BPE vocabulary the captions went through;
 * - `<name>.json`: the card.
 * The F16 file is read back through the CLIP loader every compile uses (loadClipWeights), and the
 * card's figures come from those bytes: zero-shot top-1 over every caption key, zero-shot on the
 * withheld (never captioned) triples against the seen triples of the same lines, and the
 * held-out line's linear probe.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafetensors, readSafetensors, type StateDict } from '../backbones/safetensors.ts';
import { clipTensorShapes, countParams, loadClipWeights } from '../backbones/clip-weights.ts';
import { makeClipTask } from '../backbones/clip-task.ts';
import { frozenImageEmbeddings } from '../methods/clip-common.ts';
import { ClipTokenizer } from '../text/tokenizer.ts';
import { preprocessFor, toBatch } from '../data/transforms.ts';
import type { TrainResult } from '../train/loop.ts';
import { evaluateSources, probeHeldOut } from './evaluate.ts';
import type { PreparedPretrain } from './job.ts';
import { machineInfo, type PublishOptions } from './publish.ts';
import { DEFECT_WORDS, DESIGN_WORDS, FINISH_WORDS, type CaptionKey } from './captions.ts';
import type { LabeledSet } from '../data/types.ts';

export interface PublishedClip {
  weightsFile: string;
  tokenizerFile: string;
  cardFile: string;
  card: Record<string, unknown>;
}

/**
 * Zero-shot defect top-1 on a line's images: each image against the 5 captions "a photo of a
 * {finish} {design} with {defect}." of its own line. `keyOf(label)` says which triple an image is.
 */
function defectTop1(p: PreparedPretrain, sd: StateDict, tok: ClipTokenizer, set: LabeledSet, keyOf: (label: number) => CaptionKey): { top1: number; n: number } {
  const clip = p.clip!.cfg;
  const pre = preprocessFor(clip.vision, 'stretch');
  const byLine = new Map<string, { design: string; finish: string; idx: number[] }>();
  set.samples.forEach((s, i) => {
    const k = keyOf(s.label);
    if (k.kind !== 'part') return;
    const id = `${k.design}/${k.finish}`;
    if (!byLine.has(id)) byLine.set(id, { design: k.design, finish: k.finish, idx: [] });
    byLine.get(id)!.idx.push(i);
  });
  const defects = Object.keys(DEFECT_WORDS) as (keyof typeof DEFECT_WORDS)[];
  let hit = 0;
  let n = 0;
  for (const { design, finish, idx } of byLine.values()) {
    const names = defects.map((d) => `${FINISH_WORDS[finish] ?? finish} ${DESIGN_WORDS[design] ?? design} with ${DEFECT_WORDS[d]}`);
    const task = makeClipTask({ cfg: clip, stateDict: sd, tokenizer: tok, classes: names, templates: ['a photo of a {}.'] });
    const b = toBatch(idx.map((i) => set.samples[i]!), pre);
    const img = frozenImageEmbeddings(task, sd, { shape: [idx.length, 3, clip.vision.imgSize, clip.vision.imgSize], data: b.x });
    const E = clip.embedDim;
    idx.forEach((i, r) => {
      const k = keyOf(set.samples[i]!.label) as Extract<CaptionKey, { kind: 'part' }>;
      let best = 0;
      let bestS = -Infinity;
      for (let c = 0; c < defects.length; c++) {
        let s = 0;
        for (let e = 0; e < E; e++) s += img[r * E + e]! * task.zeroShot.data[c * E + e]!;
        if (s > bestS) [best, bestS] = [c, s];
      }
      hit += Number(defects[best] === k.defect);
      n++;
    });
  }
  return { top1: n ? hit / n : NaN, n };
}

export async function publishClipPretrain(p: PreparedPretrain, r: TrainResult, o: PublishOptions): Promise<PublishedClip> {
  const { cfg, job } = p;
  const clip = p.clip!.cfg;
  const final = readSafetensors(join(r.checkpointDir, 'params.safetensors')).tensors;
  const sd: StateDict = new Map();
  for (const [k, shape] of clipTensorShapes(clip)) {
    const t = final.get(k);
    if (!t) throw new Error(`internal: the trained tensors lack ${k}`);
    sd.set(k, { shape, data: t.data }); // logit_scale: [1] while training, a scalar [] in CLIP files
  }
  const metadata: Record<string, string> = {
    'clip.act': clip.act,
    'edgeprompt.arch': clip.name,
    'edgeprompt.tokenizer': `${job.name}.tokenizer.json`,
    'edgeprompt.command': o.command,
  };
  mkdirSync(o.dir, { recursive: true });
  const weightsFile = join(o.dir, `${job.name}.safetensors`);
  const tokenizerFile = join(o.dir, `${job.name}.tokenizer.json`);
  const cardFile = join(o.dir, `${job.name}.json`);
  const bytes = encodeSafetensors(sd, { dtype: 'F16', metadata });
  writeFileSync(weightsFile, bytes);
  if (p.clip!.tokenizerFile && p.clip!.tokenizerFile !== tokenizerFile) copyFileSync(p.clip!.tokenizerFile, tokenizerFile);

  // The shipped bytes, through the loader every CLIP compile uses.
  const loaded = loadClipWeights(weightsFile, clip.name);
  let worst = 0;
  for (const [k, t] of sd) {
    const g = loaded.stateDict.get(k)!.data;
    for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(g[i]! - t.data[i]!));
  }
  const params = new Map(final);
  for (const [k, t] of loaded.stateDict) params.set(k, k === 'logit_scale' ? { shape: [1], data: t.data } : t);
  const engine = await job.makeEngine(params);
  const shipped: Record<string, number> = {};
  try {
    const m = await evaluateSources(engine, p.data, p.heads.map((h) => ({ name: h.source, classes: [...h.classes] })), Math.max(job.recipe.batchSize, 64));
    for (const [k, v] of Object.entries(m.bySource)) shipped[`zeroShot.top1.${k}`] = v;
  } finally {
    engine.dispose();
  }
  if (p.probe) {
    const pr = await probeHeldOut(cfg, params, p.probe);
    shipped['probe.top1'] = pr.top1;
    shipped['probe.auroc'] = pr.auroc;
  }
  const tok = ClipTokenizer.fromFile(tokenizerFile);
  const composition: Record<string, unknown> = {};
  for (const s of p.sources) {
    const c = s.captions;
    if (!c || c.withheld.keys.length === 0) continue;
    const held = defectTop1(p, loaded.stateDict, tok, c.withheld.set, (l) => c.withheld.keys[l]!);
    // The seen triples of the same lines: the baseline the withheld ones are compared with.
    const lines = new Set(c.withheld.keys.map((k) => (k.kind === 'part' ? `${k.design}/${k.finish}` : '')));
    const seenSet = { ...s.val, samples: s.val.samples.filter((x) => { const k = c.keys[x.label]!; return k.kind === 'part' && lines.has(`${k.design}/${k.finish}`); }) };
    const seen = defectTop1(p, loaded.stateDict, tok, seenSet, (l) => c.keys[l]!);
    composition[s.name] = {
      what: 'zero-shot defect top-1 among the 5 captions "a photo of a {finish} {design} with {defect}." of the image\'s own line',
      withheldTriples: c.withheld.keys.map((k) => (k.kind === 'part' ? `${k.design}/${k.finish}/${k.defect}` : '')),
      withheld: held,
      seenTriplesOfTheSameLines: seen,
      chance: 1 / Object.keys(DEFECT_WORDS).length,
    };
  }

  const st = r.state;
  const trainingSeconds = st.history.reduce((a, h) => a + h.seconds, 0);
  const evalSeconds = st.history.reduce((a, h) => a + (h.details?.evalSeconds ?? 0), 0);
  const cpuSeconds = st.history.reduce((a, h) => a + (h.details?.cpuSeconds ?? 0), 0);
  const images = st.globalStep * job.recipe.batchSize;
  const shapes = clipTensorShapes(clip);
  const card = {
    name: job.name,
    file: `${job.name}.safetensors`,
    tokenizer: `${job.name}.tokenizer.json`,
    arch: {
      name: clip.name,
      image: { imgSize: cfg.imgSize, patchSize: cfg.patchSize, width: cfg.embedDim, depth: cfg.depth, heads: cfg.numHeads, tokens: 1 + (cfg.imgSize / cfg.patchSize) ** 2, mean: cfg.mean, std: cfg.std },
      text: { ...clip.text, tokenizerTokens: tok.vocabSize },
      embedDim: clip.embedDim,
      act: clip.act,
      params: countParams(shapes),
      names: 'EdgePrompt CLIP names (compiler/backbones/clip-weights.ts): image tower in timm CLIP layout, image_proj, text.*, logit_scale',
    },
    weights: { dtype: 'F16', bytes: bytes.length, sha256: createHash('sha256').update(readFileSync(weightsFile)).digest('hex'), maxAbsRoundingError: worst, logitScale: Math.exp(sd.get('logit_scale')!.data[0]!) },
    start: p.start,
    sources: Object.fromEntries(p.sources.map((s) => [s.name, s.describe])),
    mixture: { samplesPerEpoch: job.data.trainSize, perEpoch: Object.fromEntries(p.sources.map((s, i) => [s.name, p.data.perEpoch[i]])), captionKeys: p.data.classes.length },
    heldOut: (job.config as { heldOut?: unknown }).heldOut ?? null,
    recipe: { ...job.recipe, objective: 'contrastive (symmetric InfoNCE, learnable logit_scale, positives = same caption key)', engine: st.engine, backend: st.backend, steps: st.globalStep, images, seed: st.seed },
    history: st.history.map((h) => ({ epoch: h.epoch, lr: h.lr, trainLoss: h.trainLoss, valLoss: h.valLoss, valTop1: h.valTop1, imagesPerSec: h.imagesPerSec, seconds: h.seconds, ...h.details })),
    final: { fp32: st.history.at(-1)?.details ?? {}, shippedF16: shipped, composition },
    time: { trainingSeconds, evalSeconds, trainImagesPerSec: images / Math.max(1e-9, trainingSeconds - evalSeconds), cpuSeconds, dataSecondsThisRun: p.dataSeconds, wallSecondsThisRun: o.wallSeconds },
    machine: machineInfo(),
    command: o.command,
    config: job.config,
    createdAt: new Date().toISOString(),
  };
  writeFileSync(cardFile, JSON.stringify(card, null, 1) + '\n');
  return { weightsFile, tokenizerFile, cardFile, card };
}
