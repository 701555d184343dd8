/**
 * `edgeprompt data …`: dataset chores. Wire it with `addDataCommands(program)` in main.ts; built
 * with program.command() so the subcommands inherit exitOverride and help settings.
 *   data make-parts --out DIR [--per-class N] [--size PX] [--seed S] [--part plate] [--material steel] [--classes a,b] [--force]
 */
import type { Command } from 'commander';
import { CompilerError } from '../compiler/ops/errors.ts';
import { MATERIAL_NAMES, PART_CLASSES, PART_KINDS, writePartsSet, type MaterialName, type PartKind } from '../compiler/data/parts.ts';
import { checkChoice } from '../compiler/data/errors.ts';

export interface MakePartsFlags {
  out: string;
  perClass: number;
  size: number;
  seed: number;
  part: PartKind;
  material: MaterialName;
  classes?: string[];
  force?: boolean;
}

export function addDataCommands(program: Command): Command {
  const data = program.command('data').description('make datasets');
  data
    .command('make-parts')
    .description('generate the colour defect-inspection set: <out>/<class>/<class>_<i>.png and <out>/manifest.json')
    .requiredOption('--out <dir>', 'output folder (new or empty)')
    .option('--per-class <n>', 'images per class', (v) => intFlag('--per-class', v, 1), 200)
    .option('--size <px>', 'image side in pixels (load at the model size, e.g. 32, with the dataset config)', (v) => intFlag('--size', v, 8), 64)
    .option('--seed <n>', 'seed: the same seed gives the same bytes', (v) => intFlag('--seed', v, 0), 0)
    .option('--part <design>', `the part design on the line: ${PART_KINDS.join(', ')}`, (v) => checkChoice(v, '--part', PART_KINDS, 'FLAG_INVALID'), 'plate')
    .option('--material <finish>', `its finish: ${MATERIAL_NAMES.join(', ')} (mixed: any per item)`, (v) => checkChoice(v, '--material', MATERIAL_NAMES, 'FLAG_INVALID'), 'steel')
    .option('--classes <list>', `comma-separated subset of ${PART_CLASSES.join(',')}`, (v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .option('--force', 'replace a previous make-parts output in --out')
    .action(makePartsCommand);
  return data;
}

export async function makePartsCommand(flags: MakePartsFlags): Promise<void> {
  const t0 = performance.now();
  const m = await writePartsSet(flags.out, { perClass: flags.perClass, size: flags.size, seed: flags.seed, part: flags.part, material: flags.material, ...(flags.classes && { classes: flags.classes }), force: flags.force ?? false });
  const classes = Object.keys(m.classes);
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`wrote ${classes.length} × ${m.perClass} images (${classes.join(', ')}) of ${m.material} ${m.part} at ${m.size}×${m.size} px, seed ${m.seed}, to ${flags.out} in ${s} s`);
  console.log(`manifest: ${flags.out}/manifest.json (generator ${m.generator} v${m.version}, sharp ${m.sharp}, libvips ${m.vips})`);
}

function intFlag(flag: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new CompilerError('FLAG_INVALID', `${flag}: expected an integer ≥ ${min}, got "${v}"`);
  return n;
}
