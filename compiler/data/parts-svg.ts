/** A parts scene (parts-scene.ts) as SVG for sharp/librsvg, px×px over a 100×100 view box. */
import type { Blob, Dent, Hole, Pt, Rgb, Scene, Shape, Stroke } from './parts-scene.ts';

/** Numbers with 2 decimals: stable text, so the same scene always renders the same bytes. */
const f = (v: number): string => String(Math.round(v * 100) / 100);
const rgb = (c: Rgb): string => `rgb(${c.join(',')})`;

export function sceneSvg(s: Scene, px: number): string {
  const p = s.part;
  const outline = partPath(p.shape, p.holes.filter((_, i) => i !== p.missing));
  const place = (dx: number, dy: number): string => `translate(${f(p.x + dx)} ${f(p.y + dy)}) rotate(${f(p.rotation)}) scale(${f(p.scale)})`;
  // Light direction inside the rotated part, for its gradient and for the dent's shading.
  const local = ((s.light.angle - p.rotation) * Math.PI) / 180;
  const [lx, ly] = [Math.cos(local), Math.sin(local)];
  const world = (s.light.angle * Math.PI) / 180;
  const [wx, wy] = [Math.cos(world), Math.sin(world)];
  const edge = p.dark.map((v) => Math.round(v * 0.6)) as Rgb;
  const sheen = p.light.map((v) => Math.min(255, v + 18)) as Rgb;

  const defs = [
    `<filter id="soft" x="-50%" y="-50%" width="200%" height="200%"><feGaussianBlur stdDeviation="${f(s.shadow.blur)}"/></filter>`,
    `<filter id="fine" x="-50%" y="-50%" width="200%" height="200%"><feGaussianBlur stdDeviation="0.45"/></filter>`,
    `<linearGradient id="metal" x1="${f(0.5 + 0.5 * lx)}" y1="${f(0.5 + 0.5 * ly)}" x2="${f(0.5 - 0.5 * lx)}" y2="${f(0.5 - 0.5 * ly)}">` +
      `<stop offset="0" stop-color="${rgb(p.light)}"/><stop offset="0.3" stop-color="${rgb(sheen)}"/><stop offset="1" stop-color="${rgb(p.dark)}"/></linearGradient>`,
    `<linearGradient id="light" x1="${f(0.5 + 0.5 * wx)}" y1="${f(0.5 + 0.5 * wy)}" x2="${f(0.5 - 0.5 * wx)}" y2="${f(0.5 - 0.5 * wy)}">` +
      `<stop offset="0" stop-color="#fff" stop-opacity="${f(s.light.highlight)}"/><stop offset="1" stop-color="#000" stop-opacity="${f(s.light.shade)}"/></linearGradient>`,
    // Flat-topped lobes: a linear fall-off leaves too little of a dent after the 64 → 32 px resize.
    `<radialGradient id="pit"><stop offset="0" stop-color="#000" stop-opacity="0.9"/><stop offset="0.6" stop-color="#000" stop-opacity="0.7"/><stop offset="1" stop-color="#000" stop-opacity="0"/></radialGradient>`,
    `<radialGradient id="lit"><stop offset="0" stop-color="#fff" stop-opacity="0.9"/><stop offset="0.6" stop-color="#fff" stop-opacity="0.7"/><stop offset="1" stop-color="#fff" stop-opacity="0"/></radialGradient>`,
    `<clipPath id="clip"><path d="${outline}" clip-rule="evenodd"/></clipPath>`,
  ];

  const body = [
    `<rect width="100" height="100" fill="${rgb(s.belt.colour)}"/>`,
    ...ridges(s.belt.ridge),
    ...s.belt.specks.map((k) => `<circle cx="${f(k.x)}" cy="${f(k.y)}" r="${f(k.r)}" fill="${k.light ? '#fff' : '#000'}" opacity="${f(k.opacity)}"/>`),
    ...s.beltMarks.map((m) => (m.blob ? blobSvg(m.blob) : m.scuff ? strokeSvg(m.scuff) : '')),
    `<path d="${outline}" fill-rule="evenodd" fill="#000" opacity="${f(s.shadow.opacity)}" filter="url(#soft)" transform="${place(s.shadow.dx, s.shadow.dy)}"/>`,
    `<g transform="${place(0, 0)}">`,
    `<path d="${outline}" fill-rule="evenodd" fill="url(#metal)" stroke="${rgb(edge)}" stroke-width="0.8"/>`,
    `<g clip-path="url(#clip)">`,
    ...p.streaks.map(strokeSvg),
    ...p.specks.map((k) => `<circle cx="${f(k.x)}" cy="${f(k.y)}" r="${f(k.r)}" fill="#222" opacity="0.5"/>`),
    s.defect.scratch ? strokeSvg(s.defect.scratch) : '',
    s.defect.dent ? dentSvg(s.defect.dent, lx, ly) : '',
    s.defect.stain ? blobSvg(s.defect.stain, true) : '',
    `</g></g>`,
    `<rect width="100" height="100" fill="url(#light)"/>`,
    s.light.exposure < 0 ? `<rect width="100" height="100" fill="#000" opacity="${f(-s.light.exposure)}"/>` : `<rect width="100" height="100" fill="#fff" opacity="${f(s.light.exposure)}"/>`,
  ];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${px}" height="${px}" viewBox="0 0 100 100"><defs>${defs.join('')}</defs>${body.join('')}</svg>`;
}

