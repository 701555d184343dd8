/**
 * The CLIP tokenizer wrapper over @huggingface/tokenizers, with the hand-made vocabulary of
 * docs/spec/clip.md (bytes, bytes + </w>, four merges, SOT 516, EOT 517): the spec's vectors,
 * agreement with an independent BPE written here on random text, padding and the errors.
 */
import test from 'ava';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { ClipTokenizer } from '../compiler/text/tokenizer.ts';
import { checkClassNames, checkTemplates, contextPrompts, templatePrompts } from '../compiler/text/prompts.ts';
import { fixturePath } from './helpers/fixtures.ts';
import { fixtureTokenizer } from './helpers/clip.ts';

const json = JSON.parse(readFileSync(fixturePath('clip_fixture_tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number>; merges: string[] } };

/** CLIP's byte → character table, rebuilt here from its definition. */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(printable(b) ? b : 256 + n++);
  return out;
}

/** An independent CLIP BPE: normalise, split with CLIP's pattern, merge the lowest-ranked pair until none applies. */
function referenceEncode(text: string): number[] {
  const { vocab, merges } = json.model;
  const rank = new Map(merges.map((m, i) => [m, i]));
  const chars = byteChars();
  const norm = text.normalize('NFC').replace(/\s+/gu, ' ').toLowerCase();
  const words = norm.match(/<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/gu) ?? [];
  const ids = [vocab['<|startoftext|>']!];
  for (const w of words) {
    let sym = [...new TextEncoder().encode(w)].map((b) => chars[b]!);
    sym[sym.length - 1] += '</w>';
    for (;;) {
      let best = -1;
      let at = -1;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = rank.get(`${sym[i]} ${sym[i + 1]}`);
        if (r !== undefined && (best < 0 || r < best)) [best, at] = [r, i];
      }
      if (at < 0) break;
      sym = [...sym.slice(0, at), sym[at]! + sym[at + 1]!, ...sym.slice(at + 2)];
    }
    for (const s of sym) ids.push(vocab[s]!);
  }
  ids.push(vocab['<|endoftext|>']!);
  return ids;
}

test('the spec vectors of the hand-made vocabulary', (t) => {
  const tok = fixtureTokenizer();
  t.is(tok.sot, 516);
  t.is(tok.eot, 517);
  t.is(tok.vocabSize, 518);
  t.deepEqual(tok.encode('A cat & a  DOG!'), [516, 320, 513, 261, 320, 515, 256, 517]);
  t.deepEqual(tok.encode('cats, 42'), [516, 512, 83, 338, 267, 275, 273, 517]);
  t.deepEqual(referenceEncode('A cat & a  DOG!'), [516, 320, 513, 261, 320, 515, 256, 517]);
});

test('the library and the independent BPE agree on random text (letters, digits, punctuation, accents, whitespace)', (t) => {
  const tok = fixtureTokenizer();
  const alphabet = [...'catdogCATDOGxs ,.!&42\'é ü\t\n-'];
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 24 }).map((a) => a.join('')), (s) => {
      t.deepEqual(tok.encode(s), referenceEncode(s), JSON.stringify(s));
    }),
    { numRuns: 300, seed: 16 },
  );
});

test('padding to the context with 0 (OpenAI) or EOT (Hugging Face); the first EOT is where the tower pools', (t) => {
  const tok = fixtureTokenizer();
  const zero = tok.encodePadded('a dog', 8, 'x');
  const eot = tok.encodePadded('a dog', 8, 'x', 'eot');
  t.deepEqual([...zero], [516, 320, 515, 517, 0, 0, 0, 0]);
  t.deepEqual([...eot], [516, 320, 515, 517, 517, 517, 517, 517]);
  t.is(tok.eotIndex(zero), 3);
  t.is(tok.eotIndex(eot), 3);
});

test('a class prompt that does not fit the context is one error naming the class and the template', (t) => {
  const tok = fixtureTokenizer();
  const e = t.throws(() => templatePrompts(tok, ['a dog', 'a very very long cat name'], ['a photo of {}.'], 16));
  t.is((e as { code?: string }).code, 'CONFIG_INVALID');
  t.regex(e.message, /^class "a very very long cat name" with template "a photo of \{\}\.": ".*" is \d+ tokens with SOT and EOT, but the text tower's context holds 16/);
  const ctx = t.throws(() => contextPrompts(tok, ['dog'], 16, 16));
  t.regex(ctx.message, /class "dog" after 16 context tokens/);
});

test('context prompts: SOT, n placeholders, the class, ".", EOT', (t) => {
  const tok = fixtureTokenizer();
  const p = contextPrompts(tok, ['cat', 'dog'], 4, 16);
  const x = tok.encode('X')[1]!;
  t.deepEqual([...p.ids[0]!.slice(0, 8)], [516, x, x, x, x, 513, 256 + 13, 517]); // "." is byte 46 → 13, with </w>
  t.deepEqual(p.eot, [7, 7]);
});

test('bad tokenizer files and class lists: one clear line each', (t) => {
  t.throws(() => ClipTokenizer.fromFile('/nonexistent/tokenizer.json'), { code: 'FILE_NOT_FOUND', message: /tokenizer\.json: no such tokenizer file/ } as never);
  const wordPiece = { ...json, model: { type: 'WordPiece', vocab: json.model.vocab } };
  t.throws(() => ClipTokenizer.fromJson(wordPiece, 'wp.json'), { code: 'BAD_FILE', message: 'wp.json: model.type is "WordPiece", but CLIP\'s tokenizer is byte-level BPE ("BPE")' } as never);
  const noSpecials = { ...json, added_tokens: [], model: { ...json.model, vocab: Object.fromEntries(Object.entries(json.model.vocab).filter(([k]) => !k.startsWith('<|'))) } };
  t.throws(() => ClipTokenizer.fromJson(noSpecials, 'ns.json'), { message: /ns\.json: lacks the CLIP special token\(s\) <\|startoftext\|> and <\|endoftext\|>/ });
  t.throws(() => checkClassNames([], 'classes'), { message: 'classes: the class list is empty; give at least two class names' });
  t.throws(() => checkClassNames(['ok', 'big_dent', 'Big-dent'], 'classes'), { message: /"big_dent" and "Big-dent" are the same text after cleaning/ });
  t.throws(() => checkTemplates(['a photo'], 'text.templates'), { message: 'text.templates: template "a photo" has no "{}" where the class name goes' });
});
