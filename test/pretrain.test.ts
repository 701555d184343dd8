/**
 * `edgeprompt pretrain`: the source mixture (shares, labels, determinism), a whole tiny run through
 * the command (F16 timm weights, heads, card, a resumed run equal to an uninterrupted one, starting
 * from given weights), and bad input as one line and exit 2 from the real process.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { loadVitWeights } from '../compiler/backbones/vit-weights.ts';
import { vitConfig } from '../compiler/backbones/vit-variants.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { mixture, shares } from '../compiler/pretrain/mixture.ts';
import type { LoadedSource } from '../compiler/pretrain/sources.ts';
import { preprocessFor } from '../compiler/data/transforms.ts';
import type { LabeledSet } from '../compiler/data/types.ts';
import { pretrainCommand } from '../cli/pretrain.ts';
import { loadPretrainConfig } from '../compiler/pretrain/config.ts';
import { preparePretrain } from '../compiler/pretrain/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { repoPath } from './helpers/fixtures.ts';
import { tempDir } from './helpers/images.ts';

const run = promisify(execFile);

let root = '';
let cleanup = async (): Promise<void> => {};
test.before(async () => ({ dir: root, cleanup } = await tempDir('ep-pretrain-')));
test.after.always(() => cleanup());

function fakeSource(name: string, classes: string[], perClass: number, weight: number): LoadedSource {
  const set = (tag: string): LabeledSet => ({
    name: `${name}:${tag}`,
    classes,
    size: 4,
    samples: classes.flatMap((_, label) => Array.from({ length: perClass }, (_, i) => ({ image: new Uint8Array(48).fill(label * 10 + (i % 10)), label, source: `${name}:${tag}:${label}:${i}` }))),
  });
  return { name, kind: 'parts', weight, objective: 'classify', patches: 0, classes, train: set('train'), val: set('val'), describe: {} };
}

const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
};

test('shares split an epoch by weight (largest remainder, exact total)', (t) => {
  t.deepEqual(shares(10, [0.8, 0.2]), [8, 2]);
  t.deepEqual(shares(10, [1, 1, 1]), [4, 3, 3]);
  t.deepEqual(shares(7, [3, 1]), [5, 2]);
  for (const n of [1, 13, 256, 10000]) t.is(shares(n, [0.7, 0.2, 0.1]).reduce((a, b) => a + b, 0), n);
});

test('the mixture: global labels by source, per-epoch shares, same batches for (seed, epoch), sources walked without repeats', async (t) => {
  const a = fakeSource('a', ['x', 'y', 'z'], 10, 3); // 30 images
  const b = fakeSource('b', ['u', 'v'], 50, 1); // 100 images
  const pre = preprocessFor({ imgSize: 4, mean: [0, 0, 0], std: [1, 1, 1] });
  const m = mixture([a, b], { samplesPerEpoch: 40, seed: 3, pre });
  t.deepEqual(m.classes, ['a/x', 'a/y', 'a/z', 'b/u', 'b/v']);
  t.deepEqual(m.offsets, [0, 3]);
  t.deepEqual(m.perEpoch, [30, 10]);
  const epoch = async (e: number) => (await collect(m.trainBatches(e, 8))).flatMap((x) => (x as unknown as { sources: string[] }).sources);
  const e0 = await epoch(0);
  t.is(e0.length, 40);
  t.is(e0.filter((s) => s.startsWith('a:')).length, 30);
  t.is(new Set(e0.filter((s) => s.startsWith('a:'))).size, 30, 'a full pass over source a, no repeats');
  t.deepEqual(await epoch(0), e0, 'same seed and epoch → same rows in the same order');
  const labels = (await collect(m.trainBatches(0, 8))).flatMap((x) => [...x.y]);
  t.true(labels.every((y, i) => (e0[i]!.startsWith('a:') ? y < 3 : y >= 3 && y < 5)));
  // Source b (100 images, 10 per epoch) is walked through: ten epochs see each image once.
  const bRows: string[] = [];
  for (let e = 0; e < 10; e++) bRows.push(...(await epoch(e)).filter((s) => s.startsWith('b:')));
  t.is(new Set(bRows).size, 100);
  t.notDeepEqual(await epoch(1), e0);
  const val = await collect(m.valBatches(16));
  t.is(val.reduce((n, x) => n + x.y.length, 0), 130);
  t.throws(() => mixture([a, b], { samplesPerEpoch: 2, seed: 0, pre: pre }).classes, { instanceOf: CompilerError, message: /source b: weight 1 draws no image from 2 per epoch/ });
});

test('patch-level targets: one-hot per patch from the defect cells, flipped with the image, zero for other sources; no crop with them', async (t) => {
  const dense = fakeSource('p', ['ok', 'scratch'], 8, 1);
  dense.patches = 1;
  for (const set of [dense.train, dense.val])
    for (const x of set.samples) {
      x.cells = new Uint8Array(256);
      if (x.label === 1) x.cells[0] = 1; // a defect in the top-left corner
      x.image = Uint8Array.from({ length: 48 }, (_, i) => i); // 4×4 RGB, distinct pixels
    }
  const other = fakeSource('q', ['u', 'v'], 8, 1);
  const pre = preprocessFor({ imgSize: 4, mean: [0, 0, 0], std: [1, 1, 1] });
  const m = mixture([dense, other], { samplesPerEpoch: 32, seed: 1, pre, grid: 4, hflip: true });
  let flipped = 0;
  for await (const b of m.trainBatches(0, 8)) {
    const pt = (b as { inputs?: Map<string, { shape: number[]; data: Float32Array }> }).inputs!.get('patch_targets.p')!;
    t.deepEqual(pt.shape, [8, 16, 2]);
    for (let r = 0; r < 8; r++) {
      const row = pt.data.subarray(r * 32, (r + 1) * 32);
      const y = b.y[r]!;
      if (y >= 2) {
        t.true(row.every((v) => v === 0), 'rows of another source carry no patch targets');
        continue;
      }
      const mirrored = b.x[r * 48] !== 0; // pixel (0,0) of channel 0 was 0 before a flip
      if (mirrored) flipped++;
      for (let p = 0; p < 16; p++) {
        const defectHere = y === 1 && p === (mirrored ? 3 : 0);
        t.deepEqual([...row.subarray(p * 2, p * 2 + 2)], defectHere ? [0, 1] : [1, 0]);
      }
    }
  }
  t.true(flipped > 0, 'some rows flipped');
  t.throws(() => mixture([dense], { samplesPerEpoch: 8, seed: 0, pre, grid: 4, augment: { randomResizedCrop: { scale: [0.5, 1] } } }), { instanceOf: CompilerError, message: /cropScale: a random crop would move the defect cells/ });
});

const tiny = (over: Record<string, unknown> = {}) => ({
  name: 'tiny',
  arch: 'vit_fixture_patch8_32',
  sources: [
    { name: 'parts', kind: 'parts', weight: 3, designs: ['plate'], finishes: ['steel', 'random'], pose: 'free', lighting: 'varied', perClass: 3, valPerClass: 1, patches: 1 },
    { name: 'fmnist', kind: 'fashion-mnist', weight: 1, classes: [0, 1], limitPerClass: 8, valLimitPerClass: 4 },
  ],
  heldOut: { part: 'bracket', material: 'blue-anodised', perClass: 3, valPerClass: 3 },
  samplesPerEpoch: 32,
  recipe: { epochs: 2, batchSize: 16 },
  cacheDir: join(root, 'cache'),
  ...over,
});

function writeConfig(name: string, cfg: object): string {
  const file = join(root, `${name}.yaml`);
  writeFileSync(file, stringify(cfg));
  return file;
}

const quiet = { set: [] as string[], progress: 'none' as const };

test("a whole run: F16 timm weights with the first source's head, every head apart, a card; a resumed run equals an uninterrupted one; given weights start a new run", async (t) => {
  t.timeout(10 * 60_000); // four tiny runs: about 20 CPU-seconds, longer only when the machine is shared
  const straight = writeConfig('straight', tiny({ output: { dir: join(root, 'straight') } }));
  await pretrainCommand({ ...quiet, config: straight });
  const dir = join(root, 'straight');
  const w = readSafetensors(join(dir, 'tiny.safetensors'));
  const cfg = vitConfig('vit_fixture_patch8_32', { numClasses: 5 });
  const loaded = loadVitWeights(join(dir, 'tiny.safetensors'), cfg);
  t.false(loaded.headDropped, 'a complete timm classifier for the first source');
  t.is(w.metadata['edgeprompt.head_source'], 'parts');
  t.is(w.metadata['edgeprompt.head_classes'], 'dent,missing_hole,ok,scratch,stain');
  const header = JSON.parse(readFileSync(join(dir, 'tiny.safetensors')).subarray(8, 8 + Number(readFileSync(join(dir, 'tiny.safetensors')).readBigUInt64LE(0))).toString()) as Record<string, { dtype?: string }>;
  t.true(Object.entries(header).filter(([k]) => k !== '__metadata__').every(([, v]) => v.dtype === 'F16'), 'stored F16');
  const heads = readSafetensors(join(dir, 'tiny.heads.safetensors')).tensors;
  t.deepEqual(heads.get('heads.parts.weight')!.shape, [5, 96]);
  t.deepEqual(heads.get('heads.fmnist.weight')!.shape, [2, 96]);
  t.deepEqual(heads.get('heads.parts.patches.weight')!.shape, [5, 96], 'the patch-level head is kept with the others');
  const card = JSON.parse(readFileSync(join(dir, 'tiny.json'), 'utf8')) as Record<string, any>;
  t.is(card.history.length, 2);
  for (const h of card.history) for (const k of ['top1.parts', 'top1.fmnist', 'probe.top1', 'probe.auroc', 'load1', 'cpuSeconds']) t.is(typeof h[k], 'number', k);
  t.like(card, { arch: { name: 'vit_fixture_patch8_32', imgSize: 32, patchSize: 8, tokens: 17 }, weights: { dtype: 'F16', bytes: readFileSync(join(dir, 'tiny.safetensors')).length }, mixture: { perEpoch: { parts: 24, fmnist: 8 } } });
  t.deepEqual(Object.keys(card.final.shippedF16).sort(), ['probe.auroc', 'probe.top1', 'top1.fmnist', 'top1.parts']);
  t.deepEqual(card.sources.parts.lines, ['plate × steel', 'plate × random']);
  t.regex(card.command, /^edgeprompt /);
  t.true(card.weights.maxAbsRoundingError > 0 && card.weights.maxAbsRoundingError < 1e-2);
  // Output standardised over every training image here (30 parts + 16 garments < 2048), heads compensated.
  t.like(card.standardised, { images: 46 });

  // Interrupted in the second epoch (Ctrl-C is this abort signal), then resumed: the same bytes.
  const split = writeConfig('split', tiny({ output: { dir: join(root, 'split') } }));
  const abort = new AbortController();
  const progress = { ...makeProgress('none'), startEpoch: (e: number) => void (e === 1 && abort.abort()) };
  const cut = await preparePretrain(loadPretrainConfig(split), split, { resume: false, progress, signal: abort.signal });
  t.true((await train(cut.job)).interrupted, 'stopped by the signal');
  await pretrainCommand({ ...quiet, config: split, resume: true });
  t.true(readFileSync(join(root, 'split', 'tiny.safetensors')).subarray(8).equals(readFileSync(join(dir, 'tiny.safetensors')).subarray(8)) || equalTensors(join(root, 'split', 'tiny.safetensors'), join(dir, 'tiny.safetensors')));

  // Given weights and heads start a new run; a head whose class count differs is refused.
  const again = writeConfig('again', tiny({ init: { weights: join(dir, 'tiny.safetensors'), heads: join(dir, 'tiny.heads.safetensors') }, recipe: { epochs: 1, batchSize: 16 }, output: { dir: join(root, 'again') } }));
  await pretrainCommand({ ...quiet, config: again });
  const c2 = JSON.parse(readFileSync(join(root, 'again', 'tiny.json'), 'utf8')) as { start: string };
  t.regex(c2.start, /^[0-9a-f]{64}$/);
  const fewer = writeConfig('fewer', tiny({ init: { heads: join(dir, 'tiny.heads.safetensors'), weights: join(dir, 'tiny.safetensors') }, sources: [{ ...tiny().sources[0], classes: ['ok', 'scratch', 'dent'] }], output: { dir: join(root, 'fewer') } }));
  const e = await t.throwsAsync(pretrainCommand({ ...quiet, config: fewer }), { instanceOf: CompilerError });
  t.regex(e.message, /the head of source "parts" is \[5, 96\] \(5 classes\), but source "parts" has 3 classes/);
});

test('a validation line chooses the published epoch (never the benchmark line): its probe every epoch, the best epoch shipped and named in the card', async (t) => {
  t.timeout(10 * 60_000); // one tiny run of 3 epochs, each probed twice; slow only when the machine is shared
  const file = writeConfig('validated', tiny({ validation: { part: 'hex', material: 'black-oxide', perClass: 3, valPerClass: 3 }, recipe: { epochs: 3, batchSize: 16, lr: 3e-3 }, output: { dir: join(root, 'validated') } }));
  await pretrainCommand({ ...quiet, config: file });
  const dir = join(root, 'validated');
  const card = JSON.parse(readFileSync(join(dir, 'tiny.json'), 'utf8')) as Record<string, any>;
  const v = (card.history as Record<string, number>[]).map((h) => h['validation.top1']!);
  t.true(v.every((x) => typeof x === 'number'), 'probed after every epoch');
  const best = v.indexOf(Math.max(...v)) + 1;
  t.deepEqual(card.published, { epoch: best, chosenBy: 'best validation-line probe top-1' });
  t.deepEqual(card.validation, { part: 'hex', material: 'black-oxide', perClass: 3, valPerClass: 3, seed: 1000, every: 1 });
  t.is(card.final.fp32['validation.top1'], v[best - 1]);
  // The shipped backbone is that epoch's tensors (best.safetensors), rounded to F16.
  const chosen = readSafetensors(join(dir, 'best.safetensors')).tensors;
  const shipped = readSafetensors(join(dir, 'tiny.safetensors')).tensors;
  const k = 'blocks.0.attn.qkv.weight';
  t.true(shipped.get(k)!.data.every((x, i) => Math.abs(x - chosen.get(k)!.data[i]!) <= 1e-3 * Math.max(1, Math.abs(x))));
  t.is(typeof card.final.shippedF16['validation.top1'], 'number');
});

function equalTensors(a: string, b: string): boolean {
  const x = readSafetensors(a).tensors;
  const y = readSafetensors(b).tensors;
  return [...x].every(([k, t]) => t.data.every((v, i) => v === y.get(k)!.data[i]));
}

async function edgeprompt(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [repoPath('tools/edgeprompt.mjs'), ...args], { timeout: 300_000 });
    return { code: 0, stderr: '' };
  } catch (e) {
    const x = e as { code: number; stderr: string };
    return { code: x.code, stderr: x.stderr };
  }
}

test('bad input is one line and exit 2: unknown source kind, held-out line in a source, empty source, duplicate names', async (t) => {
  t.timeout(10 * 60_000); // two real processes; slow only when the machine is shared
  mkdirSync(join(root, 'empty'), { recursive: true });
  const cases: [string, object, RegExp][] = [
    ['kind', tiny({ sources: [{ name: 'web', kind: 'laion', weight: 1 }] }), /sources\.0\.kind: unknown source kind "laion"; known: parts, fashion-mnist, image-folder/],
    ['held', tiny({ sources: [{ ...tiny().sources[0], designs: ['plate', 'bracket'] }] }), /sources\.0 \(parts\): designs include "bracket", the heldOut line's design/],
    ['mixed', tiny({ sources: [{ ...tiny().sources[0], finishes: ['mixed'] }] }), /finish "mixed" draws "blue-anodised"/],
    ['random', tiny({ heldOut: { part: 'hex', material: 'blue-anodised' }, sources: [{ ...tiny().sources[0], designs: ['random'] }] }), /the "random" design draws shapes like "hex"/],
    ['empty', tiny({ sources: [{ name: 'mine', kind: 'image-folder', weight: 1, root: join(root, 'empty') }] }), /empty|no class/i],
    ['dup', tiny({ sources: [tiny().sources[0], tiny().sources[0]] }), /two sources are named "parts"/],
    ['val-is-bench', tiny({ validation: { part: 'bracket', material: 'blue-anodised' } }), /validation: bracket × blue-anodised is the benchmark line \(heldOut\)/],
    ['val-drawn', tiny({ validation: { part: 'plate', material: 'black-oxide' } }), /sources\.0 \(parts\): designs include "plate", the validation line's design/],
  ];
  const config = (name: string, cfg: object) => writeConfig(`bad-${name}`, { ...cfg, output: { dir: join(root, `bad-${name}`) } });
  // As the user sees it (the real command, exit code and stderr) for two; the rest in process.
  for (const [name, cfg, re] of cases.slice(0, 2)) {
    const r = await edgeprompt('pretrain', '-c', config(name, cfg), '--progress', 'none');
    t.is(r.code, 2, `${name}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('npm warn'));
    t.is(lines.length, 1, `${name}: one line, got:\n${r.stderr}`);
    t.regex(lines[0]!, /^edgeprompt: error \[CONFIG_INVALID\]: /);
    t.regex(lines[0]!, re, name);
  }
  for (const [name, cfg, re] of cases.slice(2)) {
    const e = await t.throwsAsync<Error & { code: string }>(pretrainCommand({ ...quiet, config: config(name, cfg) }), undefined, name);
    t.is(e.code, name === 'empty' ? 'DATA_INVALID' : 'CONFIG_INVALID', name); // bad input either way: exit 2
    t.regex(e.message, re, name);
  }
});
