/**
 * Config plumbing for the compile stage: YAML read at the boundary (runtime/config/yaml.ts, the
 * same reader as the device config), `--set a.b=value` overrides, and validation that reports
 * every problem at once through the one ConfigError (runtime/config/errors.ts): file, field path,
 * the value, and a spelling hint.
 */
import { parse as parseYamlScalar } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../../runtime/config/errors.ts';
import { readYamlFile } from '../../runtime/config/yaml.ts';
import { fieldIssues, type FieldIssue } from '../../devices/config-issues.ts';

export { ConfigError };

export const readYaml = readYamlFile;

/** One problem with one field of a config file, found after the schema passed (e.g. against the data). */
export function fieldError(file: string, field: string, message: string, what = 'compile config'): ConfigError {
  return new ConfigError('CONFIG_INVALID', file, `invalid ${what}`, [{ field, message }]);
}

/** Apply `path.to.field=value` overrides; values are parsed as YAML scalars (numbers, booleans, lists). */
export function applyOverrides(raw: unknown, sets: readonly string[]): unknown {
  const root = (raw && typeof raw === 'object' ? structuredClone(raw) : {}) as Record<string, unknown>;
  const bad = sets.filter((s) => s.indexOf('=') <= 0);
  if (bad.length) throw new ConfigError('CONFIG_INVALID', '--set', 'malformed override', bad.map((s) => ({ field: s, message: 'expected key.path=value, e.g. recipe.epochs=3' })));
  for (const s of sets) {
    const eq = s.indexOf('=');
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

/** Marks issues whose field a `--set` wrote (or lies under), so the user looks at the flag, not the file. */
function markOverrides(issues: FieldIssue[], sets: readonly string[]): FieldIssue[] {
  const paths = sets.map((s) => s.slice(0, s.indexOf('=')));
  return issues.map((i) => (paths.some((p) => i.field === p || i.field.startsWith(`${p}.`) || i.field.startsWith(`${p}[`)) ? { ...i, message: `${i.message} (from --set)` } : i));
}

/**
 * Validates `raw` against `schema`; `more` adds checks the schema cannot make (they run on the
 * raw value, so their problems are reported together with the schema's). Throws one ConfigError
 * CONFIG_INVALID listing every problem.
 */
export function validate<S extends z.ZodType>(schema: S, raw: unknown, file: string, what: string, opts: { sets?: readonly string[]; more?: (raw: unknown) => FieldIssue[] } = {}): z.output<S> {
  const r = schema.safeParse(raw, { reportInput: true });
  const issues = [...(r.success ? [] : fieldIssues(r.error, '', schema)), ...(opts.more?.(raw) ?? [])];
  if (issues.length === 0 && r.success) return r.data;
  throw new ConfigError('CONFIG_INVALID', file, `invalid ${what}`, markOverrides(issues, opts.sets ?? []));
}
