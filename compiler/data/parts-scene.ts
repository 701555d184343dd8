/**
 * The generated defect-inspection scenes as data: one metal part on a conveyor belt, drawn in a
 * 100×100 view box. drawScene() takes every random decision from one seeded stream; parts-svg.ts
 * turns a scene into SVG. Distractors appear in every class (belt stains and scuffs, brushed-metal
 * streaks, dust specks) so a defect is told by its look on the part, not by any dark blob or line.
 */
import { randInt, uniform, type Rng } from '../../devices/rng.ts';
import { DESIGNS, ORIGINAL_DESIGNS, PART_KINDS, inside, missingHole, type Hole, type PartKind, type Pt, type Shape } from './parts-designs.ts';
import { FINISHES, MATERIAL_NAMES, MIXED_POOL, randomFinish, type MaterialName, type Rgb } from './parts-finishes.ts';

export { PART_KINDS, MATERIAL_NAMES, inside, type Hole, type MaterialName, type PartKind, type Pt, type Rgb, type Shape };

export const PART_CLASSES = ['ok', 'scratch', 'dent', 'missing_hole', 'stain'] as const;
export type PartClass = (typeof PART_CLASSES)[number];

export interface Scene {
  belt: { colour: Rgb; ridge: { spacing: number; phase: number; opacity: number }; specks: { x: number; y: number; r: number; light: boolean; opacity: number }[] };
  /** Off-part distractors, drawn under the part: dark smudges and light scuffs on the belt. */
  beltMarks: { blob?: Blob; scuff?: Stroke }[];
  part: {
    shape: Shape;
    /** Every hole the design has; the bore (flange centre) is never the missing one. */
    holes: Hole[];
    /** Index into holes that is absent (missing_hole), else -1. */
    missing: number;
    x: number;
    y: number;
    /** Degrees. */
    rotation: number;
    scale: number;
    dark: Rgb;
    light: Rgb;
    /** Faint brushed-metal streaks on every part. */
    streaks: Stroke[];
    specks: { x: number; y: number; r: number }[];
  };
  /** Light direction, degrees in image space (0 = from the right). */
  light: { angle: number; highlight: number; shade: number; exposure: number };
  shadow: { dx: number; dy: number; opacity: number; blur: number };
  defect: { scratch?: Stroke; dent?: Dent; stain?: Blob };
  /** Gaussian blur σ and noise σ (grey levels) at 64 px; renderers scale blur by size/64. */
  blur: number;
  noise: number;
}

export interface Stroke {
  from: Pt;
  ctrl: Pt;
  to: Pt;
  width: number;
  colour: Rgb;
  opacity: number;
}

export interface Dent {
  x: number;
  y: number;
  rx: number;
  ry: number;
  /** Degrees, in part coordinates. */
  rotation: number;
  depth: number;
}

export interface Blob {
  points: Pt[];
  colour: Rgb;
  opacity: number;
}

/**
 * What the line makes: the part design and its finish, and how tightly the line holds pose and
 * lighting. `fixtured` / `line` (the defaults) are a real line's: the part within a few units and
 * ±15°, light from the upper left. `free` / `varied` widen both (any angle, larger offsets and
 * scale, light from anywhere, wider exposure and belt colours) for pretraining sources.
 */
export interface Line {
  part: PartKind;
  material: MaterialName;
  pose?: LinePose;
  lighting?: LineLighting;
}
export const LINE_POSES = ['fixtured', 'free'] as const;
export type LinePose = (typeof LINE_POSES)[number];
export const LINE_LIGHTINGS = ['line', 'varied'] as const;
export type LineLighting = (typeof LINE_LIGHTINGS)[number];
export const DEFAULT_LINE: Line = { part: 'plate', material: 'steel' };

const BELTS: Rgb[] = [
  [48, 50, 52], // black rubber
  [52, 66, 56], // green PVC
  [50, 58, 72], // blue-grey
  [70, 66, 60], // worn tan-grey
];

const OIL: Rgb[] = [
  [34, 24, 14],
  [22, 22, 24],
  [60, 38, 20],
];

/** Dried coolant: the stain that shows on dark anodising. */
const RESIDUE: Rgb[] = [
  [226, 220, 200],
  [240, 236, 226],
];

