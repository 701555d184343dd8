/**
 * Part finishes: the metal's dark and light tone (the gradient the light draws across it). A line
 * runs one named finish; `mixed` picks one of the original five per item (as in version 2);
 * `random` draws a new colour per item (formula-driven) from every hue except the blue band, so a
 * `blue-anodised` line stays unseen by a backbone pretrained on random finishes.
 */
import { uniform, type Rng } from '../../devices/rng.ts';

export type Rgb = [number, number, number];

const NAMED = {
  steel: { dark: [112, 120, 130], light: [205, 212, 220] },
  aluminium: { dark: [150, 154, 158], light: [232, 235, 238] },
  brass: { dark: [150, 112, 40], light: [232, 205, 120] },
  'blue-anodised': { dark: [35, 75, 150], light: [110, 160, 225] },
  'red-anodised': { dark: [135, 35, 40], light: [215, 95, 95] },
  copper: { dark: [130, 62, 36], light: [225, 150, 110] },
  'black-oxide': { dark: [28, 29, 33], light: [96, 99, 106] },
  'zinc-yellow': { dark: [150, 132, 48], light: [236, 222, 128] },
  'green-anodised': { dark: [28, 105, 58], light: [105, 198, 138] },
} satisfies Record<string, { dark: Rgb; light: Rgb }>;

export type NamedFinish = keyof typeof NAMED;
export const FINISHES: Record<NamedFinish, { dark: Rgb; light: Rgb }> = NAMED as Record<NamedFinish, { dark: Rgb; light: Rgb }>;

/** What `mixed` picks from: the version-2 finishes, so mixed lines keep their images. */
export const MIXED_POOL: readonly NamedFinish[] = ['steel', 'aluminium', 'brass', 'blue-anodised', 'red-anodised'];

export const MATERIAL_NAMES = [...(Object.keys(NAMED) as NamedFinish[]), 'mixed', 'random'] as const;
export type MaterialName = (typeof MATERIAL_NAMES)[number];

/** Hues (degrees) `random` never draws: blue, around blue-anodised's 214°. */
export const RANDOM_FINISH_EXCLUDED_HUES: readonly [number, number] = [185, 255];

/** The hue of an RGB colour in degrees (0 for greys). */
export function hueOf([r, g, b]: Rgb): number {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  if (max === min) return 0;
  const d = max - min;
  const h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  return (h * 60 + 360) % 360;
}

/** A random finish: hue outside the excluded band, any saturation up to 0.75, light and dark tones of it. */
export function randomFinish(r: Rng): { dark: Rgb; light: Rgb } {
  const [lo, hi] = RANDOM_FINISH_EXCLUDED_HUES;
  const u = uniform(r, 0, 360 - (hi - lo));
  const hue = u < lo ? u : u + (hi - lo);
  const sat = uniform(r, 0, 0.75);
  const light = uniform(r, 0.42, 0.9);
  const dark = light * uniform(r, 0.4, 0.65);
  return { dark: hsl(hue, sat, dark), light: hsl(hue, sat, light) };
}

function hsl(h: number, s: number, l: number): Rgb {
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const x = c * (1 - Math.abs(((h / 60) % 2) - 1));
  const m = l - c / 2;
  const [r, g, b] = h < 60 ? [c, x, 0] : h < 120 ? [x, c, 0] : h < 180 ? [0, c, x] : h < 240 ? [0, x, c] : h < 300 ? [x, 0, c] : [c, 0, x];
  return [Math.round(255 * (r + m)), Math.round(255 * (g + m)), Math.round(255 * (b + m))];
}
