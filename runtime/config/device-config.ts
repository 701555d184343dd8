// The device config (configs/device.yaml): ONE zod schema, parsed at the boundary. Errors name the
// file and every bad field path (`cameras[1].input.kind: must be one of …`). Relative paths in it
// (artifact, packs, keys, outbox, keep, profile, video files, image folders, snapshots) are relative to the
// config file, so a config travels with the files beside it.

import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { cameraConfigSchema, type CameraConfig } from '../../devices/cameras/config.ts';
import { serialLinkConfigSchema } from '../../devices/serial/config.ts';
import { triggerConfigSchema, type TriggerConfig } from '../../devices/triggers/config.ts';
import { DriftConfig } from '../drift/monitor.ts';
import { KeepConfig } from '../keep/config.ts';
import { OutboxConfig } from '../mqtt/outbox-config.ts';
import { ReporterOptions } from '../mqtt/reporter-options.ts';
import { idProblem } from '../mqtt/topics.ts';
import { DeviceId } from '../schema/payloads.ts';
import { DeviceProfile, loadProfile } from './profile.ts';
import { parseWith, readYamlFile } from './yaml.ts';

const int = z.number().int();

/** Broker connection for the reporter: everything but `device` and the health interval (see `health`). */
const MqttConfig = ReporterOptions.omit({ device: true, healthIntervalMs: true });

const RejectOutputConfig = z.strictObject({
  link: serialLinkConfigSchema,
  delayMs: int.min(0),
  line: z.string().min(1).max(64).regex(/^[\x20-\x7e]+$/, 'must be printable ASCII').default('REJECT {camera} {frameId}'),
  /** A decision after the due time: reject anyway (default, fail-safe) or let it pass (devices/serial/reject.ts). */
  onMissedDeadline: z.enum(['fire', 'skip']).default('fire'),
});

/** Accepting deployments (docs/deploy.md): off unless `deploy.dir` is set. */
export const DeployConfig = z.strictObject({
  /** Where installed files, the rollback copies, transfers in progress and state.json live. */
  dir: z.string().min(1),
  /** Keys whose signed deployment documents this device runs; default: trustedKeys. */
  trustedKeys: z.array(z.string().min(1)).optional(),
  /** Block requests outstanding at once during an MQTT transfer. */
  window: int.min(1).max(256).default(16),
  /** An unanswered block request is sent again after this long. */
  retryMs: int.min(50).max(600_000).default(3000),
  /** Free space to leave on the deploy directory's file system (a deployment needing it is DISK_FULL). */
  reserveBytes: int.min(0).default(64 * 1024 * 1024),
});
export type DeployConfig = z.output<typeof DeployConfig>;

const DeviceConfigSchema = z
  .strictObject({
    device: DeviceId,
    /** The .epk to run (and to reload when `reload` names none). */
    artifact: z.string().min(1),
    /** A shared-backbone artifact's prompt pack (.epp) for every camera without its own in `packs`. */
    pack: z.string().min(1).optional(),
    /** Per camera id: the prompt pack it runs on the shared backbone (several tasks, one session). */
    packs: z.record(z.string(), z.string().min(1)).default({}),
    /** Public keys (PEM files, or inline PEM) whose signatures this device accepts. */
    trustedKeys: z.array(z.string().min(1)).default([]),
    /** Run unsigned artifacts when no trustedKeys are set. Development only. */
    allowUnsigned: z.boolean().default(false),
    /** A profile name (devices/profiles/<name>.yaml), a path to one, or the profile inline. */
    profile: z.union([z.string().min(1), z.record(z.string(), z.unknown())], 'must be a profile name, a path to a profile .yaml, or a profile object'),
    cameras: z.array(cameraConfigSchema).min(1),
    /** Per camera id; a camera without an entry is free-running. */
    triggers: z.record(z.string(), triggerConfigSchema).default({}),
    /** Per camera id: a serial reject actuator for cameras without a PLC handshake. */
    rejects: z.record(z.string(), RejectOutputConfig).default({}),
    mqtt: MqttConfig,
    outbox: OutboxConfig,
    health: z.strictObject({ intervalMs: int.min(0).default(10_000) }).default({ intervalMs: 10_000 }),
    inference: z
      .strictObject({
        /** Overrides the profile's maxBatch. */
        maxBatch: int.min(1).max(64).optional(),
        /** Overrides the profile's warmupRuns. */
        warmupRuns: int.min(0).max(100).optional(),
        topK: int.min(1).max(100).default(5),
      })
      .default({ topK: 5 }),
    deploy: DeployConfig.optional(),
    /** The data loop (docs/data-loop.md): frames kept for the recorder, and labels from the line. Off when absent. */
    keep: KeepConfig.optional(),
    /** The drift alarm: on by default for models whose manifest carries a reference. */
    drift: DriftConfig.prefault({}),
  })
  .superRefine((c, ctx) => {
    const ids = c.cameras.map((cam) => cam.id);
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i) ctx.addIssue({ code: 'custom', path: ['cameras', i, 'id'], message: `camera id ${JSON.stringify(id)} is used twice` });
      const why = idProblem('camera', id);
      if (why !== null) ctx.addIssue({ code: 'custom', path: ['cameras', i, 'id'], message: `camera id ${JSON.stringify(id)} ${why}` });
    });
    for (const key of ['triggers', 'rejects', 'packs'] as const) {
      for (const id of Object.keys(c[key])) {
        if (!ids.includes(id)) ctx.addIssue({ code: 'custom', path: [key, id], message: `names camera ${JSON.stringify(id)}, which is not in cameras (${ids.join(', ')})` });
      }
    }
    for (const id of Object.keys(c.keep?.cameras ?? {})) {
      if (!ids.includes(id)) ctx.addIssue({ code: 'custom', path: ['keep', 'cameras', id], message: `names camera ${JSON.stringify(id)}, which is not in cameras (${ids.join(', ')})` });
    }
    for (const id of Object.keys(c.rejects)) {
      if (c.triggers[id]?.kind === 'serial') {
        ctx.addIssue({ code: 'custom', path: ['rejects', id], message: `camera ${id} has a serial PLC trigger; configure the reject in triggers.${id}.serial.reject instead` });
      }
    }
  });

