// Turns zod issues into "field: reason (got value)" entries for DeviceConfigError, so every
// config error names the field, the bad value and what is allowed.

import type { z } from 'zod';

export interface FieldIssue {
  field: string;
  message: string;
}

function join(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out === '' ? '' : '.'}${String(p)}`;
  return out === '' ? '(root)' : out;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function fieldIssues(error: z.ZodError, prefix: string): FieldIssue[] {
  return error.issues.map((iss) => {
    const raw = iss as unknown as Record<string, unknown>;
    if (iss.code === 'unrecognized_keys') {
      const keys = (raw.keys as string[] | undefined) ?? [];
      return { field: join(prefix, [...iss.path, keys[0] ?? '']), message: `unknown field(s) ${keys.join(', ')}; check the spelling` };
    }
    const field = join(prefix, iss.path);
    if (iss.code === 'invalid_union' && typeof raw.discriminator === 'string') {
      // zod puts the discriminator in the path and the whole object in `input`.
      const obj = raw.input;
      const value = obj !== null && typeof obj === 'object' ? (obj as Record<string, unknown>)[raw.discriminator] : undefined;
      const options = Array.isArray(raw.options) ? raw.options.map(String).join(' | ') : '?';
      return { field, message: `must be one of ${options} (got ${show(value)})` };
    }
    const got = 'input' in raw ? ` (got ${show(raw.input)})` : '';
    return { field, message: `${iss.message}${got}` };
  });
}
