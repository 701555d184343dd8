/**
 * Rendered parts lines kept on disk. Rasterising one 64 px scene through sharp/librsvg takes about
 * 6 ms on this machine (docs/bench/pretrain.md), so a 40k-image factory is minutes of CPU that a
 * second run (another candidate, a resume) should not pay again. A line's images are one raw file
 * (n × S × S × 3 bytes, in makePartsSet's order: class by class, index by index) named by the hash
 * of everything that decides its bytes: generator version and source text, line, seed, counts,
 * size, classes and the sharp/libvips build.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { PARTS_GENERATOR, PARTS_VERSION, lineName, makePartsSet, partCells, type PartClass, type PartsOptions } from '../data/parts.ts';
import type { LabeledSet } from '../data/types.ts';

export interface CachedLine {
  set: LabeledSet;
  /** True when the images came from the cache. */
  hit: boolean;
}

/**
 * The generator's own source text: any edit to the drawing (a new design's tweak that leaves
 * PARTS_VERSION alone because no released image changed) still gives new cache keys.
 */
const GENERATOR_SOURCE = createHash('sha256')
  .update(['parts.ts', 'parts-scene.ts', 'parts-designs.ts', 'parts-finishes.ts', 'parts-svg.ts', '../../devices/rng.ts'].map((f) => readFileSync(new URL(`../data/${f}`, import.meta.url), 'utf8')).join('\0'))
  .digest('hex');

export async function cachedPartsSet(dir: string, o: PartsOptions & { classes: readonly string[] }): Promise<CachedLine> {
  const key = { generator: PARTS_GENERATOR, version: PARTS_VERSION, source: GENERATOR_SOURCE, sharp: sharp.versions.sharp, vips: sharp.versions.vips, ...o, concurrency: undefined, cells: undefined };
  const hash = createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 24);
  const file = join(dir, `parts-${o.part}-${o.material}-${hash}.u8`);
  const classes = [...o.classes].sort();
  const px = o.size * o.size * 3;
  const n = classes.length * o.perClass;
  const line = { part: o.part ?? 'plate', material: o.material ?? 'steel', ...(o.pose ? { pose: o.pose } : {}), ...(o.lighting ? { lighting: o.lighting } : {}) };
  const name = `${lineName(line)}:${o.seed}`;
  if (existsSync(file)) {
    const bytes = readFileSync(file);
    if (bytes.length === n * px) {
      const all = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
      const samples = Array.from({ length: n }, (_, j) => {
        const label = Math.floor(j / o.perClass);
        const i = j % o.perClass;
        const cls = classes[label] as PartClass;
        return { image: all.subarray(j * px, (j + 1) * px), label, source: `${name}:${cls}:${i}`, ...(o.cells ? { cells: partCells(o.seed, cls, i, line) } : {}) };
      });
      return { set: { name, classes, size: o.size, samples }, hit: true };
    }
  }
  const set = await makePartsSet(o);
  mkdirSync(dir, { recursive: true });
  const out = Buffer.alloc(n * px);
  set.samples.forEach((s, j) => out.set(s.image, j * px));
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, out);
  renameSync(tmp, file);
  return { set, hit: false };
}
