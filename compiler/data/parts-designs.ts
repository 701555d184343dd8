/**
 * Part designs: the outline and hole pattern a line makes, in part coordinates (centred near 0,0,
 * about ±33 units of the 100×100 view box). Every design's holes follow a pattern (a bolt circle,
 * a row, a grid), so a missing hole is a gap in the pattern, not just a part with fewer holes.
 *
 * `plate`, `flange` and `bracket` are the original lines and draw exactly what PARTS_VERSION 2
 * drew. `hex`, `strip` and `triangle` are further fixed designs for a factory's other lines.
 * `random` is formula-driven: every item is a new design drawn from parameterised families
 * (regular n-gon, rectangle or disc with a bolt circle, row or grid of holes). No design here is
 * L- or T-shaped, so a `bracket` line stays unseen by a backbone pretrained on the others.
 */
import { randInt, uniform, type Rng } from '../../devices/rng.ts';

export type Pt = [number, number];

export interface Hole {
  x: number;
  y: number;
  r: number;
  /** A bore (the flange centre): part of the design, never the missing hole. */
  bore?: boolean;
}

/** Outline kinds; holes are cut through it. `polygon` corners are rounded by `corner` units. */
export type Shape =
  | { kind: 'plate'; w: number; h: number; corner: number }
  | { kind: 'flange'; r: number }
  | { kind: 'bracket'; arm: number; len: number }
  | { kind: 'polygon'; points: Pt[]; corner: number };

export const PART_KINDS = ['plate', 'flange', 'bracket', 'hex', 'strip', 'triangle', 'random'] as const;
export type PartKind = (typeof PART_KINDS)[number];

interface Design {
  /** Draws the outline (fixed designs draw nothing). */
  shape(r: Rng): Shape;
  holes(shape: Shape, r: Rng): Hole[];
}

const PLATE: Shape = { kind: 'plate', w: 66, h: 48, corner: 6 };
const FLANGE: Shape = { kind: 'flange', r: 33 };
const BRACKET: Shape = { kind: 'bracket', arm: 21, len: 62 };
const HEX: Shape = { kind: 'polygon', points: regular(6, 36, 0), corner: 4 };
const STRIP: Shape = { kind: 'plate', w: 78, h: 26, corner: 10 };
const TRIANGLE: Shape = { kind: 'polygon', points: regular(3, 40, -90), corner: 7 };

/** Holes on a circle of radius `at`, the first at `phase` degrees. */
function boltCircle(n: number, at: number, r: number, phase = 0): Hole[] {
  return Array.from({ length: n }, (_, i) => {
    const a = ((phase + (360 * i) / n) * Math.PI) / 180;
    return { x: at * Math.cos(a), y: at * Math.sin(a), r };
  });
}

/** A rows × cols grid of holes spaced (dx, dy), centred. */
function grid(rows: number, cols: number, dx: number, dy: number, r: number): Hole[] {
  const out: Hole[] = [];
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out.push({ x: (j - (cols - 1) / 2) * dx, y: (i - (rows - 1) / 2) * dy, r });
  return out;
}

export const DESIGNS: Record<PartKind, Design> = {
  plate: {
    shape: () => PLATE,
    holes: (s, r) => {
      const p = s as Extract<Shape, { kind: 'plate' }>;
      const hr = uniform(r, 5, 6);
      return [[-1, -1], [1, -1], [1, 1], [-1, 1]].map(([sx, sy]) => ({ x: sx! * (p.w / 2 - 11), y: sy! * (p.h / 2 - 10), r: hr }));
    },
  },
  flange: {
    shape: () => FLANGE,
    holes: (_, r) => {
      const n = r() < 0.5 ? 4 : 6;
      const hr = uniform(r, 4.5, 5.5);
      const bolts = Array.from({ length: n }, (_, i) => ({ x: 22 * Math.cos((2 * Math.PI * i) / n), y: 22 * Math.sin((2 * Math.PI * i) / n), r: hr }));
      return [{ x: 0, y: 0, r: uniform(r, 9, 11), bore: true }, ...bolts];
    },
  },
  bracket: {
    shape: () => BRACKET,
    holes: (s, r) => {
      const b = s as Extract<Shape, { kind: 'bracket' }>;
      const hr = uniform(r, 4.5, 5.5);
      const c = -b.len / 2 + b.arm / 2; // centre line of each arm
      return [{ x: c + 20, y: c }, { x: c + 40, y: c }, { x: c, y: c + 20 }, { x: c, y: c + 40 }].map((h) => ({ ...h, r: hr }));
    },
  },
  hex: {
    shape: () => HEX,
    holes: (_, r) => [{ x: 0, y: 0, r: uniform(r, 7, 9), bore: true }, ...boltCircle(6, 21, uniform(r, 4, 5), 30)],
  },
  strip: {
    shape: () => STRIP,
    holes: (_, r) => grid(1, 3, 25, 0, uniform(r, 4.5, 5.5)),
  },
  triangle: {
    shape: () => TRIANGLE,
    holes: (_, r) => boltCircle(3, 18, uniform(r, 4, 5), -90),
  },
  random: { shape: randomShape, holes: randomHoles },
};

