/**
 * Where a scene's defect is: which cells of a grid over the image it touches. The scene knows its
 * defect's geometry in part coordinates; points sampled on it (along a scratch, inside a dent, a
 * stain or the missing hole) are kept where they fall on solid metal (the renderer clips defects
 * to the part) and moved into the image by the part's placement (translate, rotate, scale as in
 * parts-svg.ts). Patch-level supervision for pretraining reads these cells: a patch that shows a
 * defect is labelled with the defect's class, every other patch "ok".
 */
import { solid, type Hole, type Pt } from './parts-designs.ts';
import type { Scene } from './parts-scene.ts';

/** Side of the cell grid computed per image; models with coarser patches pool it (any defect wins). */
export const CELL_GRID = 16;

/** Points of the defect in part coordinates, before clipping. */
function defectPoints(s: Scene): Pt[] {
  const pts: Pt[] = [];
  const d = s.defect;
  if (d.scratch) {
    const { from: a, ctrl: c, to: b, width } = d.scratch;
    for (let i = 0; i <= 24; i++) {
      const t = i / 24;
      const x = (1 - t) ** 2 * a[0] + 2 * t * (1 - t) * c[0] + t * t * b[0];
      const y = (1 - t) ** 2 * a[1] + 2 * t * (1 - t) * c[1] + t * t * b[1];
      // Across the stroke too: a wide scratch can straddle a cell border.
      const tx = 2 * (1 - t) * (c[0] - a[0]) + 2 * t * (b[0] - c[0]);
      const ty = 2 * (1 - t) * (c[1] - a[1]) + 2 * t * (b[1] - c[1]);
      const n = Math.hypot(tx, ty) || 1;
      for (const o of [-0.5, 0, 0.5]) pts.push([x - (ty / n) * o * width, y + (tx / n) * o * width]);
    }
  }
  if (d.dent) pts.push(...ellipse(d.dent.x, d.dent.y, d.dent.rx, d.dent.ry, d.dent.rotation));
  if (d.stain) {
    const p = d.stain.points;
    const cx = p.reduce((a, q) => a + q[0], 0) / p.length;
    const cy = p.reduce((a, q) => a + q[1], 0) / p.length;
    for (const q of p) for (const f of [0.25, 0.5, 0.75]) pts.push([cx + (q[0] - cx) * f, cy + (q[1] - cy) * f]);
    pts.push([cx, cy]);
  }
  return pts;
}

function ellipse(x: number, y: number, rx: number, ry: number, deg: number): Pt[] {
  const a = (deg * Math.PI) / 180;
  const out: Pt[] = [];
  for (const f of [0, 0.4, 0.75]) {
    for (let k = 0; k < (f === 0 ? 1 : 12); k++) {
      const t = (2 * Math.PI * k) / 12;
      const u = f * rx * Math.cos(t);
      const v = f * ry * Math.sin(t);
      out.push([x + u * Math.cos(a) - v * Math.sin(a), y + u * Math.sin(a) + v * Math.cos(a)]);
    }
  }
  return out;
}

function holePoints(h: Hole): Pt[] {
  return ellipse(h.x, h.y, h.r, h.r, 0);
}

/**
 * CELL_GRID² cells, row-major: 1 where the defect shows, else 0. `ok` scenes and defects that fall
 * wholly off the part give all zeros.
 */
export function defectCells(s: Scene, grid = CELL_GRID): Uint8Array {
  const p = s.part;
  const open = p.holes.filter((_, i) => i !== p.missing);
  const onMetal = (q: Pt) => solid(p.shape, q[0], q[1], 0) && open.every((h) => Math.hypot(q[0] - h.x, q[1] - h.y) > h.r);
  const pts = defectPoints(s).filter(onMetal);
  if (p.missing >= 0) pts.push(...holePoints(p.holes[p.missing]!));
  const a = (p.rotation * Math.PI) / 180;
  const [cos, sin] = [Math.cos(a), Math.sin(a)];
  const cells = new Uint8Array(grid * grid);
  for (const [u, v] of pts) {
    const x = p.x + p.scale * (cos * u - sin * v);
    const y = p.y + p.scale * (sin * u + cos * v);
    const cx = Math.floor((x / 100) * grid);
    const cy = Math.floor((y / 100) * grid);
    if (cx >= 0 && cx < grid && cy >= 0 && cy < grid) cells[cy * grid + cx] = 1;
  }
  return cells;
}

/** A CELL_GRID² mask pooled to g² (g divides CELL_GRID): a cell is set when any of its sub-cells is. */
export function poolCells(cells: Uint8Array, g: number, from = CELL_GRID): Uint8Array {
  if (from % g) throw new Error(`internal: cell grid ${from} is not a multiple of ${g}`);
  const k = from / g;
  const out = new Uint8Array(g * g);
  for (let y = 0; y < from; y++) for (let x = 0; x < from; x++) if (cells[y * from + x]) out[Math.floor(y / k) * g + Math.floor(x / k)] = 1;
  return out;
}

/** Mirror a g×g mask left-right (as an image's horizontal flip). */
export function flipCells(cells: Uint8Array, g: number): Uint8Array {
  const out = new Uint8Array(g * g);
  for (let y = 0; y < g; y++) for (let x = 0; x < g; x++) out[y * g + x] = cells[y * g + (g - 1 - x)]!;
  return out;
}