/** Outline plus hole circles; drawn and clipped even-odd, so the belt shows through the holes. */
function partPath(shape: Shape, holes: Hole[]): string {
  let d: string;
  if (shape.kind === 'plate') {
    const [w, h, c] = [shape.w / 2, shape.h / 2, shape.corner];
    d = `M${f(-w + c)} ${f(-h)}H${f(w - c)}A${c} ${c} 0 0 1 ${f(w)} ${f(-h + c)}V${f(h - c)}A${c} ${c} 0 0 1 ${f(w - c)} ${f(h)}H${f(-w + c)}A${c} ${c} 0 0 1 ${f(-w)} ${f(h - c)}V${f(-h + c)}A${c} ${c} 0 0 1 ${f(-w + c)} ${f(-h)}Z`;
  } else if (shape.kind === 'flange') {
    d = circle(0, 0, shape.r);
  } else if (shape.kind === 'polygon') {
    d = roundedPolygon(shape.points, shape.corner);
  } else {
    const lo = -shape.len / 2;
    const hi = shape.len / 2;
    const arm = lo + shape.arm;
    d = `M${f(lo)} ${f(lo)}H${f(hi)}V${f(arm)}H${f(arm)}V${f(hi)}H${f(lo)}Z`;
  }
  return d + holes.map((h) => circle(h.x, h.y, h.r)).join('');
}

/** A closed polygon whose corners are cut by quadratic curves `c` units from each vertex. */
function roundedPolygon(pts: Pt[], c: number): string {
  const n = pts.length;
  const toward = (p: Pt, q: Pt): Pt => {
    const d = Math.hypot(q[0] - p[0], q[1] - p[1]);
    const t = Math.min(c, d / 2) / d;
    return [p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t];
  };
  let d = '';
  for (let i = 0; i < n; i++) {
    const v = pts[i]!;
    const a = toward(v, pts[(i + n - 1) % n]!);
    const b = toward(v, pts[(i + 1) % n]!);
    d += `${i === 0 ? 'M' : 'L'}${f(a[0])} ${f(a[1])}Q${f(v[0])} ${f(v[1])} ${f(b[0])} ${f(b[1])}`;
  }
  return `${d}Z`;
}

const circle = (x: number, y: number, r: number): string => `M${f(x - r)} ${f(y)}a${f(r)} ${f(r)} 0 1 0 ${f(2 * r)} 0a${f(r)} ${f(r)} 0 1 0 ${f(-2 * r)} 0Z`;

function ridges(r: Scene['belt']['ridge']): string[] {
  const out: string[] = [];
  for (let y = r.phase - r.spacing; y < 100; y += r.spacing) out.push(`<rect y="${f(y)}" width="100" height="${f(r.spacing * 0.45)}" fill="#000" opacity="${f(r.opacity)}"/>`);
  return out;
}

function strokeSvg(s: Stroke): string {
  const [a, c, b] = [s.from, s.ctrl, s.to];
  return `<path d="M${f(a[0])} ${f(a[1])}Q${f(c[0])} ${f(c[1])} ${f(b[0])} ${f(b[1])}" fill="none" stroke="${rgb(s.colour)}" stroke-width="${f(s.width)}" stroke-linecap="round" opacity="${f(s.opacity)}"/>`;
}

/** A smooth closed curve through the midpoints of the blob's spokes. */
function blobSvg(b: Blob, soft = false): string {
  const mid = (p: Pt, q: Pt): Pt => [(p[0] + q[0]) / 2, (p[1] + q[1]) / 2];
  const n = b.points.length;
  const start = mid(b.points[n - 1]!, b.points[0]!);
  let d = `M${f(start[0])} ${f(start[1])}`;
  for (let i = 0; i < n; i++) {
    const p = b.points[i]!;
    const m = mid(p, b.points[(i + 1) % n]!);
    d += `Q${f(p[0])} ${f(p[1])} ${f(m[0])} ${f(m[1])}`;
  }
  return `<path d="${d}Z" fill="${rgb(b.colour)}" opacity="${f(b.opacity)}"${soft ? ' filter="url(#fine)"' : ''}/>`;
}

/**
 * A depression lit from (lx, ly): the wall facing the light falls in shadow, the far wall catches
 * it, so a dark lobe sits toward the light and a bright lobe away from it.
 */
function dentSvg(d: Dent, lx: number, ly: number): string {
  const o = 0.5;
  const ell = (dx: number, dy: number, fill: string, opacity: number): string =>
    `<ellipse cx="${f(d.x + dx)}" cy="${f(d.y + dy)}" rx="${f(d.rx)}" ry="${f(d.ry)}" transform="rotate(${f(d.rotation)} ${f(d.x + dx)} ${f(d.y + dy)})" fill="url(#${fill})" opacity="${f(opacity)}" filter="url(#fine)"/>`;
  return ell(lx * d.rx * o, ly * d.rx * o, 'pit', d.depth) + ell(-lx * d.rx * o, -ly * d.rx * o, 'lit', d.depth * 0.7);
}
