/**
 * Shared config plumbing: YAML files parsed at the boundary, validated by a zod schema, with
 * errors that name the file, the field path and the reason; `--set a.b=value` overrides.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseDocument, parse as parseYamlScalar } from 'yaml';
import type { z } from 'zod';
import { CompilerError } from '../ops/errors.ts';

export class ConfigError extends CompilerError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, reason: string) {
    super('BAD_ARGUMENT', `${file}: ${field ? `${field}: ` : ''}${reason}`);
    this.name = 'ConfigError';
    this.file = file;
    this.field = field;
  }
}

export function readYaml(file: string): unknown {
  if (!existsSync(file)) throw new CompilerError('FILE_NOT_FOUND', `${file}: no such config file`);
  const doc = parseDocument(readFileSync(file, 'utf8'), { prettyErrors: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0];
    throw new ConfigError(file, line ? `line ${line.line}, column ${line.col}` : '', `not valid YAML: ${e.message.split('\n')[0]}`);
  }
  return doc.toJS();
}

/** Apply `path.to.field=value` overrides; values are parsed as YAML scalars (numbers, booleans, lists). */
export function applyOverrides(raw: unknown, sets: readonly string[]): unknown {
  const root = (raw && typeof raw === 'object' ? structuredClone(raw) : {}) as Record<string, unknown>;
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ConfigError('--set', s, 'expected key.path=value');
    const path = s.slice(0, eq).split('.');
    const value = parseYamlScalar(s.slice(eq + 1)) as unknown;
    let node = root;
    for (const k of path.slice(0, -1)) {
      if (!node[k] || typeof node[k] !== 'object') node[k] = {};
      node = node[k] as Record<string, unknown>;
    }
    node[path.at(-1)!] = value;
  }
  return root;
}

export function validate<S extends z.ZodType>(schema: S, raw: unknown, file: string): z.infer<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.map(String).join('.') || '(top level)';
  let reason = issue.message;
  if (issue.code === 'unrecognized_keys') reason = `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more problem(s))` : '';
  throw new ConfigError(file, field, reason + more);
}
