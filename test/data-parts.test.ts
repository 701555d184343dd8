// The generated defect-inspection set: determinism, files and manifest, visible defects, the CLI.

import test from 'ava';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { CompilerError } from '../compiler/ops/errors.ts';
import { Command } from 'commander';
import { addDataCommands } from '../cli/data.ts';
import { loadImageFolder, toRgb } from '../compiler/data/image-folder.ts';
import { createHash } from 'node:crypto';
import { drawScene, PART_CLASSES, PART_KINDS, type PartClass } from '../compiler/data/parts-scene.ts';
import { solid } from '../compiler/data/parts-designs.ts';
import { defectCells, flipCells, poolCells } from '../compiler/data/parts-cells.ts';
import { RANDOM_FINISH_EXCLUDED_HUES, hueOf } from '../compiler/data/parts-finishes.ts';
import { PARTS_VERSION, makePartsSet, readPartsManifest, renderScene, writePartsSet } from '../compiler/data/parts.ts';
import { hashString, mixSeed, mulberry32 } from '../devices/rng.ts';
import { classCounts } from '../compiler/data/sampling.ts';
import { tempDir } from './helpers/images.ts';

let root = '';
let cleanup = async (): Promise<void> => {};
test.before(async () => ({ dir: root, cleanup } = await tempDir('ep-parts-')));
test.after.always(() => cleanup());

const bytesOf = (s: { samples: { image: Uint8Array }[] }): Buffer => Buffer.concat(s.samples.map((x) => x.image));

test('same seed → identical bytes; another seed → different; a larger perClass extends a smaller one', async (t) => {
  const a = await makePartsSet({ perClass: 2, size: 32, seed: 11 });
  const b = await makePartsSet({ perClass: 2, size: 32, seed: 11, concurrency: 1 });
  const c = await makePartsSet({ perClass: 2, size: 32, seed: 12 });
  t.deepEqual(a.classes, ['dent', 'missing_hole', 'ok', 'scratch', 'stain']);
  t.deepEqual(classCounts(a), { dent: 2, missing_hole: 2, ok: 2, scratch: 2, stain: 2 });
  t.true(bytesOf(a).equals(bytesOf(b)));
  t.false(bytesOf(a).equals(bytesOf(c)));
  t.is(new Set(a.samples.map((s) => Buffer.from(s.image).toString('base64'))).size, 10, 'every image differs');
  const three = await makePartsSet({ perClass: 3, size: 32, seed: 11, classes: ['ok', 'dent'] });
  const prefix = three.samples.filter((s) => !s.source.endsWith(':2'));
  t.deepEqual(prefix.map((s) => s.image), a.samples.filter((s) => ['ok', 'dent'].includes(a.classes[s.label]!)).map((s) => s.image));
});

test('written PNGs + manifest; loading them at 32 px equals the in-memory set rendered at 64', async (t) => {
  const dir = join(root, 'set');
  const m = await writePartsSet(dir, { perClass: 2, size: 64, seed: 3, classes: ['stain', 'ok', 'scratch'] });
  t.deepEqual((await readdir(dir)).sort(), ['manifest.json', 'ok', 'scratch', 'stain']);
  t.deepEqual(await readdir(join(dir, 'stain')), ['stain_0000.png', 'stain_0001.png']);
  t.deepEqual(await readPartsManifest(dir), m);
  t.like(m, { generator: 'edgeprompt-parts', version: PARTS_VERSION, part: 'plate', material: 'steel', seed: 3, size: 64, perClass: 2, classes: { ok: 2, scratch: 2, stain: 2 } });
  const meta = await sharp(join(dir, 'ok', 'ok_0001.png')).metadata();
  t.like(meta, { format: 'png', width: 64, height: 64, channels: 3 });

  // Byte-identical files from a second run with the same seed.
  const again = join(root, 'again');
  await writePartsSet(again, { perClass: 2, size: 64, seed: 3, classes: ['stain', 'ok', 'scratch'] });
  for (const f of ['ok/ok_0000.png', 'stain/stain_0001.png', 'manifest.json']) t.true((await readFile(join(dir, f))).equals(await readFile(join(again, f))), f);

  const loaded = await loadImageFolder(dir, { size: 32 });
  const memory = await makePartsSet({ perClass: 2, size: 32, renderSize: 64, seed: 3, classes: ['stain', 'ok', 'scratch'] });
  t.deepEqual(loaded.classes, memory.classes);
  t.true(bytesOf(loaded).equals(bytesOf(memory)));
});

