// Device profiles (devices/profiles/<name>.yaml): what a class of device runs best. The compiler's
// `--target` reads the preferred precisions; the runtime reads the execution providers (in order),
// threads and batch size. One zod schema, here in runtime/ so both sides share it.
//
// TensorRT options: the Node binding of onnxruntime passes only `deviceId` to an execution
// provider, so fp16/int8/engine-cache settings are applied through the environment variables the
// TensorRT EP reads when given no explicit options (ORT_TENSORRT_*), set before the session is made.

import { existsSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { Precision } from '../artifact/manifest.ts';
import { ConfigError } from './errors.ts';
import { didYouMean } from '../../devices/config-issues.ts';
import { parseWith, readYamlFile } from './yaml.ts';

const int = z.number().int();

/** One execution provider, discriminated by name (onnxruntime's own names). */
export const ExecutionProvider = z.discriminatedUnion('name', [
  z.strictObject({
    name: z.literal('tensorrt'),
    deviceId: int.min(0).default(0),
    fp16: z.boolean().default(true),
    int8: z.boolean().default(false),
    /** Built engines are cached here; the first start on a device builds them (minutes on a Jetson). */
    engineCacheDir: z.string().min(1).optional(),
    workspaceMiB: int.min(1).optional(),
  }),
  z.strictObject({ name: z.literal('cuda'), deviceId: int.min(0).default(0) }),
  z.strictObject({ name: z.literal('cpu') }),
]);
export type ExecutionProvider = z.output<typeof ExecutionProvider>;

export const DeviceProfile = z
  .strictObject({
    schemaVersion: z.literal(1),
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be lowercase letters, digits and -'),
    description: z.string().optional(),
    arch: z.enum(['arm64', 'x64']),
    /** Precisions the compiler should try, best first; it ships the first that passes its accuracy gate. */
    precisions: z.array(Precision).min(1),
    /** Tried in order; the first that loads (and warms up) runs the model. */
    executionProviders: z.array(ExecutionProvider).min(1),
    threads: z
      .strictObject({
        /** onnxruntime intra-op threads; 0 = its default (one per physical core). */
        intraOp: int.min(0).default(0),
        interOp: int.min(0).default(1),
        /** Idle ORT threads spin for work; off on edge devices, where ffmpeg and Node need the cores. */
        spinning: z.boolean().default(false),
        /**
         * Where ORT sessions run: `worker` (a worker thread; inference overlaps with camera reads,
         * MQTT, the outbox and PLC deadlines) or `main` (the event loop's thread, blocked for every
         * run: with a ~1 ms model on 2 cores the faster one, since the worker is one more busy thread).
         */
        inference: z.enum(['worker', 'main']).default('worker'),
      })
      .default({ intraOp: 0, interOp: 1, spinning: false, inference: 'worker' }),
    graphOptimizationLevel: z.enum(['disabled', 'basic', 'extended', 'all']).default('all'),
    /** Inference runs before the model is reported ready (TensorRT builds its engine on the first). */
    warmupRuns: int.min(0).max(100).default(3),
    /** Most frames (from all cameras) batched into one run. */
    maxBatch: int.min(1).max(64).default(4),
  })
  .superRefine((p, ctx) => {
    const names = p.executionProviders.map((e) => e.name);
    names.forEach((n, i) => {
      if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: ['executionProviders', i, 'name'], message: `${n} is listed twice` });
    });
  });
export type DeviceProfile = z.output<typeof DeviceProfile>;
export type DeviceProfileInput = z.input<typeof DeviceProfile>;

export const preferredPrecision = (p: DeviceProfile) => p.precisions[0]!;

/**
 * Where profiles are looked for: $EDGEPROMPT_PROFILES, `profiles/` beside the running module (the
 * bundle ships them in dist/profiles), and the source tree's devices/profiles.
 */
function defaultProfileDirs(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const dirs = [process.env.EDGEPROMPT_PROFILES, join(here, 'profiles'), resolve(here, '../../devices/profiles'), resolve(here, '../devices/profiles')];
  return [...new Set(dirs.filter((d): d is string => typeof d === 'string' && d !== ''))];
}

function parseProfile(value: unknown, file: string): DeviceProfile {
  return parseWith(DeviceProfile, value, file, 'device profile', 'PROFILE_INVALID');
}

export function loadProfileFile(file: string): DeviceProfile {
  return parseProfile(readYamlFile(file), file);
}

/** Profile names available in `dirs`. */
export function listProfiles(dirs: readonly string[] = defaultProfileDirs()): string[] {
  const names = new Set<string>();
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (f.endsWith('.yaml')) names.add(f.slice(0, -5));
  }
  return [...names].sort();
}

/**
 * A profile by name (`jetson-orin-nano`) or path (`./my.yaml`, relative to `baseDir`).
 * `from` names the config file that asked, for the error message.
 */
export function loadProfile(ref: string, opts: { dirs?: readonly string[]; baseDir?: string; from?: string } = {}): DeviceProfile {
  if (ref.includes('/') || ref.endsWith('.yaml') || ref.endsWith('.yml')) {
    return loadProfileFile(isAbsolute(ref) ? ref : resolve(opts.baseDir ?? '.', ref));
  }
  const dirs = opts.dirs ?? defaultProfileDirs();
  for (const d of dirs) {
    const f = join(d, `${ref}.yaml`);
    if (existsSync(f)) return loadProfileFile(f);
  }
  const known = listProfiles(dirs);
  throw new ConfigError(
    'PROFILE_NOT_FOUND',
    opts.from ?? '(profile)',
    `profile ${JSON.stringify(ref)} not found in ${dirs.join(', ')}`,
    [{ field: 'profile', message: `${didYouMean(ref, known) ? `did you mean ${JSON.stringify(didYouMean(ref, known))}? ` : ''}known profiles: ${known.join(', ') || 'none'} (or give a path to a profile .yaml)` }],
  );
}
