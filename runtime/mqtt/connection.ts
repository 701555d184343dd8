// Broker connection options shared by the reporter and the subscriber clients: one zod schema, and
// the translation into mqtt.js options (TLS files read here, errors naming the field and path).
//
// aedes 1.x speaks MQTT 3.1.1 only, so protocolVersion 4 is supported: it loses sessionExpiryInterval
// (the broker keeps a clean:false session until it is cleaned) and responseTopic/correlationData
// (requesters correlate by the `id` field instead).

import { readFileSync } from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';
import { z } from 'zod';
import { fieldIssues, issueReport } from '../../devices/config-issues.ts';
import { MqttOptionsError } from './errors.ts';

export const TlsOptions = z
  .strictObject({
    // Each PEM is given inline (`ca`) or as a file path (`caFile`), not both.
    ca: z.string().min(1).optional(), // trust these CAs instead of the system store
    caFile: z.string().min(1).optional(),
    cert: z.string().min(1).optional(), // client certificate (mutual TLS)
    certFile: z.string().min(1).optional(),
    key: z.string().min(1).optional(), // its private key
    keyFile: z.string().min(1).optional(),
    passphrase: z.string().optional(),
    rejectUnauthorized: z.boolean().default(true),
    servername: z.string().min(1).optional(), // SNI / certificate name when the URL holds an IP
  })
  .superRefine((v, ctx) => {
    for (const f of ['ca', 'cert', 'key'] as const) {
      if (v[f] !== undefined && v[`${f}File`] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [f], message: `give ${f} or ${f}File, not both` });
      }
    }
    const hasCert = v.cert !== undefined || v.certFile !== undefined;
    const hasKey = v.key !== undefined || v.keyFile !== undefined;
    if (hasCert !== hasKey) {
      ctx.addIssue({ code: 'custom', path: [hasCert ? 'key' : 'cert'], message: 'a client certificate needs both cert and key' });
    }
  });
export type TlsOptions = z.output<typeof TlsOptions>;

export const ConnectionOptions = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtt|mqtts|tcp|ssl|tls|ws|wss):\/\/[^/]+/, 'must look like mqtt://host:1883 or mqtts://host:8883'),
  /** Fixed client id; required for a persistent session. */
  clientId: z.string().min(1).max(128).optional(),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
  username: z.string().min(1).optional(),
  password: z.string().optional(),
  tls: TlsOptions.optional(),
  keepaliveS: z.number().int().min(1).max(65535).default(30),
  /** Must be > 0: a client that never reconnects loses everything after the first outage. */
  reconnectPeriodMs: z.number().int().min(1).default(1000),
  connectTimeoutMs: z.number().int().min(1).default(10_000),
  /** MQTT v5: how long the broker keeps the session (and queued QoS 1 messages) after a disconnect. */
  sessionExpiryS: z.number().int().min(1).max(0xffffffff).default(7 * 24 * 3600),
});
export type ConnectionOptions = z.output<typeof ConnectionOptions>;

/** Parses options or throws MqttOptionsError INVALID_OPTIONS listing every bad field. */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = schema.safeParse(input, { reportInput: true });
  if (r.success) return r.data;
  const issues = fieldIssues(r.error, '', schema);
  throw new MqttOptionsError('INVALID_OPTIONS', issueReport(`invalid ${what} options`, issues), undefined, issues);
}

function readPem(value: string | undefined, file: string | undefined, field: string): string | undefined {
  if (value !== undefined) return value;
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new MqttOptionsError(
      'TLS_FILE_UNREADABLE',
      `tls.${field}File ${JSON.stringify(file)} cannot be read (${(e as NodeJS.ErrnoException).code ?? e}); fix the path or permissions`,
      { cause: e },
    );
  }
}

export interface SessionChoice {
  clientId: string;
  /** false: persistent session (queued QoS 1 kept by the broker while we are away). */
  clean: boolean;
  will?: IClientOptions['will'];
}

/** mqtt.js options for a connection. Resubscription is left to the caller (see client.ts). */
export function toMqttOptions(o: ConnectionOptions, s: SessionChoice): IClientOptions {
  // mqtt.js hands its options to tls.connect, which reads passphrase; its types just omit it.
  const opts: IClientOptions & { passphrase?: string } = {
    clientId: s.clientId,
    clean: s.clean,
    protocolVersion: o.protocolVersion,
    keepalive: o.keepaliveS,
    reconnectPeriod: o.reconnectPeriodMs,
    connectTimeout: o.connectTimeoutMs,
    resubscribe: false,
    // Health is QoS 0 and stale after an outage; QoS 1 messages are queued by mqtt.js anyway.
    queueQoSZero: false,
  };
  if (s.will) opts.will = s.will;
  if (o.username !== undefined) opts.username = o.username;
  if (o.password !== undefined) opts.password = o.password;
  if (o.protocolVersion === 5 && !s.clean) opts.properties = { sessionExpiryInterval: o.sessionExpiryS };
  if (o.tls) {
    const t = o.tls;
    const ca = readPem(t.ca, t.caFile, 'ca');
    const cert = readPem(t.cert, t.certFile, 'cert');
    const key = readPem(t.key, t.keyFile, 'key');
    if (ca !== undefined) opts.ca = ca;
    if (cert !== undefined) opts.cert = cert;
    if (key !== undefined) opts.key = key;
    if (t.passphrase !== undefined) opts.passphrase = t.passphrase;
    if (t.servername !== undefined) opts.servername = t.servername;
    opts.rejectUnauthorized = t.rejectUnauthorized;
  }
  return opts;
}

/**
 * Ends a connection: a clean DISCONNECT when connected (no will, session kept, in-flight QoS 1
 * given up to `timeoutMs` to be acknowledged), otherwise stop reconnecting at once.
 */
export async function endClient(client: MqttClient, timeoutMs: number): Promise<void> {
  if (!client.connected) {
    await client.endAsync(true);
    return;
  }
  // end(false) waits for every in-flight packet; a broker that stops answering would hang it, and
  // a second end() during that wait is a no-op, so the socket itself is cut.
  const timer = setTimeout(() => client.stream.destroy(), timeoutMs);
  try {
    await client.endAsync(false);
  } finally {
    clearTimeout(timer);
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e)),
    );
  });
}
