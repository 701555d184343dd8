// Turns zod issues into "field: reason (got value)" entries, one per problem, so every config error
// (compile config, device config, manifest, MQTT options, camera/serial/trigger configs) names the
// field, the bad value and what is allowed, with a spelling hint for a mistyped key or choice. It
// lives at the bottom layer (devices/) because every layer above reports through it.

import type { z } from 'zod';

export interface FieldIssue {
  field: string;
  message: string;
}

/** `a.b[2].c` from a prefix and a zod path. */
export function fieldPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out === '' ? '' : '.'}${String(p)}`;
  return out === '' ? '(root)' : out;
}

export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Edit distance (insert, delete, substitute, swap neighbours): small strings only. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known word closest to `word` when it is plausibly a misspelling of it (case-insensitive). */
export function didYouMean(word: string, known: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(w, k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(Math.max(word.length, best.length) / 3)) ? best : undefined;
}

/** `; did you mean "x"?` or nothing. */
export const hint = (word: string, known: Iterable<string>): string => {
  const k = didYouMean(word, known);
  return k === undefined ? '' : `; did you mean ${JSON.stringify(k)}?`;
};

/** The spelling hint when there is one, else the list of what is known. */
export const hintOrKnown = (word: string, known: readonly string[]): string => hint(word, known) || `; known: ${known.join(', ')}`;

type Def = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; in?: z.ZodType; element?: z.ZodType; valueType?: z.ZodType; options?: z.ZodType[]; left?: z.ZodType; right?: z.ZodType; getter?: () => z.ZodType };
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Every schema that may describe the value at `path` (unions give several). */
function schemasAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType[] {
  const d = defOf(schema);
  const wrapped = d.innerType ?? d.in ?? d.getter?.();
  if (wrapped) return schemasAt(wrapped, path);
  if (d.type === 'union') return (d.options ?? []).flatMap((o) => schemasAt(o, path));
  if (d.type === 'intersection') return [d.left!, d.right!].flatMap((o) => schemasAt(o, path));
  if (path.length === 0) return [schema];
  const [head, ...rest] = path;
  if (d.type === 'object' && typeof head === 'string' && d.shape?.[head]) return schemasAt(d.shape[head], rest);
  if (d.type === 'array' && typeof head === 'number' && d.element) return schemasAt(d.element, rest);
  if (d.type === 'record' && d.valueType) return schemasAt(d.valueType, rest);
  return [];
}

/** The field names an object schema at `path` allows (empty when unknown). */
export function knownKeys(schema: z.ZodType | undefined, path: readonly PropertyKey[]): string[] {
  if (!schema) return [];
  const keys = new Set<string>();
  for (const s of schemasAt(schema, path)) {
    const d = defOf(s);
    if (d.type === 'object' && d.shape) for (const k of Object.keys(d.shape)) keys.add(k);
  }
  return [...keys];
}

/** Fields whose values never appear in a message (they end up in logs). */
const SECRET = /password|passphrase|secret|token|private/i;

/**
 * Every zod issue as a FieldIssue (values appear when the parse ran with `reportInput: true`, or
 * are looked up in `root`, the value parsed). Pass the schema that failed to get spelling hints
 * for unknown keys (one issue per key) and mistyped choices.
 */
export function fieldIssues(error: z.ZodError, prefix: string, schema?: z.ZodType, root?: unknown): FieldIssue[] {
  return error.issues.flatMap((iss): FieldIssue[] => {
    const raw = { ...(iss as unknown as Record<string, unknown>) };
    if (!('input' in raw) && root !== undefined) {
      // Parsed without reportInput (a library's own .parse): look the value up in what was parsed.
      const v = iss.path.reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<PropertyKey, unknown>)[k] : undefined), root);
      if (v !== undefined) raw.input = v;
    }
    if (iss.code === 'unrecognized_keys') {
      const known = knownKeys(schema, iss.path);
      const keys = (raw.keys as string[] | undefined) ?? [];
      return keys.map((k) => {
        const close = didYouMean(k, known);
        const tail = close !== undefined ? `; did you mean ${JSON.stringify(close)}?` : known.length > 0 ? `; known: ${known.join(', ')}` : '; check the spelling';
        return { field: fieldPath(prefix, [...iss.path, k]), message: `unknown field${tail}` };
      });
    }
    const field = fieldPath(prefix, iss.path);
    if (iss.code === 'invalid_union' && typeof raw.discriminator === 'string') {
      // zod puts the discriminator in the path and the whole object in `input`.
      const obj = raw.input;
      const value = obj !== null && typeof obj === 'object' ? (obj as Record<string, unknown>)[raw.discriminator] : undefined;
      const options = Array.isArray(raw.options) ? raw.options.map(String) : [];
      return [{ field, message: `must be one of ${options.join(' | ') || '?'} (got ${showValue(value)})${typeof value === 'string' ? hint(value, options) : ''}` }];
    }
    const secret = SECRET.test(String(iss.path.at(-1) ?? ''));
    const got = 'input' in raw ? ` (got ${secret ? 'a value not shown here' : showValue(raw.input)})` : '';
    if (iss.code === 'invalid_value' && typeof raw.input === 'string' && Array.isArray(raw.values)) {
      return [{ field, message: `${iss.message}${got}${hint(raw.input, raw.values.map(String))}` }];
    }
    return [{ field, message: `${iss.message}${got}` }];
  });
}

/**
 * One way to show a list of problems: a single problem on one line (`file: what: field: reason`),
 * several as a header and one indented line each.
 */
export function issueReport(head: string, issues: readonly FieldIssue[]): string {
  if (issues.length === 1) return `${head}: ${issues[0]!.field}: ${issues[0]!.message}`;
  return `${head} (${issues.length} problems):\n${issues.map((i) => `  ${i.field}: ${i.message}`).join('\n')}`;
}
