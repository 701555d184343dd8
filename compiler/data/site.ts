/**
 * Frames from the line beside the original training data (compile config `site`, docs/data-loop.md
 * "Re-tune"): folders written by `edgeprompt data export` are read (manifest first: every image it
 * names, nothing else), their classes mapped onto the training data's classes, a stratified share
 * held out for validation (so the new release is measured on the line's own frames too), and the
 * rest mixed into the training split: repeated so that they make `share` of it, or once each.
 * k-shot sampling applies to the original data only: the site frames are what the line taught.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ExportManifest } from '../../runtime/schema/data-export.ts';
import { hashString, mixSeed, mulberry32, permutation } from '../../devices/rng.ts';
import { CompilerError } from '../ops/errors.ts';
import { DataError } from './errors.ts';
import { decodeImage, mapLimit } from './image-folder.ts';
import { kShot } from './sampling.ts';
import type { LabeledSet, Sample, Split } from './types.ts';

export interface SiteConfig {
  dirs: string[];
  /** Share of the training images drawn from site frames; null: each site frame once. */
  share: number | null;
  /** Site frames held out per class for validation. */
  valFraction: number;
}

export interface SiteMix {
  split: Split;
  /** What was mixed, in one line for the progress log. */
  note: string;
  counts: { train: number; val: number; repeat: number; share: number };
}

/** The original split with the site frames mixed in (k-shot applied to the original training data first). */
export async function mixSiteData(split: Split, site: SiteConfig, o: { baseDir: string; kShot?: number; seed: number }): Promise<SiteMix> {
  const classes = split.train.classes;
  const samples: Sample[] = [];
  const unknown = new Map<string, number>();
  for (const d of site.dirs) {
    const dir = resolve(o.baseDir, d);
    const file = join(dir, 'manifest.json');
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new CompilerError(code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'BAD_FILE', `${file}: ${code === 'ENOENT' ? 'no such file; site.dirs names folders written by `edgeprompt data export`' : `not JSON (${(e as Error).message})`}`);
    }
    const m = ExportManifest.safeParse(raw);
    if (!m.success) throw new CompilerError('DATA_INVALID', `${file}: not a data export manifest: ${m.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    const known = m.data.frames.filter((f) => {
      if (classes.includes(f.class)) return true;
      unknown.set(f.class, (unknown.get(f.class) ?? 0) + 1);
      return false;
    });
    const images = await mapLimit(known, 4, async (f) => {
      try {
        return await decodeImage(join(dir, f.file), split.train.size, 'stretch');
      } catch (e) {
        throw new CompilerError('BAD_FILE', `${join(dir, f.file)} (named in ${file}): ${(e as Error).message}`);
      }
    });
    known.forEach((f, i) => samples.push({ image: images[i]!, label: classes.indexOf(f.class), source: `site:${join(d, f.file)}` }));
  }
  if (unknown.size > 0) {
    const list = [...unknown].map(([c, n]) => `"${c}" (${n})`).join(', ');
    throw new DataError('CLASS_MISMATCH', `site data has classes the training data does not: ${list}; the model's classes are ${classes.join(', ')}. Relabel those frames, or add the class to the training data`);
  }
  if (samples.length === 0) throw new DataError('NO_CLASSES', `site.dirs (${site.dirs.join(', ')}) hold no frames`);

  // Stratified hold-out per class, seeded by (seed, class): round(n·valFraction), a class of one stays in training.
  const siteTrain: Sample[] = [];
  const siteVal: Sample[] = [];
  classes.forEach((cls, c) => {
    const of = samples.filter((s) => s.label === c);
    const nVal = of.length < 2 ? 0 : Math.min(of.length - 1, Math.round(of.length * site.valFraction));
    permutation(of.length, mulberry32(mixSeed(o.seed, hashString(cls), 3))).forEach((p, i) => (i < nVal ? siteVal : siteTrain).push(of[p]!));
  });
  const original = o.kShot ? kShot(split.train, o.kShot, o.seed) : split.train;
  const nOrig = original.samples.length;
  const repeat = site.share === null || siteTrain.length === 0 ? 1 : Math.max(1, Math.round(((site.share / (1 - site.share)) * nOrig) / siteTrain.length));
  const trainSamples = [...original.samples];
  for (let r = 0; r < repeat; r++) trainSamples.push(...siteTrain);
  const train: LabeledSet = { ...original, name: `${original.name}+site`, samples: trainSamples };
  const val: LabeledSet = { ...split.val, name: `${split.val.name}+site`, samples: [...split.val.samples, ...siteVal] };
  const share = (repeat * siteTrain.length) / trainSamples.length;
  const note = `site data: ${samples.length} frames from ${site.dirs.length} export(s); ${siteTrain.length} train${repeat > 1 ? ` ×${repeat}` : ''} (${(100 * share).toFixed(0)} % of ${trainSamples.length} training images), ${siteVal.length} added to validation`;
  return { split: { train, val }, note, counts: { train: siteTrain.length, val: siteVal.length, repeat, share } };
}
