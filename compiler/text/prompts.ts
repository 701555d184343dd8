/**
 * Class prompts as token ids (docs/spec/clip.md#tokenizer, docs/spec/dapt.md#forward):
 * - zero-shot: every template with `{}` replaced by each class name, `[template][class]`;
 * - learned context (CoOp, DAPT): `"X X … X {name}."` with n placeholder tokens right after SOT,
 *   whose embeddings the method replaces by its trained context vectors.
 * Class names are cleaned as CLIP's prompt code does: `_` and `-` become spaces (the tokenizer
 * lower-cases).
 */
import { CompilerError } from '../ops/errors.ts';
import type { ClipTokenizer } from './tokenizer.ts';

/** CoOp's zero-shot template (its hand-crafted baseline for generic datasets). */
export const DEFAULT_TEMPLATES: readonly string[] = ['a photo of a {}.'];

export function cleanClassName(name: string): string {
  return name.replace(/[_-]/g, ' ').replace(/\s+/g, ' ').trim();
}

export function checkClassNames(names: readonly string[], field: string): string[] {
  if (names.length === 0) throw new CompilerError('CONFIG_INVALID', `${field}: the class list is empty; give at least two class names`);
  if (names.length < 2) throw new CompilerError('CONFIG_INVALID', `${field}: one class ("${names[0]}") cannot be classified; give at least two class names`);
  const cleaned = names.map(cleanClassName);
  cleaned.forEach((c, i) => {
    if (!c) throw new CompilerError('CONFIG_INVALID', `${field}: class ${i + 1} is empty`);
    const j = cleaned.findIndex((d) => d.toLowerCase() === c.toLowerCase()); // the tokenizer lower-cases
    if (j !== i) throw new CompilerError('CONFIG_INVALID', `${field}: classes "${names[j]}" and "${names[i]}" are the same text after cleaning ("${c}"); rename one`);
  });
  return cleaned;
}

export function checkTemplates(templates: readonly string[], field: string): void {
  if (templates.length === 0) throw new CompilerError('CONFIG_INVALID', `${field}: no templates; give at least one, e.g. "a photo of a {}."`);
  for (const t of templates) if (!t.includes('{}')) throw new CompilerError('CONFIG_INVALID', `${field}: template "${t}" has no "{}" where the class name goes`);
}

export interface TokenizedPrompts {
  /** Token ids per sequence, padded with 0 to the context length. */
  ids: Int32Array[];
  /** Position of each sequence's first EOT. */
  eot: number[];
}

/** Zero-shot prompts: `[template][class]`. */
export function templatePrompts(tok: ClipTokenizer, classNames: readonly string[], templates: readonly string[], contextLength: number): TokenizedPrompts[] {
  return templates.map((t) => {
    const ids = classNames.map((c) => tok.encodePadded(t.replaceAll('{}', c), contextLength, `class "${c}" with template "${t}"`));
    return { ids, eot: ids.map((s) => tok.eotIndex(s)) };
  });
}

/**
 * `"X X … X {name}."` per class: SOT, n placeholders at positions 1..n, the class tokens, ".",
 * EOT. The placeholder is checked to be one token, so position arithmetic holds for any vocabulary.
 */
export function contextPrompts(tok: ClipTokenizer, classNames: readonly string[], nCtx: number, contextLength: number): TokenizedPrompts {
  const x = tok.encode('X');
  if (x.length !== 3) throw new CompilerError('BAD_FILE', `${tok.source}: the context placeholder "X" is ${x.length - 2} tokens, expected 1`);
  const ids = classNames.map((c) => {
    const s = tok.encodePadded(`${'X '.repeat(nCtx)}${c}.`, contextLength, `class "${c}" after ${nCtx} context tokens`);
    for (let i = 1; i <= nCtx; i++) if (s[i] !== x[1]) throw new Error(`internal: placeholder ${i} of "${c}" tokenised as ${s[i]}`);
    return s;
  });
  return { ids, eot: ids.map((s) => tok.eotIndex(s)) };
}