/**
 * Version 2 of the drawing (PARTS_VERSION). The part is fixtured as on a real line: one design and
 * one finish (unless `mixed` or `random`), placed within a few units and ±15° (any angle for the
 * round flange), filling most of the frame.
 * Defects are sized for the 32 px model input, where one view-box unit is a third of a pixel: a
 * scratch 1–1.4 px wide, a dent 6–8 px and a stain 5–7 px across, holes 3–4 px wide (twice that at
 * 64 px). Version 1 drew any of three designs at any angle with defects of 1 px or less; at 32 px no
 * method beat chance on it (docs/bench/transfer.md as of 2026-11-23, in git history).
 * The designs, finishes and `free`/`varied` lines added since draw from the same stream in the same
 * order (extra draws only where a new option asks for them), so every version-2 line keeps its bytes.
 */
export function drawScene(r: Rng, cls: PartClass, line: Line = DEFAULT_LINE): Scene {
  const kind = line.part;
  const free = line.pose === 'free';
  const relax = !ORIGINAL_DESIGNS.includes(kind); // defects never fall into a hole (parts-designs.ts inside())
  const varied = line.lighting === 'varied';
  const belt = {
    colour: jitter(r, pick(r, BELTS), varied ? 24 : 10),
    ridge: { spacing: uniform(r, 2.5, 4.5), phase: uniform(r, 0, 5), opacity: uniform(r, 0.08, 0.22) },
    specks: Array.from({ length: randInt(r, 20, 50) }, () => ({ x: uniform(r, 0, 100), y: uniform(r, 0, 100), r: uniform(r, 0.3, 0.9), light: r() < 0.5, opacity: uniform(r, 0.1, 0.3) })),
  };
  // Off-part distractors near the frame's edge, where the part does not reach.
  const edgePoint = (): Pt => {
    const a = uniform(r, 0, 2 * Math.PI);
    const d = uniform(r, 40, 48);
    return [50 + d * Math.cos(a), 50 + d * Math.sin(a)];
  };
  const beltMarks: Scene['beltMarks'] = [];
  if (r() < 0.45) beltMarks.push({ blob: blob(r, edgePoint(), uniform(r, 3, 6), 0.35, 0.7, OIL) });
  if (r() < 0.4) beltMarks.push({ scuff: stroke(r, edgePoint(), uniform(r, 0, Math.PI), uniform(r, 10, 20), uniform(r, 0.8, 1.6), [200, 200, 195], uniform(r, 0.25, 0.5)) });

  const design = DESIGNS[kind];
  const shape = design.shape(r);
  const holes = design.holes(shape, r);
  const mixed = FINISHES[pick(r, MIXED_POOL)]; // drawn either way: the stream stays aligned
  const material = line.material === 'mixed' ? mixed : line.material === 'random' ? randomFinish(r) : FINISHES[line.material];
  const tint = jitter(r, [0, 0, 0], 10);
  const part: Scene['part'] = {
    shape,
    holes,
    missing: cls === 'missing_hole' ? missingHole(r, holes) : -1,
    x: 50 + (free ? uniform(r, -8, 8) : uniform(r, -4, 4)),
    y: 50 + (free ? uniform(r, -8, 8) : uniform(r, -4, 4)),
    rotation: kind === 'flange' || free ? uniform(r, 0, 360) : uniform(r, -15, 15),
    scale: free ? uniform(r, 0.85, 1.08) : uniform(r, 0.94, 1.06),
    dark: add(material.dark, tint),
    light: add(material.light, tint),
    streaks: Array.from({ length: randInt(r, 4, 10) }, () => {
      const a = uniform(r, -0.25, 0.25);
      return stroke(r, [uniform(r, -24, 24), uniform(r, -24, 24)], a, uniform(r, 10, 40), uniform(r, 0.3, 0.6), r() < 0.5 ? [255, 255, 255] : [0, 0, 0], uniform(r, 0.05, 0.1));
    }),
    specks: r() < 0.35 ? Array.from({ length: randInt(r, 1, 3) }, () => ({ ...inside(r, shape, holes, 2), r: uniform(r, 0.4, 0.7) })) : [],
  };

  // Line lighting: from the upper left within ±40°, mild shading and exposure drift ('varied':
  // from anywhere, stronger highlights, shading and exposure swings).
  const angle = 225 + (varied ? uniform(r, -180, 180) : uniform(r, -40, 40));
  const light = varied
    ? { angle, highlight: uniform(r, 0, 0.3), shade: uniform(r, 0.05, 0.35), exposure: uniform(r, -0.25, 0.15) }
    : { angle, highlight: uniform(r, 0, 0.15), shade: uniform(r, 0.05, 0.2), exposure: uniform(r, -0.12, 0.08) };
  const away = ((angle + 180) * Math.PI) / 180;
  const sd = uniform(r, 1.5, 3);
  const shadow = { dx: sd * Math.cos(away), dy: sd * Math.sin(away), opacity: uniform(r, 0.35, 0.6), blur: uniform(r, 1, 2) };

  // Defects take the tone that contrasts with the metal: a dark gouge or oil on bare metal, a
  // bright gouge or dried coolant residue on dark anodising.
  const darkMetal = luma(part.light) < 170;
  const defect: Scene['defect'] = {};
  if (cls === 'scratch') {
    const p = inside(r, shape, holes, 4, relax);
    defect.scratch = stroke(r, [p.x, p.y], uniform(r, 0, Math.PI), uniform(r, 28, 40), uniform(r, 3.2, 4.5), darkMetal ? [245, 247, 250] : [25, 25, 28], uniform(r, 0.85, 1));
  } else if (cls === 'dent') {
    const p = inside(r, shape, holes, 9, relax);
    defect.dent = { x: p.x, y: p.y, rx: uniform(r, 10, 13), ry: uniform(r, 7, 9.5), rotation: uniform(r, 0, 180), depth: uniform(r, 0.9, 1) };
  } else if (cls === 'stain') {
    const p = inside(r, shape, holes, 6, relax);
    defect.stain = blob(r, [p.x, p.y], uniform(r, 8, 10.5), 0.8, 0.95, darkMetal ? RESIDUE : OIL);
  }
  return { belt, beltMarks, part, light, shadow, defect, blur: r() < 0.5 ? 0 : uniform(r, 0.3, 0.8), noise: uniform(r, 1.5, 4) };
}

