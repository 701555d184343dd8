/**
 * The generated colour defect-inspection set: parts-scene.ts draws a scene from a seeded stream,
 * parts-svg.ts writes it as SVG, sharp (librsvg) rasterises it, then a seeded blur and sensor noise
 * are added. Sample i of class c depends only on (seed, c, i): a larger --per-class extends a
 * smaller one, and the same seed gives the same bytes (with the same sharp/libvips build, which the
 * manifest records).
 */
import { mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { CompilerError } from '../ops/errors.ts';
import { checkChoice, checkInt } from './errors.ts';
import { mapLimit, toRgb } from './image-folder.ts';
import { DEFAULT_LINE, LINE_LIGHTINGS, LINE_POSES, MATERIAL_NAMES, PART_CLASSES, PART_KINDS, drawScene, type Line, type LineLighting, type LinePose, type MaterialName, type PartClass, type PartKind, type Scene } from './parts-scene.ts';
import { sceneSvg } from './parts-svg.ts';
import { defectCells } from './parts-cells.ts';
import { gaussian, hashString, mixSeed, mulberry32 } from '../../devices/rng.ts';
import type { LabeledSet, Sample } from './types.ts';

export { DEFAULT_LINE, LINE_LIGHTINGS, LINE_POSES, MATERIAL_NAMES, PART_CLASSES, PART_KINDS, type Line, type LineLighting, type LinePose, type MaterialName, type PartClass, type PartKind };

export const PARTS_GENERATOR = 'edgeprompt-parts';
/** Bump when a change to the drawing changes any image for a seed. */
export const PARTS_VERSION = 2;

export interface PartsOptions {
  perClass: number;
  /** Stored side of the set's images. */
  size: number;
  seed: number;
  /** The part design on this line; default 'plate'. */
  part?: PartKind;
  /** Its finish; default 'steel' ('mixed': one of the original five per item; 'random': a new colour per item). */
  material?: MaterialName;
  /** How the line holds the part; default 'fixtured' ('free': any angle, wider offset and scale). */
  pose?: LinePose;
  /** Default 'line' ('varied': light from anywhere, wider exposure and belt colours). */
  lighting?: LineLighting;
  /** Default all of PART_CLASSES. Labels follow the sorted names, as loadImageFolder would give. */
  classes?: readonly string[];
  /**
   * Side the scene is rasterised at; default `size`. With renderSize 64 and size 32 the set equals,
   * byte for byte, `make-parts --size 64` loaded by loadImageFolder({ size: 32 }).
   */
  renderSize?: number;
  /** Images rendered at once; default 4. */
  concurrency?: number;
  /** Attach each sample's defect cells (Sample.cells); default false. */
  cells?: boolean;
}

export const PartsManifest = z.object({
  generator: z.literal(PARTS_GENERATOR),
  version: z.number().int(),
  seed: z.number().int(),
  part: z.enum(PART_KINDS),
  material: z.enum(MATERIAL_NAMES),
  pose: z.enum(LINE_POSES).default('fixtured'),
  lighting: z.enum(LINE_LIGHTINGS).default('line'),
  size: z.number().int().positive(),
  perClass: z.number().int().positive(),
  classes: z.record(z.string(), z.number().int()),
  files: z.string(),
  sharp: z.string(),
  vips: z.string(),
});
export type PartsManifest = z.infer<typeof PartsManifest>;

const NOISE_STREAM = 0x6e6f6973;

/** One sample: px×px×3 RGB uint8. */
export async function renderPart(seed: number, cls: PartClass, index: number, px: number, line: Line = DEFAULT_LINE): Promise<Uint8Array> {
  const key = mixSeed(seed, hashString(cls), index);
  return renderScene(sceneOf(seed, cls, index, line), px, mixSeed(key, NOISE_STREAM));
}

/** The scene of sample i of class cls: what renderPart draws, without drawing it. */
export function sceneOf(seed: number, cls: PartClass, index: number, line: Line = DEFAULT_LINE): Scene {
  return drawScene(mulberry32(mixSeed(seed, hashString(cls), index)), cls, line);
}

/** Where sample i's defect shows (compiler/data/parts-cells.ts): cheap, no rendering. */
export function partCells(seed: number, cls: PartClass, index: number, line: Line = DEFAULT_LINE): Uint8Array {
  return defectCells(sceneOf(seed, cls, index, line));
}

/**
 * Rasterise a scene, then blur and add sensor noise. The noise has its own seed so a scene and an
 * edited copy (say, its defect removed) get identical noise and differ only where the edit is.
 */
export async function renderScene(scene: Scene, px: number, noiseSeed: number): Promise<Uint8Array> {
  let img = sharp(Buffer.from(sceneSvg(scene, px))).removeAlpha();
  const sigma = (scene.blur * px) / 64;
  if (sigma >= 0.3) img = img.blur(sigma); // sharp's smallest σ; below it the scene stays sharp
  const { data } = await img.raw().toBuffer({ resolveWithObject: true });
  const g = gaussian(mulberry32(noiseSeed));
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Math.max(0, Math.min(255, Math.round(data[i]! + scene.noise * g())));
  return out;
}

/** The set in memory, nothing written. */
export async function makePartsSet(options: PartsOptions): Promise<LabeledSet> {
  const o = resolveOptions(options);
  const jobs = o.classes.flatMap((cls, label) => Array.from({ length: o.perClass }, (_, i) => ({ cls, label, i })));
  const samples = await mapLimit(jobs, o.concurrency, async ({ cls, label, i }): Promise<Sample> => {
    let image = await renderPart(o.seed, cls, i, o.renderSize, o);
    if (o.renderSize !== o.size) image = await toRgb(sharp(image, { raw: { width: o.renderSize, height: o.renderSize, channels: 3 } }), o.size, 'center-crop');
    return { image, label, source: `${lineName(o)}:${o.seed}:${cls}:${i}`, ...(o.cells ? { cells: partCells(o.seed, cls, i, o) } : {}) };
  });
  return { name: `${lineName(o)}:${o.seed}`, classes: [...o.classes], size: o.size, samples };
}

/**
 * Writes DIR/<class>/<class>_<i>.png and DIR/manifest.json. Refuses a non-empty DIR unless
 * `force`, which first deletes only files this generator names (<class>_<digits>.png, the manifest).
 */
export async function writePartsSet(dir: string, options: PartsOptions & { force?: boolean }): Promise<PartsManifest> {
  const o = resolveOptions(options);
  await prepareDir(dir, options.force ?? false);
  const digits = Math.max(4, String(o.perClass - 1).length);
  const name = (cls: string, i: number): string => `${cls}_${String(i).padStart(digits, '0')}.png`;
  for (const cls of o.classes) await mkdir(join(dir, cls), { recursive: true });
  const jobs = o.classes.flatMap((cls) => Array.from({ length: o.perClass }, (_, i) => ({ cls, i })));
  await mapLimit(jobs, o.concurrency, async ({ cls, i }) => {
    const raw = await renderPart(o.seed, cls, i, o.size, o);
    const png = await sharp(raw, { raw: { width: o.size, height: o.size, channels: 3 } }).png().toBuffer();
    await writeFile(join(dir, cls, name(cls, i)), png);
  });
  const manifest: PartsManifest = {
    generator: PARTS_GENERATOR,
    version: PARTS_VERSION,
    seed: o.seed,
    part: o.part,
    material: o.material,
    pose: o.pose,
    lighting: o.lighting,
    size: o.size,
    perClass: o.perClass,
    classes: Object.fromEntries(o.classes.map((c) => [c, o.perClass])),
    files: `<class>/<class>_${'#'.repeat(digits)}.png`,
    sharp: sharp.versions.sharp,
    vips: sharp.versions.vips,
  };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

export async function readPartsManifest(dir: string): Promise<PartsManifest> {
  const file = join(dir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new CompilerError('FILE_NOT_FOUND', `${file}: no such file; generate the set with \`edgeprompt data make-parts --out ${dir}\``);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CompilerError('BAD_FILE', `${file}: not JSON (${(e as Error).message})`);
  }
  const parsed = PartsManifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CompilerError('BAD_FILE', `${file}: field "${issue.path.join('.') || '(root)'}": ${issue.message}`);
  }
  return parsed.data;
}

function resolveOptions(options: PartsOptions): Required<Omit<PartsOptions, 'classes'>> & { classes: PartClass[] } {
  const size = checkInt(options.size, 'size', 8);
  const classes = [...(options.classes ?? PART_CLASSES)].sort();
  for (const c of classes) {
    if (!(PART_CLASSES as readonly string[]).includes(c)) throw new CompilerError('CONFIG_INVALID', `classes: unknown parts class "${c}"; known: ${PART_CLASSES.join(', ')}`);
  }
  if (classes.length === 0 || new Set(classes).size !== classes.length) throw new CompilerError('CONFIG_INVALID', `classes: expected distinct names from ${PART_CLASSES.join(', ')}, got [${classes.join(', ')}]`);
  return {
    perClass: checkInt(options.perClass, 'perClass', 1),
    size,
    seed: checkInt(options.seed, 'seed'),
    part: checkChoice(options.part ?? DEFAULT_LINE.part, 'part', PART_KINDS),
    material: checkChoice(options.material ?? DEFAULT_LINE.material, 'material', MATERIAL_NAMES),
    pose: checkChoice(options.pose ?? 'fixtured', 'pose', LINE_POSES),
    lighting: checkChoice(options.lighting ?? 'line', 'lighting', LINE_LIGHTINGS),
    classes: classes as PartClass[],
    renderSize: checkInt(options.renderSize ?? size, 'renderSize', 8),
    concurrency: checkInt(options.concurrency ?? 4, 'concurrency', 1),
    cells: options.cells ?? false,
  };
}

/** 'parts:<design>:<finish>', with ':free' / ':varied' when the line is not a fixtured one. */
export function lineName(l: Line): string {
  return `parts:${l.part}:${l.material}${l.pose === 'free' ? ':free' : ''}${l.lighting === 'varied' ? ':varied' : ''}`;
}

async function prepareDir(dir: string, force: boolean): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new CompilerError('OUTPUT_EXISTS', `${dir}: cannot be used as the output folder (${(e as Error).message})`);
    await mkdir(dir, { recursive: true });
    return;
  }
  if (entries.length === 0) return;
  if (!force) throw new CompilerError('OUTPUT_EXISTS', `${dir}: exists and is not empty; choose another --out or pass --force to replace a previous make-parts output`);
  await rm(join(dir, 'manifest.json'), { force: true });
  for (const cls of PART_CLASSES) {
    const sub = join(dir, cls);
    const files = await readdir(sub).catch(() => null);
    if (!files) continue;
    const ours = new RegExp(`^${cls}_\\d+\\.png$`);
    for (const file of files) if (ours.test(file)) await rm(join(sub, file));
    if (files.every((file) => ours.test(file))) await rmdir(sub);
  }
}
