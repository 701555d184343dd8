/**
 * Trains the BPE vocabulary of a CLIP pretraining config's text tower and writes it as a Hugging
 * Face tokenizer.json (compiler/text/bpe-train.ts), then loads it back through
 * @huggingface/tokenizers (ClipTokenizer) and checks every caption fits the context.
 *
 *   node --import tsx tools/bpe-vocab.ts -c configs/pretrain/clip_tiny_p8_64.factory.yaml --out compiler/backbones/weights/clip_tiny_p8_64.factory.tokenizer.json
 *
 * The corpus is every caption the config's captions source can write, for EVERY design and named
 * finish the generator knows (the held-out benchmark line's words too: a vocabulary only spells;
 * what a word means is learnt from images, and the benchmark line's never are), plus every
 * Fashion-MNIST class name.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadPretrainConfig } from '../compiler/pretrain/config.ts';
import { allCaptions, DEFAULT_TEMPLATES, type CaptionKey, type CaptionTemplates } from '../compiler/pretrain/captions.ts';
import { PART_CLASSES } from '../compiler/data/parts-scene.ts';
import { PART_KINDS } from '../compiler/data/parts-designs.ts';
import { FINISHES } from '../compiler/data/parts-finishes.ts';
import { clipConfig } from '../compiler/backbones/clip-variants.ts';
import { tokenizerJson, trainBpe } from '../compiler/text/bpe-train.ts';
import { ClipTokenizer } from '../compiler/text/tokenizer.ts';

const { values: a } = parseArgs({ options: { config: { type: 'string', short: 'c' }, out: { type: 'string' }, vocab: { type: 'string' } } });
if (!a.config || !a.out) {
  console.error('usage: tools/bpe-vocab.ts -c <pretrain config> --out <tokenizer.json> [--vocab N (default: the arch\'s vocabulary size)]');
  process.exit(2);
}
const cfg = loadPretrainConfig(a.config);
const clip = clipConfig(cfg.arch, 'gelu');
const src = cfg.sources.find((s) => s.kind === 'captions');
const templates: CaptionTemplates = src && src.kind === 'captions' ? src.templates : DEFAULT_TEMPLATES;
const keys: CaptionKey[] = [];
for (const design of PART_KINDS.filter((d) => d !== 'random')) for (const finish of Object.keys(FINISHES)) for (const defect of PART_CLASSES) keys.push({ kind: 'part', design, finish, defect });
for (let g = 0; g < 10; g++) keys.push({ kind: 'garment', garment: g });
const corpus = allCaptions(keys, templates);
const vocabSize = a.vocab ? Number(a.vocab) : clip.text.vocabSize;
const v = trainBpe(corpus, vocabSize);
const out = resolve(a.out);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(tokenizerJson(v)) + '\n');
const tok = ClipTokenizer.fromFile(out);
let longest = 0;
for (const c of corpus) longest = Math.max(longest, tok.encodePadded(c, clip.text.contextLength, 'caption').findIndex((x) => x === tok.eot) + 1);
console.log(`wrote ${out}: ${tok.vocabSize} tokens (${v.merges.length} merges) from ${corpus.length} captions; the longest caption is ${longest} of ${clip.text.contextLength} tokens`);
