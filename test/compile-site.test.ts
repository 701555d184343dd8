// Site data beside the training data (compiler/data/site.ts): an export folder's frames are mapped
// onto the training classes, a stratified share held out for validation, the rest repeated to the
// configured share of the training split (k-shot applies to the original data only); an unknown
// class, a missing or malformed manifest are refused naming the file or the class.

import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { mixSiteData } from '../compiler/data/site.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { EXPORT_KIND, type ExportedFrame, type ExportManifest } from '../runtime/schema/data-export.ts';
import { syntheticSet, tempDir } from './helpers/images.ts';
import { splitFraction } from '../compiler/data/sampling.ts';

/** A data export folder with `counts[class]` frames of solid colour. */
async function writeExport(dir: string, counts: Record<string, number>): Promise<void> {
  const frames: ExportedFrame[] = [];
  let seq = 0;
  for (const [cls, n] of Object.entries(counts)) {
    await mkdir(join(dir, cls), { recursive: true });
    for (let i = 0; i < n; i++) {
      const file = `${cls}/d1_E_${seq}.png`;
      await sharp(Buffer.alloc(8 * 8 * 3, 40 + seq), { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(join(dir, file));
      frames.push({
        file,
        class: cls,
        decision: cls === 'a' ? 'OK' : 'NG',
        device: 'd1',
        camera: 'cam',
        seqEpoch: 'E',
        seq: seq++,
        captureTs: '2026-12-10T10:00:00.000Z',
        model: { name: 'm', version: '1', sha256: 'a'.repeat(64) },
        release: 1,
        predicted: { label: 'a', score: 0.6, decision: 'OK' },
        reasons: ['uncertain'],
        label: { source: 'review', by: 'anna', ts: '2026-12-10T10:05:00.000Z' },
      });
    }
  }
  const m: ExportManifest = { kind: EXPORT_KIND, v: 1, createdAt: '2026-12-10T11:00:00.000Z', source: 'test', since: null, reviewedOnly: true, classes: counts, frames, skipped: {} };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
}

test('site frames: held-out share to validation, the rest repeated to the asked share; k-shot on the original only', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeExport(join(dir, 'x1'), { a: 4, b: 8 });
  const split = splitFraction(syntheticSet({ a: 40, b: 40, c: 40 }, 8), 0.25, 0);
  const mixed = await mixSiteData(split, { dirs: ['x1'], share: 0.5, valFraction: 0.25 }, { baseDir: dir, seed: 1, kShot: 10 });
  t.log(mixed.note);
  t.deepEqual(mixed.counts, { train: 9, val: 3, repeat: 3, share: 27 / 57 }, '1 + 2 held out; 10-shot × 3 classes = 30 originals, 9 site frames × 3');
  t.is(mixed.split.train.samples.length, 30 + 27);
  t.is(mixed.split.val.samples.length, split.val.samples.length + 3);
  t.deepEqual(mixed.split.train.classes, ['a', 'b', 'c']);
  const site = mixed.split.train.samples.filter((s) => s.source.startsWith('site:'));
  t.true(site.every((s) => s.image.length === 8 * 8 * 3));
  t.deepEqual(new Set(site.map((s) => s.label)), new Set([0, 1]));
  const once = await mixSiteData(split, { dirs: ['x1'], share: null, valFraction: 0 }, { baseDir: dir, seed: 1 });
  t.is(once.split.train.samples.length, split.train.samples.length + 12);
});

test('site frames: an unknown class, a missing folder and a malformed manifest are refused, naming them', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeExport(join(dir, 'x2'), { a: 2, burr: 3 });
  const split = splitFraction(syntheticSet({ a: 4, b: 4 }, 8), 0.25, 0);
  const e1 = await t.throwsAsync(mixSiteData(split, { dirs: ['x2'], share: null, valFraction: 0.25 }, { baseDir: dir, seed: 0 }), { instanceOf: CompilerError });
  t.regex(e1!.message, /classes the training data does not: "burr" \(3\).*a, b/);
  const e2 = await t.throwsAsync(mixSiteData(split, { dirs: ['nope'], share: null, valFraction: 0.25 }, { baseDir: dir, seed: 0 }), { instanceOf: CompilerError });
  t.is(e2!.code, 'FILE_NOT_FOUND');
  t.regex(e2!.message, /nope\/manifest\.json.*edgeprompt data export/);
  await mkdir(join(dir, 'x3'));
  await writeFile(join(dir, 'x3', 'manifest.json'), JSON.stringify({ kind: EXPORT_KIND, v: 1 }));
  const e3 = await t.throwsAsync(mixSiteData(split, { dirs: ['x3'], share: null, valFraction: 0.25 }, { baseDir: dir, seed: 0 }), { instanceOf: CompilerError });
  t.regex(e3!.message, /x3\/manifest\.json: not a data export manifest: createdAt/);
});