/** One of three outline families, sized to fill most of the frame like the fixed designs. */
function randomShape(r: Rng): Shape {
  const family = randInt(r, 0, 3);
  if (family === 0) return { kind: 'flange', r: uniform(r, 29, 36) };
  if (family === 1) return { kind: 'plate', w: uniform(r, 52, 78), h: uniform(r, 26, 56), corner: uniform(r, 2, 10) };
  const n = randInt(r, 3, 9);
  const R = n === 3 ? uniform(r, 36, 40) : uniform(r, 31, 37);
  return { kind: 'polygon', points: regular(n, R, uniform(r, 0, 360 / n)), corner: uniform(r, 2, 7) };
}

/** A pattern that fits the outline: bolt circle (± bore) on discs and n-gons, row or grid on rectangles. */
function randomHoles(s: Shape, r: Rng): Hole[] {
  const hr = uniform(r, 3.5, 5.5);
  if (s.kind === 'plate') {
    const cols = randInt(r, 2, 5);
    const rows = s.h >= 40 ? randInt(r, 1, 3) : 1;
    const dx = Math.min(22, (s.w - 2 * hr - 12) / Math.max(1, cols - 1));
    const dy = rows > 1 ? Math.min(22, s.h - 2 * hr - 12) : 0;
    return grid(rows, cols, dx, dy, hr);
  }
  const inner = s.kind === 'flange' ? s.r : s.kind === 'polygon' ? apothem(s) : 20;
  const bore = r() < 0.5;
  const n = randInt(r, 3, 9);
  const at = Math.max(bore ? 16 : 10, inner - hr - 6);
  const holes = boltCircle(n, at, Math.min(hr, (Math.PI * at) / n - 2.5), uniform(r, 0, 360));
  return bore ? [{ x: 0, y: 0, r: Math.min(uniform(r, 6, 10), at - hr - 4), bore: true }, ...holes] : holes;
}

/** The vertices of a regular n-gon of circumradius R, the first at `phase` degrees. */
export function regular(n: number, R: number, phase: number): Pt[] {
  return Array.from({ length: n }, (_, i) => {
    const a = ((phase + (360 * i) / n) * Math.PI) / 180;
    return [R * Math.cos(a), R * Math.sin(a)];
  });
}

/** Distance from the centre to the nearest edge of a (convex, centred) polygon. */
function apothem(s: Extract<Shape, { kind: 'polygon' }>): number {
  return Math.min(...s.points.map((p, i) => edgeDistance(0, 0, p, s.points[(i + 1) % s.points.length]!)));
}

function edgeDistance(x: number, y: number, a: Pt, b: Pt): number {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const t = Math.max(0, Math.min(1, ((x - a[0]) * dx + (y - a[1]) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(x - a[0] - t * dx, y - a[1] - t * dy);
}

/** Index of the missing hole: any hole but a bore (the same draw as version 2 for the original designs). */
export function missingHole(r: Rng, holes: Hole[]): number {
  const open = holes.flatMap((h, i) => (h.bore ? [] : [i]));
  return open[randInt(r, 0, open.length)]!;
}

/**
 * A point on solid metal at least `margin` from every edge and hole (rejection sampling). The
 * original designs fall back to a fixed point after 500 misses (version 2's draws, kept); with
 * `relax` (every later design) the margin halves and then drops to 1 first, so a defect never
 * lands in a hole where the renderer would clip it away.
 */
export function inside(r: Rng, shape: Shape, holes: Hole[], margin: number, relax = false): { x: number; y: number } {
  const tries = relax ? [[margin, 500], [margin / 2, 300], [1, 300]] : [[margin, 500]];
  for (const [m, n] of tries) {
    for (let t = 0; t < n!; t++) {
      const x = uniform(r, -34, 34);
      const y = uniform(r, -34, 34);
      if (solid(shape, x, y, m!) && holes.every((h) => Math.hypot(x - h.x, y - h.y) > h.r + m!)) return { x, y };
    }
  }
  return { x: 0, y: shape.kind === 'flange' ? 14 : 0 };
}

/** The designs version 2 drew, whose draws stay as they were. */
export const ORIGINAL_DESIGNS: readonly PartKind[] = ['plate', 'flange', 'bracket'];

export function solid(shape: Shape, x: number, y: number, m: number): boolean {
  if (shape.kind === 'plate') return Math.abs(x) < shape.w / 2 - m && Math.abs(y) < shape.h / 2 - m;
  if (shape.kind === 'flange') return Math.hypot(x, y) < shape.r - m;
  if (shape.kind === 'polygon') {
    const pts = shape.points;
    let inPoly = false;
    for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
      const [xi, yi] = pts[i]!;
      const [xj, yj] = pts[j]!;
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inPoly = !inPoly;
    }
    return inPoly && pts.every((p, i) => edgeDistance(x, y, p, pts[(i + 1) % pts.length]!) > m + shape.corner / 3);
  }
  const lo = -shape.len / 2 + m;
  const hi = shape.len / 2 - m;
  const armHi = -shape.len / 2 + shape.arm - m;
  return (x > lo && x < hi && y > lo && y < armHi) || (x > lo && x < armHi && y > lo && y < hi);
}