test('every defect is visible at 32 px and local: it changes a few pixels by ≥ 30 levels', async (t) => {
  // Each defect scene against the same scene (same noise) without its defect, both rendered at
  // 64 and resized to the model's 32 as training loads them.
  const to32 = (img: Uint8Array): Promise<Uint8Array> => toRgb(sharp(img, { raw: { width: 64, height: 64, channels: 3 } }), 32, 'center-crop');
  for (const cls of ['scratch', 'dent', 'stain', 'missing_hole'] as const) {
    for (let i = 0; i < 6; i++) {
      const scene = drawScene(mulberry32(mixSeed(1, hashString(cls), i)), cls);
      const clean = { ...scene, defect: {}, part: { ...scene.part, missing: -1 } };
      const [a, b] = await Promise.all([renderScene(scene, 64, 5).then(to32), renderScene(clean, 64, 5).then(to32)]);
      let max = 0;
      let changed = 0;
      for (let p = 0; p < 32 * 32; p++) {
        const d = Math.max(...[0, 1, 2].map((c) => Math.abs(a[p * 3 + c]! - b[p * 3 + c]!)));
        max = Math.max(max, d);
        if (d > 10) changed++;
      }
      t.true(max >= 30, `${cls} ${i}: strongest change ${max} levels`);
      t.true(changed >= 3 && changed <= 64, `${cls} ${i}: ${changed} pixels changed by > 10`);
    }
  }
});

test('a line makes one design and finish: part and material set every scene; mixed varies the finish', async (t) => {
  const scenes = (line: Parameters<typeof drawScene>[2]) => Array.from({ length: 30 }, (_, i) => drawScene(mulberry32(mixSeed(4, i)), 'ok', line));
  for (const part of ['plate', 'flange', 'bracket'] as const) t.true(scenes({ part, material: 'brass' }).every((s) => s.part.shape.kind === part));
  const finishes = (line: Parameters<typeof drawScene>[2]) => new Set(scenes(line).map((s) => s.part.light.join()));
  // The tint jitters a finish slightly; its light colour stays within ±10 of the base.
  const steel = scenes({ part: 'plate', material: 'steel' }).map((s) => s.part.light);
  t.true(steel.every((c) => Math.abs(c[0] - 205) <= 10 && Math.abs(c[2] - 220) <= 10));
  t.true(finishes({ part: 'plate', material: 'mixed' }).size > 1);
  const mixedBases = new Set(scenes({ part: 'plate', material: 'mixed' }).map((s) => Math.round(s.part.light[2] / 40)));
  t.true(mixedBases.size >= 3, 'mixed spans several finishes');
  await t.throwsAsync(makePartsSet({ perClass: 1, size: 32, seed: 0, material: 'chrome' as never }), { instanceOf: CompilerError, message: /^material: expected one of steel, aluminium, brass, blue-anodised, red-anodised, copper, black-oxide, zinc-yellow, green-anodised, mixed, random, got "chrome"$/ });
});

test('scenes: only the named defect is drawn; missing_hole drops one hole and never a flange bore', (t) => {
  for (const cls of PART_CLASSES) {
    for (let i = 0; i < 50; i++) {
      const s = drawScene(mulberry32(mixSeed(2, hashString(cls), i)), cls);
      const drawn = Object.keys(s.defect);
      t.deepEqual(drawn, cls === 'ok' || cls === 'missing_hole' ? [] : [cls as Exclude<PartClass, 'ok' | 'missing_hole'>]);
      if (cls === 'missing_hole') {
        t.true(s.part.missing >= 0 && s.part.missing < s.part.holes.length);
        if (s.part.shape.kind === 'flange') t.not(s.part.missing, 0);
      } else {
        t.is(s.part.missing, -1);
      }
    }
  }
});