export type DeviceConfigInput = z.input<typeof DeviceConfigSchema>;
type Parsed = z.output<typeof DeviceConfigSchema>;

export interface DeviceConfig extends Omit<Parsed, 'profile' | 'triggers'> {
  /** The config file (for messages) and its folder (for relative paths). */
  file: string;
  dir: string;
  profile: DeviceProfile;
  /** Every camera's trigger (free-run filled in). */
  triggers: Record<string, TriggerConfig>;
  /** Cameras whose config left `resize` out: they follow the model's resize contract. */
  resizeFromModel: Set<string>;
}

const abs = (dir: string, p: string) => (isAbsolute(p) ? p : resolve(dir, p));
const absOrUrl = (dir: string, p: string) => (/^https?:\/\//i.test(p) ? p : abs(dir, p));

function resolveCameraPaths(cam: CameraConfig, dir: string): CameraConfig {
  if (cam.kind === 'ffmpeg' && cam.input.kind === 'file') return { ...cam, input: { ...cam.input, path: abs(dir, cam.input.path) } };
  if (cam.kind === 'folder') return { ...cam, path: abs(dir, cam.path) };
  return cam;
}

/** Validates a parsed YAML/JSON value; `file` names it in errors, `dir` anchors relative paths. */
export function parseDeviceConfig(raw: unknown, file: string, dir = dirname(resolve(file)), profileDirs?: readonly string[]): DeviceConfig {
  const c = parseWith(DeviceConfigSchema, raw, file, 'device config');
  const rawCams = (raw as { cameras?: unknown[] }).cameras ?? [];
  const resizeFromModel = new Set(
    c.cameras.filter((cam, i) => (cam.kind === 'ffmpeg' || cam.kind === 'folder') && !(typeof rawCams[i] === 'object' && rawCams[i] !== null && 'resize' in rawCams[i])).map((cam) => cam.id),
  );
  // A profile file's own errors name that file; an inline profile's name this config's `profile.*`.
  const profile: DeviceProfile =
    typeof c.profile === 'string'
      ? loadProfile(c.profile, { baseDir: dir, from: file, ...(profileDirs && { dirs: profileDirs }) })
      : parseWith(DeviceProfile, c.profile, file, 'device config', 'CONFIG_INVALID', 'profile');
  const triggers: Record<string, TriggerConfig> = {};
  for (const cam of c.cameras) triggers[cam.id] = c.triggers[cam.id] ?? { kind: 'free-run' };
  return {
    ...c,
    file,
    dir,
    profile,
    triggers,
    resizeFromModel,
    artifact: abs(dir, c.artifact),
    ...(c.pack !== undefined && { pack: absOrUrl(dir, c.pack) }),
    packs: Object.fromEntries(Object.entries(c.packs).map(([cam, p]) => [cam, absOrUrl(dir, p)])),
    trustedKeys: c.trustedKeys.map((k) => (k.trimStart().startsWith('-----BEGIN') ? k : abs(dir, k))),
    outbox: c.outbox.kind === 'file' ? { ...c.outbox, dir: abs(dir, c.outbox.dir) } : c.outbox,
    ...(c.keep && { keep: { ...c.keep, dir: abs(dir, c.keep.dir) } }),
    ...(c.deploy && {
      deploy: {
        ...c.deploy,
        dir: abs(dir, c.deploy.dir),
        ...(c.deploy.trustedKeys && { trustedKeys: c.deploy.trustedKeys.map((k) => (k.trimStart().startsWith('-----BEGIN') ? k : abs(dir, k))) }),
      },
    }),
    cameras: c.cameras.map((cam) => resolveCameraPaths(cam, dir)),
  };
}

/** Reads and validates a device config file. */
export function loadDeviceConfig(file: string, profileDirs?: readonly string[]): DeviceConfig {
  return parseDeviceConfig(readYamlFile(file), file, dirname(resolve(file)), profileDirs);
}