function stroke(r: Rng, centre: Pt, angle: number, length: number, width: number, colour: Rgb, opacity: number): Stroke {
  const dx = (Math.cos(angle) * length) / 2;
  const dy = (Math.sin(angle) * length) / 2;
  const bend = uniform(r, -0.12, 0.12) * length;
  return {
    from: [centre[0] - dx, centre[1] - dy],
    ctrl: [centre[0] - Math.sin(angle) * bend, centre[1] + Math.cos(angle) * bend],
    to: [centre[0] + dx, centre[1] + dy],
    width,
    colour,
    opacity,
  };
}

/** An irregular closed blob: 9–12 spokes of jittered radius, in one of `colours`. */
function blob(r: Rng, c: Pt, radius: number, lo: number, hi: number, colours: readonly Rgb[]): Blob {
  const n = randInt(r, 9, 13);
  const stretch = uniform(r, 0.6, 1);
  const turn = uniform(r, 0, Math.PI);
  const points = Array.from({ length: n }, (_, i): Pt => {
    const a = (2 * Math.PI * i) / n;
    const rr = radius * uniform(r, 0.6, 1.25);
    const px = Math.cos(a) * rr;
    const py = Math.sin(a) * rr * stretch;
    return [c[0] + px * Math.cos(turn) - py * Math.sin(turn), c[1] + px * Math.sin(turn) + py * Math.cos(turn)];
  });
  return { points, colour: jitter(r, pick(r, colours), 8), opacity: uniform(r, lo, hi) };
}

const luma = (c: Rgb): number => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[randInt(r, 0, xs.length)]!;
const clamp8 = (v: number): number => Math.max(0, Math.min(255, Math.round(v)));
const add = (a: Rgb, b: Rgb): Rgb => [clamp8(a[0] + b[0]), clamp8(a[1] + b[1]), clamp8(a[2] + b[2])];
const jitter = (r: Rng, c: Rgb, d: number): Rgb => add(c, [uniform(r, -d, d), uniform(r, -d, d), uniform(r, -d, d)]);