test('make-parts through the CLI command: writes the set, refuses a used folder unless --force', async (t) => {
  const out = join(root, 'cli');
  const run = (...args: string[]): Promise<unknown> => {
    const program = new Command('edgeprompt').exitOverride();
    addDataCommands(program);
    return program.parseAsync(['data', 'make-parts', '--out', out, ...args], { from: 'user' });
  };
  const log = console.log;
  console.log = () => {};
  t.teardown(() => (console.log = log));
  await run('--per-class', '3', '--size', '32', '--seed', '5', '--classes', 'ok,stain');
  t.deepEqual((await readdir(out)).sort(), ['manifest.json', 'ok', 'stain']);
  t.is((await readdir(join(out, 'ok'))).length, 3);

  const used = await t.throwsAsync(run('--per-class', '2', '--size', '32'), { instanceOf: CompilerError });
  t.regex(used.message, /exists and is not empty; choose another --out or pass --force/);

  // --force removes the generator's own files (stale classes and indices) and nothing else.
  await writeFile(join(out, 'ok', 'notes.txt'), 'mine');
  await run('--per-class', '2', '--size', '32', '--classes', 'ok', '--force');
  t.deepEqual((await readdir(out)).sort(), ['manifest.json', 'ok']);
  t.deepEqual((await readdir(join(out, 'ok'))).sort(), ['notes.txt', 'ok_0000.png', 'ok_0001.png']);
  t.like(await readPartsManifest(out), { perClass: 2, classes: { ok: 2 }, seed: 0, pose: 'fixtured', lighting: 'line' });
  await run('--per-class', '1', '--size', '32', '--classes', 'ok', '--part', 'random', '--material', 'random', '--pose', 'free', '--lighting', 'varied', '--force');
  t.like(await readPartsManifest(out), { part: 'random', material: 'random', pose: 'free', lighting: 'varied' });

  const bad: [string[], RegExp][] = [
    [['--per-class', '0'], /--per-class: expected an integer ≥ 1, got "0"/],
    [['--size', 'big'], /--size: expected an integer ≥ 8, got "big"/],
    [['--classes', 'ok,crack', '--force'], /unknown parts class "crack"; known: ok, scratch, dent, missing_hole, stain/],
    [['--part', 'gear', '--force'], /--part: expected one of plate, flange, bracket, hex, strip, triangle, random, got "gear"/],
    [['--pose', 'tilted', '--force'], /--pose: expected one of fixtured, free, got "tilted"/],
    [['--material', 'gold', '--force'], /--material: expected one of steel, aluminium, brass, blue-anodised, red-anodised, copper, black-oxide, zinc-yellow, green-anodised, mixed, random, got "gold"/],
  ];
  for (const [args, re] of bad) t.regex((await t.throwsAsync(run(...args), { instanceOf: CompilerError })).message, re, args.join(' '));
  const file = join(out, 'manifest.json');
  const asFile = new Command('edgeprompt').exitOverride();
  addDataCommands(asFile);
  const e = await t.throwsAsync(asFile.parseAsync(['data', 'make-parts', '--out', file], { from: 'user' }), { instanceOf: CompilerError });
  t.true(e.message.startsWith(`${file}: cannot be used as the output folder`), e.message);
});

test('a broken manifest is an error naming the file and field', async (t) => {
  const dir = join(root, 'bad-manifest');
  await mkdir(dir, { recursive: true });
  t.is((await t.throwsAsync(readPartsManifest(dir), { instanceOf: CompilerError })).code, 'FILE_NOT_FOUND');
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ generator: 'edgeprompt-parts', version: 1, seed: 'x' }));
  const e = await t.throwsAsync(readPartsManifest(dir), { instanceOf: CompilerError });
  t.is(e.code, 'BAD_FILE');
  t.regex(e.message, /manifest\.json: field "seed"/);
});

