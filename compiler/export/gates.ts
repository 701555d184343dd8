/**
 * The quality floor compile ships above: a model whose validation top-1 is near chance cannot do
 * the job, and signing it silently would put it on a line. The floor is `gates.minTop1` from the
 * compile config, or chance + 25 points (1/classes + 0.25) by default; `--allow-weak` ships a
 * model below it anyway, and says so.
 */
import { CompilerError } from '../ops/errors.ts';

/** Points above chance the default floor asks for. */
export const DEFAULT_MARGIN_OVER_CHANCE = 0.25;

export interface Top1Floor {
  floor: number;
  chance: number;
  /** How the floor was set, for messages. */
  source: string;
}

export function top1Floor(classes: number, minTop1: number | undefined): Top1Floor {
  const chance = 1 / classes;
  if (minTop1 !== undefined) return { floor: minTop1, chance, source: 'gates.minTop1' };
  return { floor: Math.min(1, Math.round((chance + DEFAULT_MARGIN_OVER_CHANCE) * 1e6) / 1e6), chance, source: `the default, chance + ${100 * DEFAULT_MARGIN_OVER_CHANCE} pt; set gates.minTop1 in the config to change it` };
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

/**
 * Refuses (MODEL_TOO_WEAK) a validation top-1 below the floor unless `allowWeak`; returns the
 * line to log: the measurement against the floor, and a warning when a weak model is let through.
 */
export function checkTop1(top1: number, images: number, classes: number, minTop1: number | undefined, allowWeak: boolean): string {
  const f = top1Floor(classes, minTop1);
  const measured = `validation top-1 ${pct(top1)} on ${images} images of ${classes} classes (chance ${pct(f.chance)})`;
  if (top1 >= f.floor) return `${measured}: above the floor ${pct(f.floor)}`;
  if (allowWeak) return `WARNING: ${measured} is below the floor ${pct(f.floor)} (${f.source}); shipping it because of --allow-weak`;
  throw new CompilerError(
    'MODEL_TOO_WEAK',
    `${measured} is below the floor ${pct(f.floor)} (${f.source}): this model cannot do the job, so compile refuses to ship it. Train longer, try another method, lr or backbone, or pass --allow-weak to ship it anyway`,
  );
}
