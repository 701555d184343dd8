/**
 * CLIP's tokenizer from a Hugging Face `tokenizer.json`, run by `@huggingface/tokenizers`
 * (byte-level BPE with `</w>` word ends; we never merge by hand). The library neither pads nor
 * truncates, so this wrapper does both jobs CLIP needs (docs/spec/clip.md#tokenizer):
 * - the sequence is `[SOT] + bpe + [EOT]`, and a text that does not fit the context is an error
 *   naming what it was for (a class prompt, usually), never a silent cut;
 * - padding to the context with 0 (OpenAI) or EOT (Hugging Face): the text tower pools at the
 *   FIRST EOT under a causal mask, so both give the same features.
 */
import { readFileSync, existsSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { CompilerError } from '../ops/errors.ts';

export const SOT_TOKEN = '<|startoftext|>';
export const EOT_TOKEN = '<|endoftext|>';

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number> };
  added_tokens?: { id: number; content: string }[];
}

export class ClipTokenizer {
  readonly sot: number;
  readonly eot: number;
  /** Largest id + 1: the text tower's embedding table must have at least this many rows. */
  readonly vocabSize: number;

  private constructor(
    private readonly tok: Tokenizer,
    readonly source: string,
    ids: { sot: number; eot: number; vocabSize: number },
  ) {
    this.sot = ids.sot;
    this.eot = ids.eot;
    this.vocabSize = ids.vocabSize;
  }

  static fromFile(file: string): ClipTokenizer {
    if (!existsSync(file)) throw new CompilerError('FILE_NOT_FOUND', `${file}: no such tokenizer file (a Hugging Face tokenizer.json)`);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new CompilerError('BAD_FILE', `${file}: not JSON (${(e as Error).message.split('\n')[0]}); expected a Hugging Face tokenizer.json`);
    }
    return ClipTokenizer.fromJson(json, file);
  }

  static fromJson(json: unknown, source = '<tokenizer.json>'): ClipTokenizer {
    const j = json as TokenizerJson;
    if (!j || typeof j !== 'object' || !j.model || typeof j.model !== 'object') throw new CompilerError('BAD_FILE', `${source}: no "model" section; expected a Hugging Face tokenizer.json`);
    if (j.model.type !== 'BPE') throw new CompilerError('BAD_FILE', `${source}: model.type is ${JSON.stringify(j.model.type ?? null)}, but CLIP's tokenizer is byte-level BPE ("BPE")`);
    const vocab = j.model.vocab ?? {};
    const added = new Map((j.added_tokens ?? []).map((t) => [t.content, t.id]));
    const idOf = (t: string) => added.get(t) ?? vocab[t];
    const sot = idOf(SOT_TOKEN);
    const eot = idOf(EOT_TOKEN);
    if (sot === undefined || eot === undefined) throw new CompilerError('BAD_FILE', `${source}: lacks the CLIP special token(s) ${[sot === undefined ? SOT_TOKEN : '', eot === undefined ? EOT_TOKEN : ''].filter(Boolean).join(' and ')}`);
    const vocabSize = Math.max(...Object.values(vocab), ...added.values()) + 1;
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(j, {});
    } catch (e) {
      throw new CompilerError('BAD_FILE', `${source}: @huggingface/tokenizers cannot load it: ${(e as Error).message.split('\n')[0]}`);
    }
    return new ClipTokenizer(tok, source, { sot, eot, vocabSize });
  }

  /** `[SOT] + bpe(text) + [EOT]`; the specials are added here when the file has no post-processor that does. */
  encode(text: string): number[] {
    const ids: number[] = this.tok.encode(text, { add_special_tokens: true }).ids;
    const body = ids.filter((id, i) => !((i === 0 && id === this.sot) || (i === ids.length - 1 && id === this.eot)));
    return [this.sot, ...body, this.eot];
  }

  /**
   * `encode(text)` padded to `contextLength` with 0 (OpenAI's `clip.tokenize`) or EOT (Hugging
   * Face). `what` names the text in the error when it does not fit, e.g. `class "scratch"`.
   */
  encodePadded(text: string, contextLength: number, what: string, padWith: 'zero' | 'eot' = 'zero'): Int32Array {
    const ids = this.encode(text);
    if (ids.length > contextLength) {
      throw new CompilerError('CONFIG_INVALID', `${what}: "${text}" is ${ids.length} tokens with SOT and EOT, but the text tower's context holds ${contextLength}; shorten the class name or template`);
    }
    const out = new Int32Array(contextLength).fill(padWith === 'eot' ? this.eot : 0);
    out.set(ids);
    return out;
  }

  /** Position of the first EOT (where the text tower pools). */
  eotIndex(ids: ArrayLike<number>): number {
    for (let i = 0; i < ids.length; i++) if (ids[i] === this.eot) return i;
    throw new CompilerError('BAD_FILE', `${this.source}: token sequence has no EOT (${this.eot})`);
  }
}