test('version-2 lines keep their scenes: new designs, finishes and loose lines add draws only where asked', (t) => {
  // The hash of 1,800 scenes of every version-2 line (3 designs × 6 finishes × 5 classes × 20)
  // as drawn by the generator before the factory options were added (commit 8ed022f); the bore
  // flag is new bookkeeping that draws nothing. A change here changes images: bump PARTS_VERSION.
  const h = createHash('sha256');
  for (const part of ['plate', 'flange', 'bracket'] as const)
    for (const material of ['steel', 'aluminium', 'brass', 'blue-anodised', 'red-anodised', 'mixed'] as const)
      for (const cls of ['ok', 'scratch', 'dent', 'missing_hole', 'stain'] as const)
        for (let i = 0; i < 20; i++) h.update(JSON.stringify(drawScene(mulberry32(mixSeed(7, hashString(cls), i)), cls, { part, material }), (k, v: unknown) => (k === 'bore' ? undefined : v)));
  t.is(h.digest('hex'), 'ba1b7e6750f0c978fc44eed9ee300101119db0e29f8e5d0a65b708a0bcac82f3');
  t.is(PARTS_VERSION, 2);
});

test('every design: holes sit on solid metal, missing_hole drops one non-bore hole, defects land on the part', (t) => {
  for (const part of PART_KINDS) {
    for (let i = 0; i < 40; i++) {
      const cls = PART_CLASSES[i % PART_CLASSES.length]!;
      const s = drawScene(mulberry32(mixSeed(9, hashString(part), i)), cls, { part, material: 'random', pose: 'free', lighting: 'varied' });
      const { shape, holes } = s.part;
      for (const hole of holes) t.true(solid(shape, hole.x, hole.y, hole.r * 0.9), `${part} ${i}: hole at (${hole.x.toFixed(1)}, ${hole.y.toFixed(1)}) r ${hole.r.toFixed(1)} leaves the metal`);
      t.true(holes.filter((x) => !x.bore).length >= 2, `${part} ${i}: a pattern needs at least 2 holes`);
      if (cls === 'missing_hole') t.false(holes[s.part.missing]!.bore === true, `${part} ${i}: a bore went missing`);
      const mark = s.defect.scratch?.ctrl ?? (s.defect.dent && [s.defect.dent.x, s.defect.dent.y]) ?? s.defect.stain?.points[0];
      // (The original designs keep version 2's rare fallback point, which can miss a narrow bracket arm.)
      if (mark && !s.defect.stain && !['plate', 'flange', 'bracket'].includes(part)) t.true(solid(shape, mark[0], mark[1], 0), `${part} ${i}: ${cls} off the part`);
    }
  }
  // `random` never draws an L- or T-shaped part (the held-out bracket design).
  const kinds = new Set(Array.from({ length: 200 }, (_, i) => drawScene(mulberry32(mixSeed(3, i)), 'ok', { part: 'random', material: 'steel' }).part.shape.kind));
  t.false(kinds.has('bracket'));
  t.true(kinds.size >= 3, `random draws several outline families: ${[...kinds].join(', ')}`);
});

