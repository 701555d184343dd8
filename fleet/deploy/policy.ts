// The rollout policy (rollout.yaml, docs/deploy.md "Policy"): how a rollout is staged and when it
// stops, plus the transfer, shadow and watch rules every device applies (signed into the
// deployment document). ONE zod schema, parsed at the boundary; errors name the file and field.

import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { z } from 'zod';
import { formatIssues } from '../../runtime/schema/codec.ts';
import { DeployError, MAX_BLOCK_BYTES, MIN_BLOCK_BYTES, ShadowPolicy, WatchPolicy } from '../../runtime/schema/deploy.ts';
import { DeviceId } from '../../runtime/schema/payloads.ts';

const int = z.number().int();
const Seconds = z.number().positive().max(30 * 86_400);

export const TransferPolicy = z.discriminatedUnion('via', [
  z.strictObject({
    via: z.literal('mqtt'),
    /** Block size, 16 to 128 KiB. */
    blockKiB: int.min(MIN_BLOCK_BYTES / 1024).max(MAX_BLOCK_BYTES / 1024).default(64),
    /** Bandwidth the controller uses for all devices together (KiB/s); 0 = unlimited. */
    maxKiBps: z.number().min(0).default(0),
    stallS: Seconds.default(120),
    maxBadBlocks: int.min(0).default(8),
  }),
  z.strictObject({
    via: z.literal('http'),
    /** Where devices GET the file; its sha256 is pinned in the signed document. */
    url: z.string().regex(/^https?:\/\/\S+$/i, 'must be an http:// or https:// URL'),
    stallS: Seconds.default(120),
  }),
]);

export const RolloutPolicy = z
  .strictObject({
    /** Devices that go first and alone: a number (the first targets by id) or a list of ids. */
    canary: z.union([int.min(0), z.array(DeviceId).min(1)]).default(1),
    /** Then stages, each a cumulative share of all targets in percent, ascending, ending at 100. */
    stages: z.array(z.number().gt(0).max(100)).min(1).default([100]),
    /** The rollout stops when this many devices failed, or this share of the targets (a canary failure always stops it). */
    abortAt: z.strictObject({ failures: int.min(1).default(1), percent: z.number().gt(0).max(100).optional() }).default({ failures: 1 }),
    /** A stage whose devices are not all done (committed or failed) after this long stops the rollout. */
    stageTimeoutS: Seconds.default(3600),
    /** Devices refuse the signed document after this (an old document cannot be replayed later). */
    expiresInH: z.number().positive().max(24 * 365).default(72),
    /** Install even where a higher release was accepted (the document names this exact file). */
    allowDowngrade: z.boolean().default(false),
    transfer: TransferPolicy.default({ via: 'mqtt', blockKiB: 64, maxKiBps: 0, stallS: 120, maxBadBlocks: 8 }),
    shadow: ShadowPolicy.default(ShadowPolicy.parse({})),
    watch: WatchPolicy.default(WatchPolicy.parse({})),
  })
  .superRefine((p, ctx) => {
    p.stages.forEach((s, i) => {
      if (i > 0 && s <= p.stages[i - 1]!) ctx.addIssue({ code: 'custom', path: ['stages', i], message: `${s} must be above the stage before (${p.stages[i - 1]}): stages are cumulative percentages` });
    });
    if (p.stages.at(-1) !== 100) ctx.addIssue({ code: 'custom', path: ['stages', p.stages.length - 1], message: 'the last stage must be 100 (every target)' });
  });
export type RolloutPolicy = z.output<typeof RolloutPolicy>;
export type RolloutPolicyInput = z.input<typeof RolloutPolicy>;

/** Validates a parsed policy; POLICY_INVALID naming the file and every bad field. */
export function parsePolicy(value: unknown, file: string): RolloutPolicy {
  const r = RolloutPolicy.safeParse(value ?? {});
  if (!r.success) throw new DeployError('POLICY_INVALID', `${file}: invalid rollout policy: ${formatIssues(r.error.issues)}`);
  return r.data;
}

export async function loadPolicy(file: string): Promise<RolloutPolicy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DeployError('POLICY_INVALID', `${file}: cannot read the rollout policy (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`);
  }
  let value: unknown;
  try {
    value = YAML.parse(text, { prettyErrors: true });
  } catch (e) {
    throw new DeployError('POLICY_INVALID', `${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  return parsePolicy(value, file);
}
