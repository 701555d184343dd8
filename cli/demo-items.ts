/**
 * The items passing the demo's camera: a committed sheet (one row of RGB tiles, PNG) and its JSON
 * (class names, each item's class and origin), so `npm run demo` needs no dataset on the machine.
 * `demo --rebuild` writes the sheet again from its source:
 * - `fashion-mnist`: test-split images (MIT licence, Zalando Research) after the first
 *   `skipPerClass` of each class (the compile step validates on those);
 * - `parts`: generated parts of one line, from index `firstIndex` on, so none of them is one the
 *   model trained or validated on (a parts set of perClass P uses indices 0 … P−1).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { z } from 'zod';
import { CompilerError } from '../compiler/ops/errors.ts';
import { PART_CLASSES, renderPart } from '../compiler/data/parts.ts';
import { MATERIAL_NAMES, PART_KINDS } from '../compiler/data/parts-scene.ts';
import { mapLimit, toRgb } from '../compiler/data/image-folder.ts';
import { mulberry32, shuffleInPlace } from '../devices/rng.ts';
import { loadFashionMnist } from '../compiler/data/fashion-mnist.ts';
import { indicesByClass } from '../compiler/data/sampling.ts';

const int = z.number().int();

export const ItemsSource = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('fashion-mnist'), classes: z.array(int.min(0).max(9)).min(2), skipPerClass: int.min(0), seed: int }),
  z.strictObject({
    kind: z.literal('parts'),
    part: z.enum(PART_KINDS),
    material: z.enum(MATERIAL_NAMES),
    /** The generator's seed (the compile config's data.seed). */
    seed: int,
    /** First index drawn per class: at least the compile config's data.perClass. */
    firstIndex: int.min(0),
    size: int.positive(),
    renderSize: int.positive().optional(),
    /** Order of the items on the line. */
    shuffleSeed: int.default(7),
  }),
]);
export type ItemsSource = z.output<typeof ItemsSource>;

/** The JSON beside the sheet. */
export const LineItemsMeta = z.object({
  source: z.string(),
  classes: z.array(z.string()).min(1),
  /** Per item, in line order: its class index. */
  labels: z.array(int.min(0)),
  /** Per item: where it came from (test-split index, or parts index), for the curious. */
  indices: z.array(int.min(0)),
  /** Side of each tile. */
  size: int.positive(),
});
export type LineItemsMeta = z.infer<typeof LineItemsMeta>;

const metaFile = (png: string) => png.replace(/\.png$/, '.json');

/** Tiles (RGB, size×size) into one row, stored grey when every pixel is (Fashion-MNIST: a third of the bytes). */
async function writeSheet(png: string, tiles: readonly Uint8Array[], S: number): Promise<void> {
  const W = tiles.length * S;
  const grey = tiles.every((t) => t.every((v, i) => i % 3 !== 0 || (t[i + 1] === v && t[i + 2] === v)));
  const ch = grey ? 1 : 3;
  const sheet = new Uint8Array(W * S * ch);
  tiles.forEach((t, k) => {
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) for (let c = 0; c < ch; c++) sheet[(y * W + k * S + x) * ch + c] = t[(y * S + x) * 3 + c]!;
  });
  await sharp(sheet, { raw: { width: W, height: S, channels: ch } }).png({ compressionLevel: 9 }).toFile(png);
}

/** Draws `perClass` items per class from `source`, shuffled into line order, and writes the sheet and its JSON. */
export async function writeLineItems(png: string, source: ItemsSource, perClass: number): Promise<LineItemsMeta> {
  let meta: LineItemsMeta;
  let tiles: Uint8Array[];
  if (source.kind === 'fashion-mnist') {
    const set = loadFashionMnist({ split: 'test', classes: source.classes });
    const picks = shuffleInPlace(indicesByClass(set).flatMap((idx) => idx.slice(source.skipPerClass, source.skipPerClass + perClass)), mulberry32(source.seed));
    tiles = picks.map((p) => set.samples[p]!.image);
    meta = { source: 'Fashion-MNIST test split (t10k), MIT licence, Zalando Research', classes: set.classes, labels: picks.map((p) => set.samples[p]!.label), indices: picks.map((p) => Number(set.samples[p]!.source.split(':').at(-1))), size: set.size };
  } else {
    const order = shuffleInPlace(PART_CLASSES.flatMap((_, c) => Array.from({ length: perClass }, (_, i) => ({ c, i: source.firstIndex + i }))), mulberry32(source.shuffleSeed));
    const render = source.renderSize ?? source.size;
    tiles = await mapLimit(order, 4, async ({ c, i }) => {
      const img = await renderPart(source.seed, PART_CLASSES[c]!, i, render, { part: source.part, material: source.material });
      return render === source.size ? img : toRgb(sharp(img, { raw: { width: render, height: render, channels: 3 } }), source.size, 'center-crop');
    });
    meta = { source: `generated parts: ${source.part} × ${source.material}, seed ${source.seed}, indices ${source.firstIndex}–${source.firstIndex + perClass - 1} per class (edgeprompt data make-parts draws the same)`, classes: [...PART_CLASSES], labels: order.map((o) => o.c), indices: order.map((o) => o.i), size: source.size };
  }
  await writeSheet(png, tiles, meta.size);
  writeFileSync(metaFile(png), JSON.stringify(meta) + '\n');
  return meta;
}

/** The committed items: at most `perClass` of each class, in line order, as RGB tiles. */
export async function readLineItems(png: string, perClass: number): Promise<{ items: LineItemsMeta; images: Uint8Array[] }> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(metaFile(png), 'utf8'));
  } catch (e) {
    throw new CompilerError('FILE_NOT_FOUND', `${metaFile(png)}: cannot read the line items (${(e as Error).message}); run \`npm run demo -- --rebuild\` to write them`);
  }
  const parsed = LineItemsMeta.safeParse(raw);
  if (!parsed.success) throw new CompilerError('BAD_FILE', `${metaFile(png)}: not a line-items file (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}); run \`npm run demo -- --rebuild\``);
  const meta = parsed.data;
  const stored = Math.min(...meta.classes.map((_, c) => meta.labels.filter((l) => l === c).length));
  if (perClass > stored) throw new CompilerError('FLAG_INVALID', `--per-class ${perClass}: ${png} holds ${stored} items per class; ask for fewer, or run \`npm run demo -- --rebuild --per-class ${perClass}\` where its source is available`);
  const { data, info } = await sharp(png).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const S = meta.size;
  const n = info.width / S;
  if (info.height !== S || !Number.isInteger(n) || n !== meta.labels.length || info.channels !== 3) {
    throw new CompilerError('BAD_FILE', `${png}: ${info.width}×${info.height} does not hold the ${meta.labels.length} tiles of ${S} px its JSON lists; run \`npm run demo -- --rebuild\``);
  }
  const seen = new Array<number>(meta.classes.length).fill(0);
  const keep = meta.labels.flatMap((l, k) => (seen[l]!++ < perClass ? [k] : []));
  const images = keep.map((k) => {
    const img = new Uint8Array(S * S * 3);
    for (let y = 0; y < S; y++) img.set(data.subarray(((y * n + k) * S) * 3, ((y * n + k) * S + S) * 3), y * S * 3);
    return img;
  });
  return { items: { ...meta, labels: keep.map((k) => meta.labels[k]!), indices: keep.map((k) => meta.indices[k]!) }, images };
}
