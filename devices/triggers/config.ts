// The trigger config contract (discriminated by `kind`) and its factory.

import { z } from 'zod';
import { DeviceConfigError } from '../errors.ts';
import { fieldIssues } from '../config-issues.ts';
import { createPlc, plcConfigSchema, type LinkFactory } from '../serial/config.ts';
import type { PlcHandshake } from '../serial/plc.ts';
import { CommandTrigger } from './armed.ts';
import { FreeRunTrigger } from './free-run.ts';
import { SerialTrigger } from './serial.ts';
import type { Trigger } from './trigger.ts';

const ms = z.number().int().nonnegative();

export const triggerConfigSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('free-run'), fps: z.number().positive().optional() }),
  z.strictObject({ kind: z.literal('serial'), settleMs: ms.default(0), serial: plcConfigSchema }),
  z.strictObject({ kind: z.literal('mqtt'), settleMs: ms.default(0), expireMs: ms.min(1).default(5000) }),
]);

export type TriggerConfig = z.output<typeof triggerConfigSchema>;

function parseTriggerConfig(raw: unknown, where = 'trigger'): TriggerConfig {
  const r = triggerConfigSchema.safeParse(raw, { reportInput: true });
  if (!r.success) throw new DeviceConfigError('E_TRIGGER_CONFIG', fieldIssues(r.error, where));
  return r.data;
}

/**
 * Builds the trigger. A serial trigger comes with its PlcHandshake, which the caller starts and
 * stops (and feeds decisions through complete()).
 */
export function createTrigger(raw: unknown, where = 'trigger', links?: LinkFactory): { trigger: Trigger; plc?: PlcHandshake } {
  const cfg = parseTriggerConfig(raw, where);
  switch (cfg.kind) {
    case 'free-run':
      return { trigger: new FreeRunTrigger(cfg.fps === undefined ? {} : { fps: cfg.fps }) };
    case 'mqtt':
      return { trigger: new CommandTrigger({ settleMs: cfg.settleMs, expireMs: cfg.expireMs }) };
    case 'serial': {
      const plc = createPlc(cfg.serial, `${where}.serial`, links);
      return { trigger: new SerialTrigger(plc, { settleMs: cfg.settleMs }), plc };
    }
  }
}
