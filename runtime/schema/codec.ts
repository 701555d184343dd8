// JSON <-> payload at the MQTT boundary. Nothing past this point reads raw JSON (house rule 6).

import type { z } from 'zod';

export type PayloadErrorCode = 'BAD_JSON' | 'INVALID_PAYLOAD';

/** A message that is not JSON or fails its schema; `message` lists `field: reason` for every issue. */
export class PayloadError extends Error {
  override readonly name = 'PayloadError';
  constructor(
    readonly code: PayloadErrorCode,
    readonly topic: string,
    message: string,
    readonly issues: readonly z.core.$ZodIssue[] = [],
  ) {
    super(message);
  }
}

/** `a.b[2].c: reason; d: reason`, the root path written as `(payload)`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      const path = i.path.reduce<string>(
        (acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)),
        '',
      );
      return `${path || '(payload)'}: ${i.message}`;
    })
    .join('; ');
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: PayloadError };

/** Parses JSON bytes and validates them; never throws. */
export function decodePayload<S extends z.ZodType>(
  schema: S,
  topic: string,
  bytes: Uint8Array | string,
): Decoded<z.output<S>> {
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return { ok: false, error: new PayloadError('BAD_JSON', topic, `payload on ${topic} is not JSON: ${why}`) };
  }
  return validatePayload(schema, topic, json);
}

/** Validates an already-parsed value; never throws. */
function validatePayload<S extends z.ZodType>(schema: S, topic: string, value: unknown): Decoded<z.output<S>> {
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, value: r.data };
  return {
    ok: false,
    error: new PayloadError(
      'INVALID_PAYLOAD',
      topic,
      `payload on ${topic} is invalid: ${formatIssues(r.error.issues)}`,
      r.error.issues,
    ),
  };
}

/** Validates and serializes an outgoing payload; throws PayloadError so a bad publisher fails loudly. */
export function encodePayload<S extends z.ZodType>(schema: S, topic: string, value: z.input<S>): Buffer {
  const r = validatePayload(schema, topic, value);
  if (!r.ok) throw r.error;
  return Buffer.from(JSON.stringify(r.value));
}