test('random finishes avoid the blue band; free and varied lines widen pose and light', (t) => {
  const [lo, hi] = RANDOM_FINISH_EXCLUDED_HUES;
  const lights = Array.from({ length: 300 }, (_, i) => drawScene(mulberry32(mixSeed(5, i)), 'ok', { part: 'hex', material: 'random' }).part.light);
  const saturated = lights.filter((c) => Math.max(...c) - Math.min(...c) > 90); // the ±10 tint moves these hues by < 15°
  t.true(saturated.length > 50, `${saturated.length} saturated finishes`);
  const blue = saturated.filter((c) => { const h = hueOf(c); return h > lo + 15 && h < hi - 15; });
  t.deepEqual(blue, [], 'no saturated random finish is blue');
  t.true(new Set(lights.map((c) => Math.round(hueOf(c) / 30))).size >= 8, 'random finishes span the other hues');
  const scenes = (line: Parameters<typeof drawScene>[2]) => Array.from({ length: 200 }, (_, i) => drawScene(mulberry32(mixSeed(6, i)), 'ok', line));
  const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
  const fixed = scenes({ part: 'strip', material: 'steel' });
  const loose = scenes({ part: 'strip', material: 'steel', pose: 'free', lighting: 'varied' });
  t.true(fixed.every((s) => Math.abs(s.part.rotation) <= 15) && spread(loose.map((s) => s.part.rotation)) > 300);
  t.true(spread(fixed.map((s) => s.light.angle)) <= 80 && spread(loose.map((s) => s.light.angle)) > 300);
  t.true(spread(loose.map((s) => s.part.x)) > spread(fixed.map((s) => s.part.x)) * 1.5);
});

test('defects stay visible on the new designs at 64 px', async (t) => {
  for (const part of ['hex', 'strip', 'triangle', 'random'] as const) {
    for (const cls of ['scratch', 'dent', 'stain', 'missing_hole'] as const) {
      for (let i = 0; i < 2; i++) {
        const scene = drawScene(mulberry32(mixSeed(8, hashString(part + cls), i)), cls, { part, material: 'random', pose: 'free', lighting: 'varied' });
        const clean = { ...scene, defect: {}, part: { ...scene.part, missing: -1 } };
        const [a, b] = await Promise.all([renderScene(scene, 64, 5), renderScene(clean, 64, 5)]);
        let max = 0;
        for (let p = 0; p < a.length; p++) max = Math.max(max, Math.abs(a[p]! - b[p]!));
        t.true(max >= 30, `${part} ${cls} ${i}: strongest change ${max} levels`);
      }
    }
  }
});

test('defect cells: every defect of a new design shows in some cell, ok shows none; pooling and flipping keep them', (t) => {
  for (const part of ['hex', 'strip', 'triangle', 'random'] as const) {
    for (const cls of PART_CLASSES) {
      for (let i = 0; i < 60; i++) {
        const s = drawScene(mulberry32(mixSeed(11, hashString(part + cls), i)), cls, { part, material: 'random', pose: 'free' });
        const n = defectCells(s).reduce((a, v) => a + v, 0);
        if (cls === 'ok') t.is(n, 0);
        else t.true(n >= 1 && n <= 40, `${part} ${cls} ${i}: ${n} of 256 cells`);
      }
    }
  }
  // The benchmark line (version 2's bracket) keeps its rare invisible dent: its point falls back into a hole.
  const hidden = Array.from({ length: 500 }, (_, i) => defectCells(drawScene(mulberry32(mixSeed(12, i)), 'dent', { part: 'bracket', material: 'blue-anodised' }))).filter((c) => c.every((v) => v === 0)).length;
  t.true(hidden <= 15, `${hidden} of 500 bracket dents hidden`);
  const cells = new Uint8Array(256);
  cells[0] = 1; // top-left sub-cell
  cells[15 * 16 + 9] = 1; // bottom row, right half
  t.deepEqual([...poolCells(cells, 8)].flatMap((v, i) => (v ? [i] : [])), [0, 7 * 8 + 4]);
  t.deepEqual([...flipCells(poolCells(cells, 8), 8)].flatMap((v, i) => (v ? [i] : [])), [7, 7 * 8 + 3]);
  // The cells follow the part's placement: a scratch drawn on the right half of the image marks right-half cells.
  const s = drawScene(mulberry32(1), 'scratch', { part: 'strip', material: 'steel' });
  const right = { ...s, part: { ...s.part, x: 80 } };
  const cols = (c: Uint8Array) => [...c].flatMap((v, i) => (v ? [i % 16] : []));
  t.true(Math.min(...cols(defectCells(right))) > Math.min(...cols(defectCells(s))));
});
