/**
 * The tiny in-house CLIP, end to end: a contrastive pretraining run of the shipped arch on a few
 * captioned images (CLIP weights the CLIP loader reads, the tokenizer beside them, a card with the
 * withheld triples' zero-shot figures); the shipped weights and tokenizer themselves (loader, BPE
 * through @huggingface/tokenizers, card); `compile --zero-shot` with no weights flag building on
 * them, signed, served by the unchanged runtime; configs/parts-dapt.yaml compiling end to end on
 * them; and bad input as one line and exit 2 from the real process.
 */
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadClipWeights } from '../compiler/backbones/clip-weights.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { SHIPPED_CLIP } from '../compiler/backbones/shipped-clip.ts';
import { ClipTokenizer } from '../compiler/text/tokenizer.ts';
import { allCaptions, DEFAULT_TEMPLATES, type CaptionKey } from '../compiler/pretrain/captions.ts';
import { readArtifact } from '../runtime/artifact/index.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { pretrainCommand } from '../cli/pretrain.ts';
import { startAedes } from './helpers/brokers.ts';
import { repoPath } from './helpers/fixtures.ts';
import { tempDir } from './helpers/images.ts';

const run = promisify(execFile);
let root = '';
let cleanup = async (): Promise<void> => {};
test.before(async () => ({ dir: root, cleanup } = await tempDir('ep-clip-tiny-')));
test.after.always(() => cleanup());

