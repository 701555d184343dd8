/**
 * `edgeprompt data …`: dataset chores. Wire it with `addDataCommands(program)` in main.ts; built
 * with program.command() so the subcommands inherit exitOverride and help settings.
 *   data make-parts --out DIR [--per-class N] [--size PX] [--seed S] [--part plate] [--material steel] [--pose fixtured|free] [--lighting line|varied] [--classes a,b] [--force]
 *   data line-video --out FILE [--items demo|parts] [--per-class N] [--fps N]
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CompilerError } from '../compiler/ops/errors.ts';
import { LINE_LIGHTINGS, LINE_POSES, MATERIAL_NAMES, PART_CLASSES, PART_KINDS, writePartsSet, type LineLighting, type LinePose, type MaterialName, type PartKind } from '../compiler/data/parts.ts';
import { checkChoice } from '../compiler/data/errors.ts';
import { exportData } from '../fleet/data/export.ts';
import { ExportError } from '../fleet/data/export-folder.ts';
import { parseDbSpec } from '../fleet/record/db.ts';
import { defaultLog } from '../runtime/log.ts';
import { defaultDbDir, openFlagDb } from './record.ts';
import { makeItemsVideo, makePartsVideo } from './demo-video.ts';

const DEMO_ITEMS = fileURLToPath(new URL('../configs/demo/line-items.png', import.meta.url));

export interface MakePartsFlags {
  out: string;
  perClass: number;
  size: number;
  seed: number;
  part: PartKind;
  material: MaterialName;
  pose: LinePose;
  lighting: LineLighting;
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
    .option('--part <design>', `the part design on the line: ${PART_KINDS.join(', ')} (random: a new design per item)`, (v) => checkChoice(v, '--part', PART_KINDS, 'FLAG_INVALID'), 'plate')
    .option('--material <finish>', `its finish: ${MATERIAL_NAMES.join(', ')} (mixed: one of the first five per item; random: a new non-blue colour per item)`, (v) => checkChoice(v, '--material', MATERIAL_NAMES, 'FLAG_INVALID'), 'steel')
    .option('--pose <pose>', 'fixtured (a real line: ±15°, small offsets) or free (any angle, wider offset and scale)', (v) => checkChoice(v, '--pose', LINE_POSES, 'FLAG_INVALID'), 'fixtured')
    .option('--lighting <kind>', 'line (light from the upper left) or varied (from anywhere, wider exposure)', (v) => checkChoice(v, '--lighting', LINE_LIGHTINGS, 'FLAG_INVALID'), 'line')
    .option('--classes <list>', `comma-separated subset of ${PART_CLASSES.join(',')}`, (v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .option('--force', 'replace a previous make-parts output in --out')
    .action(makePartsCommand);
  data
    .command('line-video')
    .description('a sample camera video, one item per frame: the demo line\'s committed items (blue-anodised brackets past the ones configs/parts-*.yaml train and validate on) or freshly generated parts of other lines')
    .requiredOption('--out <file>', 'video to write (.mp4); its folder is created')
    .option('--items <set>', 'demo | parts', (v) => checkChoice(v, '--items', ['demo', 'parts'] as const, 'FLAG_INVALID'), 'demo' as const)
    .option('--per-class <n>', 'items per class', (v) => intFlag('--per-class', v, 1), 12)
    .option('--fps <n>', 'frames per second', (v) => intFlag('--fps', v, 1), 10)
    .action(lineVideoCommand);
  data
    .command('export')
    .description('write the recorder\'s kept frames, filed by what the line says they are, as an image-folder dataset with a manifest (compile takes it under site.dirs)')
    .option('--db <dir|url>', `the recorder's database: a PGlite directory (default ${defaultDbDir()}) or postgres://user:pass@host/db`)
    .requiredOption('--out <dir>', 'output folder (new or empty)')
    .option('--since <when>', 'frames kept since: an ISO date/time, or an age like 12h, 7d', (v) => parseSince(v))
    .option('--reviewed', 'only frames a label names (a PLC confirmation, the label command, a review in the dashboard)')
    .action(exportCommand);
  return data;
}

/** `7d`, `12h`, `30m` before now, or an ISO date/time. */
export function parseSince(v: string, now = Date.now()): number {
  const m = /^(\d+(?:\.\d+)?)([dhm])$/.exec(v.trim());
  if (m) return now - Number(m[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new CompilerError('FLAG_INVALID', `--since: expected an ISO date/time (2026-12-01, 2026-12-01T06:00) or an age (12h, 7d), got "${v}"`);
  return t;
}

async function exportCommand(f: { db?: string; out: string; since?: number; reviewed?: boolean }): Promise<void> {
  const log = defaultLog('edgeprompt.data');
  const spec = parseDbSpec(f.db ?? defaultDbDir());
  if (spec.kind === 'pglite' && !existsSync(join(spec.dir, 'pgdata'))) {
    throw new ExportError('EXPORT_NO_DB', `no recorder database at ${spec.dir}; give --db the directory \`edgeprompt record\` or \`edgeprompt dashboard\` writes (or a postgres:// URL)`);
  }
  const db = await openFlagDb(f, log);
  try {
    const m = await exportData(db, { out: f.out, reviewedOnly: f.reviewed === true, ...(f.since !== undefined && { since: f.since }) });
    const classes = Object.entries(m.classes).map(([c, n]) => `${c} ${n}`).join(', ');
    const skipped = Object.entries(m.skipped).map(([why, n]) => `${n} (${why})`).join(', ');
    console.log(`wrote ${m.frames.length} frames (${classes}) to ${f.out}${m.reviewedOnly ? ', reviewed only' : ''}${skipped ? `; skipped ${skipped}` : ''}`);
    console.log(`compile them beside the training data: site: { dirs: [${f.out}] } in the compile config (docs/data-loop.md)`);
  } finally {
    await db.close();
  }
}

export async function lineVideoCommand(f: { out: string; items: 'demo' | 'parts'; perClass: number; fps: number }): Promise<void> {
  mkdirSync(dirname(f.out), { recursive: true });
  const v = f.items === 'demo' ? await makeItemsVideo(f.out, DEMO_ITEMS, { perClass: f.perClass, fps: f.fps, upscale: 2 }) : await makePartsVideo(f.out, { perClass: f.perClass, seed: 7, size: 64, fps: f.fps });
  const classes = [...new Set(v.labels)];
  console.log(`wrote ${f.out}: ${v.labels.length} frames of ${v.size}×${v.size} at ${v.fps} fps, ${f.perClass} per class of ${classes.join(', ')}`);
}

export async function makePartsCommand(flags: MakePartsFlags): Promise<void> {
  const t0 = performance.now();
  const m = await writePartsSet(flags.out, { perClass: flags.perClass, size: flags.size, seed: flags.seed, part: flags.part, material: flags.material, pose: flags.pose, lighting: flags.lighting, ...(flags.classes && { classes: flags.classes }), force: flags.force ?? false });
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
