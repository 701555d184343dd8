/**
 * What `npm run demo` runs: the demo line (configs/demo/demo.yaml). One file names the compile
 * config `--rebuild` compiles, the committed artifact and its public key, the committed items
 * passing the camera and where `--rebuild` draws them from, the camera pace and the reject gate.
 * Switching the demo to another line is an edit here and `npm run demo -- --rebuild`.
 * Paths are relative to the file.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { readYaml, validate, ConfigError } from '../compiler/config/load.ts';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { ItemsSource } from './demo-items.ts';

const int = z.number().int();

export const DemoLineSchema = z.strictObject({
  /** One line, printed first: what the line makes and what the camera decides. */
  title: z.string().min(1),
  /** The compile config `--rebuild` compiles into `artifact`. */
  compile: z.string().min(1),
  artifact: z.string().min(1),
  publicKey: z.string().min(1),
  items: z.strictObject({
    /** The committed sheet (PNG, its JSON beside it). */
    sheet: z.string().min(1),
    source: ItemsSource,
    /** Items per class `--rebuild` writes (the most `--per-class` may ask for). */
    stored: int.min(1).default(24),
  }),
  camera: z.strictObject({ fps: z.number().positive().default(10), upscale: int.min(1).max(8).default(2) }).default({ fps: 10, upscale: 2 }),
  /** A reject gate on a serial line (in-process mock port): NG parts are diverted `delayMs` after capture. */
  rejectGate: z
    .strictObject({
      delayMs: int.min(0).default(300),
      /** The line written to the gate; it ends with the frame id, which the demo's gate reads back. */
      line: z.string().min(1).max(64).regex(/^[\x20-\x7e]+ \{frameId\}$/, 'must be printable ASCII ending with " {frameId}"').default('REJECT {camera} {frameId}'),
    })
    .default({ delayMs: 300, line: 'REJECT {camera} {frameId}' }),
});

export type DemoLine = z.output<typeof DemoLineSchema> & { file: string };

const abs = (dir: string, p: string) => (isAbsolute(p) ? p : resolve(dir, p));

export function loadDemoLine(file: string): DemoLine {
  const line = validate(DemoLineSchema, readYaml(file), file, 'demo line');
  const dir = dirname(resolve(file));
  return { ...line, file, compile: abs(dir, line.compile), artifact: abs(dir, line.artifact), publicKey: abs(dir, line.publicKey), items: { ...line.items, sheet: abs(dir, line.items.sheet) } };
}

/**
 * Items must be parts the model never saw: for a parts line drawn from the same generator
 * settings as the compile config, `firstIndex` must be past the training and validation images.
 */
export function checkItemsUnseen(line: DemoLine): void {
  const s = line.items.source;
  if (s.kind !== 'parts') return;
  const data = loadCompileConfig(line.compile).data;
  if (data.kind !== 'parts' || data.seed !== s.seed || data.part !== s.part || data.material !== s.material) return;
  if (s.firstIndex < data.perClass) {
    throw new ConfigError('CONFIG_INVALID', line.file, 'invalid demo line', [{ field: 'items.source.firstIndex', message: `${s.firstIndex} draws parts ${line.compile} trains or validates on (indices 0–${data.perClass - 1} per class); use ${data.perClass} or more` }]);
  }
}