async function edgeprompt(...args: string[]) {
  try {
    // Generous: on the shared 2-core machine under load a compile takes minutes.
    const r = await run(process.execPath, [repoPath('tools/edgeprompt.mjs'), ...args], { timeout: 480_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr };
  }
}

const tiny = (over: Record<string, unknown> = {}) => ({
  name: 'tinyclip',
  arch: 'clip_tiny_p8_64',
  tokenizer: SHIPPED_CLIP.tokenizer,
  sources: [
    {
      name: 'captions',
      kind: 'captions',
      weight: 1,
      parts: { designs: ['plate'], finishes: ['steel', 'brass'], perClass: 2, valPerClass: 1 },
      fashionMnist: { classes: [0, 1], limitPerClass: 4, valLimitPerClass: 2 },
      withhold: ['plate/brass/dent'],
    },
  ],
  samplesPerEpoch: 16,
  recipe: { epochs: 1, batchSize: 8, lr: 0.001 },
  cacheDir: join(root, 'cache'),
  output: { dir: join(root, 'run') },
  ...over,
});
const writeConfig = (name: string, cfg: object) => {
  const file = join(root, `${name}.yaml`);
  writeFileSync(file, stringify(cfg));
  return file;
};

test.serial('a tiny contrastive run: CLIP weights the CLIP loader reads, the tokenizer beside them, a card with composition figures', async (t) => {
  t.timeout(300_000);
  const file = writeConfig('tiny', tiny());
  await pretrainCommand({ config: file, set: [], progress: 'none' });
  const out = join(root, 'run');
  const w = join(out, 'tinyclip.safetensors');
  const loaded = loadClipWeights(w, 'clip_tiny_p8_64'); // activation from the file's own metadata
  t.is(loaded.scheme, 'ours');
  t.is(loaded.cfg.act, 'gelu');
  t.is(readSafetensors(w).tensors.get('text.token_embedding.weight')!.shape.join('x'), '768x64');
  t.true(existsSync(join(out, 'tinyclip.tokenizer.json')));
  const card = JSON.parse(readFileSync(join(out, 'tinyclip.json'), 'utf8')) as Record<string, any>;
  t.is(card.history.length, 1);
  t.is(card.arch.params, 633_537);
  t.is(card.mixture.captionKeys, 2 * 5 - 1 + 2, 'plate × {steel, brass} × 5 defects, one withheld, + 2 garments');
  t.deepEqual(card.final.composition.captions.withheldTriples, ['plate/brass/dent']);
  t.is(card.final.composition.captions.withheld.n, 1);
  t.is(typeof card.final.shippedF16['zeroShot.top1.captions'], 'number');
  t.true(card.weights.maxAbsRoundingError < 1e-2);
});

test('the shipped tiny CLIP: loads under its arch, its tokenizer spells every caption within the context, its card names the config', (t) => {
  const { cfg, stateDict } = loadClipWeights(SHIPPED_CLIP.weights, SHIPPED_CLIP.arch);
  t.is(cfg.act, 'gelu');
  t.is(stateDict.size, [...stateDict.keys()].length);
  const tok = ClipTokenizer.fromFile(SHIPPED_CLIP.tokenizer);
  t.true(tok.vocabSize <= cfg.text.vocabSize);
  const keys: CaptionKey[] = [{ kind: 'part', design: 'triangle', finish: 'green-anodised', defect: 'missing_hole' }, { kind: 'garment', garment: 9 }];
  for (const c of allCaptions(keys, DEFAULT_TEMPLATES)) t.notThrows(() => tok.encodePadded(c, cfg.text.contextLength, 'caption'));
  // Whole words after BPE: "anodised" is one or two tokens, not eight bytes.
  t.true(tok.encode('anodised').length <= 4);
  const card = JSON.parse(readFileSync(SHIPPED_CLIP.card, 'utf8')) as { command: string; weights: { sha256: string } };
  t.regex(card.command, /pretrain -c configs\/pretrain\/clip_tiny_p8_64\.factory\.yaml/);
});

test.serial('compile --zero-shot without weight flags builds on the shipped tiny CLIP; the signed artifact is served unchanged', async (t) => {
  t.timeout(600_000);
  const k = await edgeprompt('keys', 'new', '--out', join(root, 'line1'));
  t.is(k.code, 0, k.out);
  const epk = join(root, 'zs.epk');
  const c = await edgeprompt('compile', '--zero-shot', '--classes', 'no defect,a scratch,a dent', '--templates', 'a photo of a steel plate with {}.', '--ok', 'no defect', '--sign', join(root, 'line1.key'), '--out', epk, '--progress', 'lines');
  t.is(c.code, 0, c.out);
  const a = readArtifact(readFileSync(epk), epk);
  t.is(a.manifest.backbone.arch, 'clip_tiny_p8_64');
  t.deepEqual(a.manifest.labels, ['no defect', 'a scratch', 'a dent']);
  t.is(a.manifest.input.height, 64);
  const v = await edgeprompt('verify', epk, '--pub', join(root, 'line1.pub'));
  t.is(v.code, 0, v.out);

  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const results: ResultPayload[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: 'tiny-1' }, (m) => void results.push(m.result));
  t.teardown(() => sub.close());
  await sub.ready;
  const N = 4;
  writeFileSync(join(root, 'device.yaml'), ['device: tiny-1', `artifact: ${epk}`, 'trustedKeys: [line1.pub]', 'profile: x86-cpu', 'cameras:', `  - { id: cam1, kind: synthetic, fps: 20, count: ${N} }`, `mqtt: { url: "${broker.url}", protocolVersion: 4, reconnectPeriodMs: 100 }`, 'outbox: { kind: memory }', ''].join('\n'));
  const child = spawn(process.execPath, ['--import', 'tsx', repoPath('runtime/cli.ts'), 'run', '-c', join(root, 'device.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  t.is(code, 0, stderr);
  await new Promise((r) => setTimeout(r, 200));
  t.is(results.length, N, stderr);
  t.true(results.every((r) => ['no defect', 'a scratch', 'a dent'].includes(r.label)));
});

test.serial('configs/parts-dapt.yaml compiles end to end on the shipped tiny CLIP (one epoch here)', async (t) => {
  t.timeout(600_000);
  const out = join(root, 'dapt.epk');
  const c = await edgeprompt('compile', '-c', repoPath('configs/parts-dapt.yaml'), '--set', 'recipe.epochs=1', '--set', 'data.perClass=24', '--set', `output.dir=${join(root, 'dapt-run')}`, '--set', 'gates.minTop1=0', '--sign', join(root, 'line1.key'), '--out', out, '--progress', 'lines');
  t.is(c.code, 0, c.out);
  const a = readArtifact(readFileSync(out), out);
  t.like(a.manifest, { backbone: { arch: 'clip_tiny_p8_64' }, method: { name: 'dapt', options: { textContext: 8, visualPrompts: 16 } } });
  t.true(a.manifest.metrics.fp32!.maxLogitDiff <= 1e-4);
});

test.serial('bad contrastive input through the CLI: one line naming the field, exit 2, no stack trace', async (t) => {
  t.timeout(600_000);
  const src = tiny().sources[0]!;
  const cases: [string, object, RegExp][] = [
    ['vit', tiny({ arch: 'vit_micro_patch8_64' }), /arch: source captions is contrastive \(image–text\), so arch must be a CLIP variant/],
    ['notok', { ...tiny(), tokenizer: undefined }, /tokenizer: source captions is contrastive: name the text tower's tokenizer\.json/],
    ['withhold', tiny({ sources: [{ ...src, withhold: ['hex/brass/dent'] }] }), /withhold "hex\/brass\/dent" is not design\/finish\/defect of this source/],
    ['classify', tiny({ sources: [{ ...src, objective: 'classify' }] }), /sources\[0\]\.objective: .*expected "contrastive"/],
    ['long', tiny({ sources: [{ ...src, templates: { parts: ['a photo of a {finish} {design} with {defect}, seen from above on a conveyor belt at the end of the line.'], garments: ['{}'] } }] }), /caption of plate\/\w+\/\w+: ".*" is \d+ tokens with SOT and EOT, but the text tower's context holds 24/],
  ];
  for (const [name, cfg, re] of cases) {
    const r = await edgeprompt('pretrain', '-c', writeConfig(`bad-${name}`, { ...cfg, output: { dir: join(root, `bad-${name}`) } }), '--progress', 'none');
    t.is(r.code, 2, `${name}: ${r.out}`);
    const lines = r.out.trim().split('\n').filter((l) => l.startsWith('edgeprompt: error'));
    t.is(lines.length, 1, `${name}: ${r.out}`);
    t.regex(r.out, re, name);
    t.notRegex(r.out, /\n\s+at /, `${name}: no stack trace`);
  }
});
