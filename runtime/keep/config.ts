// The `keep` section of the device config (docs/data-loop.md "Keep rules"): which frames the
// device keeps for the recorder, how many, where it spools them, how it encodes them. Rules are
// per camera: `rules` for every camera, `cameras.<id>` overriding any of them (limits field by
// field). Without a `keep` section the device keeps nothing and refuses labels (KEEP_DISABLED).

import { z } from 'zod';

const int = z.number().int();
const Probability = z.number().min(0).max(1);

/** Rolling-window limits on frames kept by the automatic rules (labels are not limited: the line sets their pace). */
export const KeepLimits = z.strictObject({
  perMinute: int.min(0).nullable().default(10),
  perHour: int.min(0).nullable().default(120),
  perDay: int.min(0).nullable().default(1000),
  /** At least this long between two kept frames of a camera. */
  minIntervalMs: int.min(0).max(86_400_000).default(1000),
});
export type KeepLimits = z.output<typeof KeepLimits>;

const ruleFields = {
  /** Frames decided NG. */
  ng: z.boolean(),
  /** Frames whose deciding score (okScore, or the top-1 score) lies within ±margin of the camera's threshold. */
  uncertain: z.strictObject({ margin: z.number().gt(0).max(1) }).nullable(),
  /** A random sample of every frame (rate per frame). */
  random: z.strictObject({ rate: Probability }).nullable(),
  /** Frames on which a deployment's candidate in shadow decided otherwise (or named another class). */
  shadow: z.boolean(),
  /** Frames a line confirmation or override (label) names, while the device still holds them. */
  label: z.boolean(),
};

export const KeepRules = z.strictObject({
  ng: ruleFields.ng.default(true),
  uncertain: ruleFields.uncertain.default({ margin: 0.05 }),
  random: ruleFields.random.default(null),
  shadow: ruleFields.shadow.default(true),
  label: ruleFields.label.default(true),
  limits: KeepLimits.prefault({}),
});
export type KeepRules = z.output<typeof KeepRules>;

/** A camera's overrides: any rule, and any limit. */
const CameraRules = z.strictObject({
  ng: ruleFields.ng.optional(),
  uncertain: ruleFields.uncertain.optional(),
  random: ruleFields.random.optional(),
  shadow: ruleFields.shadow.optional(),
  label: ruleFields.label.optional(),
  limits: z
    .strictObject({
      perMinute: int.min(0).nullable().optional(),
      perHour: int.min(0).nullable().optional(),
      perDay: int.min(0).nullable().optional(),
      minIntervalMs: int.min(0).max(86_400_000).optional(),
    })
    .optional(),
});

export const KeepConfig = z.strictObject({
  /** The spool directory (persistent storage): kept frames and labels wait there for the recorder. */
  dir: z.string().min(1),
  /** The spool's bound; past it the oldest entries are dropped and counted. */
  maxBytes: int.min(1024).default(256 * 1024 * 1024),
  maxEntries: int.min(1).default(10_000),
  /** png: lossless, the exact pixels the model saw; jpeg: a fraction of the size (docs/bench/retune.md). */
  encoding: z.strictObject({ format: z.enum(['png', 'jpeg']).default('png'), quality: int.min(1).max(100).default(90) }).prefault({}),
  /** Results (with their frames) each camera holds in memory, so a later label can still keep its frame. */
  recent: int.min(0).max(100_000).default(64),
  /** Spooled messages sent and not yet acknowledged, at most (frames are large; results go first). */
  maxInflight: int.min(1).max(256).default(4),
  /** Frames being encoded at once, at most; a frame past it counts as limited. */
  maxEncoding: int.min(1).max(64).default(4),
  rules: KeepRules.prefault({}),
  cameras: z.record(z.string(), CameraRules).default({}),
});
export type KeepConfigInput = z.input<typeof KeepConfig>;
export type KeepConfig = z.output<typeof KeepConfig>;

/** The rules in force for one camera: the defaults with its overrides. */
export function rulesFor(cfg: KeepConfig, camera: string): KeepRules {
  const o = cfg.cameras[camera];
  if (!o) return cfg.rules;
  const { limits, ...rest } = o;
  const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  const lim = Object.fromEntries(Object.entries(limits ?? {}).filter(([, v]) => v !== undefined));
  return { ...cfg.rules, ...defined, limits: { ...cfg.rules.limits, ...lim } };
}
