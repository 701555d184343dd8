// The serial PLC config contract: the port and the handshake's timing, validated at the boundary.

import { z } from 'zod';
import { DeviceConfigError } from '../errors.ts';
import { fieldIssues } from '../config-issues.ts';
import type { LineEnding, SerialLink } from './link.ts';
import { PlcHandshake, type PlcOptions } from './plc.ts';
import { SerialPortLink } from './serialport-link.ts';

const ms = z.number().int().nonnegative();
const printable = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[\x20-\x7e]+$/, 'must be printable ASCII (the line ending is added for you)');

export const serialLinkConfigSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('serialport'),
    path: z.string().min(1),
    baudRate: z.number().int().positive().default(115_200),
    lineEnding: z.enum(['crlf', 'lf', 'cr']).default('crlf'),
    maxLineLength: z.number().int().min(16).max(4096).default(256),
  }),
]);

export const plcConfigSchema = z.strictObject({
  link: serialLinkConfigSchema,
  readyOn: z.enum(['capture', 'trigger']).default('capture'),
  captureTimeoutMs: ms.min(1).default(1000),
  resultTimeoutMs: ms.min(1).default(2000),
  ackTimeoutMs: ms.min(1).default(500),
  resultRetries: z.number().int().min(0).max(10).default(2),
  maxPending: z.number().int().min(1).max(1024).default(16),
  reject: z
    .strictObject({
      delayMs: ms,
      line: printable.default('REJECT {id}'),
      onMissedDeadline: z.enum(['fire', 'skip']).default('fire'),
    })
    .optional(),
  reconnect: z.strictObject({ initialMs: ms.optional(), factor: z.number().min(1).optional(), maxMs: ms.optional() }).optional(),
});

export type SerialLinkConfig = z.output<typeof serialLinkConfigSchema>;
export type PlcConfig = z.output<typeof plcConfigSchema>;

const ENDINGS: Record<'crlf' | 'lf' | 'cr', LineEnding> = { crlf: '\r\n', lf: '\n', cr: '\r' };

export function parsePlcConfig(raw: unknown, where = 'serial'): PlcConfig {
  const r = plcConfigSchema.safeParse(raw, { reportInput: true });
  if (!r.success) throw new DeviceConfigError('E_SERIAL_CONFIG', fieldIssues(r.error, where));
  return r.data;
}

function plcOptions(cfg: PlcConfig): PlcOptions {
  const o: PlcOptions = {
    readyOn: cfg.readyOn,
    captureTimeoutMs: cfg.captureTimeoutMs,
    resultTimeoutMs: cfg.resultTimeoutMs,
    ackTimeoutMs: cfg.ackTimeoutMs,
    resultRetries: cfg.resultRetries,
    maxPending: cfg.maxPending,
  };
  if (cfg.reject !== undefined) o.reject = cfg.reject;
  if (cfg.reconnect !== undefined) {
    const { initialMs, factor, maxMs } = cfg.reconnect;
    o.reconnect = { ...(initialMs !== undefined && { initialMs }), ...(factor !== undefined && { factor }), ...(maxMs !== undefined && { maxMs }) };
  }
  return o;
}

/** A configured line, resolved: what a SerialLink implementation is built from. */
export interface LinkSpec {
  path: string;
  baudRate: number;
  lineEnding: LineEnding;
  maxLineLength: number;
}

/**
 * Builds the link for a configured line. The default opens real ports; a program with no port to
 * open (`npm run demo`'s reject gate, tests) passes one that returns MockSerialLinks instead.
 */
export type LinkFactory = (spec: LinkSpec) => SerialLink;
export const serialPortLinks: LinkFactory = (spec) => new SerialPortLink(spec);

function linkSpec(l: SerialLinkConfig): LinkSpec {
  return { path: l.path, baudRate: l.baudRate, lineEnding: ENDINGS[l.lineEnding], maxLineLength: l.maxLineLength };
}

/** The serial link a validated config names (not opened): the one place a link is built from config. */
export function createLink(cfg: SerialLinkConfig, links: LinkFactory = serialPortLinks): SerialLink {
  return links(linkSpec(cfg));
}

/** Validates `raw` and builds the handshake on a serial port (real unless `links` says otherwise; not started). */
export function createPlc(raw: unknown, where = 'serial', links: LinkFactory = serialPortLinks): PlcHandshake {
  const cfg = parsePlcConfig(raw, where);
  return new PlcHandshake(createLink(cfg.link, links), plcOptions(cfg));
}
