/**
 * Builds a small byte-level BPE vocabulary (CLIP's layout) from a corpus and writes it as a
 * Hugging Face `tokenizer.json`. Only the VOCABULARY is built here — no library on this machine
 * trains BPE (Python `tokenizers` is not installed; `@huggingface/tokenizers` 0.2 only tokenizes)
 * — and every text is tokenized by `@huggingface/tokenizers` through ClipTokenizer, which loads
 * the file this writes (the caller checks that).
 *
 * The layout follows OpenAI CLIP's vocabulary: the 256 byte symbols of GPT-2's byte→unicode map,
 * the same 256 with the end-of-word mark `</w>`, one symbol per merge in merge order, then
 * `<|startoftext|>` and `<|endoftext|>`. Training is the classic algorithm (Sennrich et al. 2016):
 * words (CLIP's pre-tokenizer pattern, lower-cased) as byte symbols with `</w>` on the last, then
 * repeatedly merge the most frequent adjacent pair (ties: the lexicographically smallest, so the
 * result is deterministic) until the vocabulary is full or no pair occurs twice.
 */

/** GPT-2's reversible byte → printable character map, in CLIP's order (printable bytes first). */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

/** CLIP's pre-tokenizer pattern (the one the tokenizer.json below declares). */
export const CLIP_SPLIT = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

export interface BpeVocabulary {
  vocab: Record<string, number>;
  merges: string[];
}

/** Trains merges until `vocabSize` symbols (bytes, bytes + `</w>`, merges, 2 specials) or no pair repeats. */
export function trainBpe(corpus: readonly string[], vocabSize: number): BpeVocabulary {
  const base = 512 + 2;
  if (vocabSize < base) throw new Error(`a byte-level vocabulary needs at least ${base} entries (512 byte symbols + 2 specials), got ${vocabSize}`);
  const byteChar = bytesToUnicode();
  const enc = new TextEncoder();
  const re = new RegExp(CLIP_SPLIT, 'gu');
  const words = new Map<string, number>();
  for (const line of corpus) {
    for (const m of line.normalize('NFC').replace(/\s+/g, ' ').toLowerCase().matchAll(re)) words.set(m[0], (words.get(m[0]) ?? 0) + 1);
  }
  // Each word as its symbol sequence, with its corpus count.
  const seqs = [...words].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([w, n]) => {
    const s = Array.from(enc.encode(w), (b) => byteChar[b]!);
    s[s.length - 1] += '</w>';
    return { s, n };
  });
  const merges: string[] = [];
  while (base + merges.length < vocabSize) {
    const pairs = new Map<string, number>();
    for (const { s, n } of seqs) for (let i = 0; i + 1 < s.length; i++) pairs.set(`${s[i]} ${s[i + 1]}`, (pairs.get(`${s[i]} ${s[i + 1]}`) ?? 0) + n);
    let best = '';
    let bestN = 1;
    for (const [p, n] of pairs) if (n > bestN || (n === bestN && n > 1 && p < best)) [best, bestN] = [p, n];
    if (!best) break; // no pair occurs twice
    merges.push(best);
    const [a, b] = best.split(' ') as [string, string];
    for (const q of seqs) {
      const out: string[] = [];
      for (let i = 0; i < q.s.length; i++) {
        if (i + 1 < q.s.length && q.s[i] === a && q.s[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(q.s[i]!);
      }
      q.s = out;
    }
  }
  // CLIP's order: byte symbols in bytes_to_unicode's value order (printable bytes first).
  const ordered = bytesOrder(byteChar);
  const vocab: Record<string, number> = {};
  let id = 0;
  for (const c of ordered) vocab[c] = id++;
  for (const c of ordered) vocab[`${c}</w>`] = id++;
  for (const m of merges) vocab[m.replace(' ', '')] = id++;
  return { vocab, merges };
}

/** The byte symbols in the order CLIP lists them: bytes 33–126, 161–172, 174–255, then the rest. */
function bytesOrder(byteChar: readonly string[]): string[] {
  const order: number[] = [];
  for (let b = 33; b <= 126; b++) order.push(b);
  for (let b = 161; b <= 172; b++) order.push(b);
  for (let b = 174; b <= 255; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  return order.map((b) => byteChar[b]!);
}

/** A Hugging Face tokenizer.json for the vocabulary: CLIP's normalizer, pre-tokenizer and specials. */
export function tokenizerJson(v: BpeVocabulary): Record<string, unknown> {
  const n = Object.keys(v.vocab).length;
  const sot = n;
  const eot = n + 1;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(sot, '<|startoftext|>'), special(eot, '<|endoftext|>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_SPLIT }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: 'RobertaProcessing', sep: ['<|endoftext|>', eot], cls: ['<|startoftext|>', sot], trim_offsets: false, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: '<|endoftext|>', continuing_subword_prefix: '', end_of_word_suffix: '</w>', fuse_unk: false, byte_fallback: false, vocab: { ...v.vocab, '<|startoftext|>': sot, '<|endoftext|>': eot }, merges: v.merges },
  };
}
