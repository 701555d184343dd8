// Reading a YAML file at the boundary: unreadable and syntax errors become ConfigError naming the
// file (and line/column); nothing past here sees raw text.

import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import type { z } from 'zod';
import { fieldIssues } from '../../devices/config-issues.ts';
import { ConfigError, type ConfigErrorCode } from './errors.ts';

export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('CONFIG_UNREADABLE', file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`, [], { cause: e });
  }
  return parseYamlText(text, file);
}

function parseYamlText(text: string, file: string): unknown {
  // Warnings (an unknown tag, an unknown directive) are refused like errors: YAML.parse would print
  // them as process warnings on stderr and go on with the value as a plain string (found by fuzzing).
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const msg = problem.message.split('\n')[0] ?? String(problem);
    throw new ConfigError('CONFIG_YAML', file, `is not valid YAML: ${msg}`, [], { cause: problem });
  }
  try {
    return doc.toJS();
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? String(e);
    throw new ConfigError('CONFIG_YAML', file, `is not valid YAML: ${msg}`, [], { cause: e });
  }
}

/** schema.safeParse with every issue turned into `field: reason (got value)`, with spelling hints. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, file: string, what: string, code: ConfigErrorCode = 'CONFIG_INVALID', prefix = ''): z.output<S> {
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  throw new ConfigError(code, file, `invalid ${what}`, fieldIssues(r.error, prefix, schema));
}
