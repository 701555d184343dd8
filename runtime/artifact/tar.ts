// The smallest POSIX ustar reader/writer the artifact needs. Why tar: `tar tvf model.epk` and
// `tar xOf model.epk manifest.json` work everywhere, entries are uncompressed, and every entry's
// data starts on a 512-byte boundary, so the model is one contiguous, aligned run of bytes that
// onnxruntime loads as a subarray without a copy.
//
// Layout per entry: a 512-byte header, the data, zero padding to 512. The archive ends with two
// zero blocks. Only regular files ('0') are written or accepted.

import { ArtifactError } from './errors.ts';

const BLOCK = 512;

export interface TarFile {
  name: string;
  data: Uint8Array;
  /** Seconds since the epoch; fixed by the caller so packing is reproducible. */
  mtime?: number;
}

export interface TarEntry {
  name: string;
  /** A view into the archive bytes: no copy. */
  data: Uint8Array;
  /** Byte offset of the data in the archive (a multiple of 512). */
  offset: number;
  mtime: number;
}

const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

function octal(buf: Buffer, at: number, width: number, value: number) {
  // width-1 octal digits then NUL, as GNU tar writes them.
  const s = value.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new RangeError(`tar field of width ${width} cannot hold ${value}`);
  buf.write(s + '\0', at, width, 'ascii');
}

function header(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new RangeError(`tar entry name longer than 100 bytes: ${name}`);
  h.write(name, 0, 100, 'utf8');
  octal(h, 100, 8, 0o644); // mode
  octal(h, 108, 8, 0); // uid
  octal(h, 116, 8, 0); // gid
  octal(h, 124, 12, size);
  octal(h, 136, 12, mtime);
  h.fill(0x20, 148, 156); // checksum counts as spaces while summing
  h.write('0', 156, 1, 'ascii'); // regular file
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('edgeprompt', 265, 32, 'ascii'); // uname
  h.write('edgeprompt', 297, 32, 'ascii'); // gname
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

/** One Buffer holding the archive; each file's data is copied exactly once. */
export function writeTar(files: readonly TarFile[]): Buffer {
  let total = 2 * BLOCK;
  for (const f of files) total += BLOCK + padded(f.data.length);
  const out = Buffer.alloc(total); // zero-filled: padding and the end marker come for free
  let at = 0;
  for (const f of files) {
    header(f.name, f.data.length, Math.floor(f.mtime ?? 0)).copy(out, at);
    at += BLOCK;
    out.set(f.data, at);
    at += padded(f.data.length);
  }
  return out;
}

const isZero = (b: Uint8Array) => b.every((x) => x === 0);

function field(b: Uint8Array, at: number, len: number): string {
  const s = Buffer.from(b.buffer, b.byteOffset + at, len).toString('latin1');
  const nul = s.indexOf('\0');
  return nul < 0 ? s : s.slice(0, nul);
}

function parseOctal(b: Uint8Array, at: number, len: number): number | null {
  const s = field(b, at, len).trim();
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : null;
}

function checksumOk(h: Uint8Array): boolean {
  const stored = parseOctal(h, 148, 8);
  if (stored === null) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === stored;
}

/** Parses a ustar archive; throws ArtifactError NOT_TAR / TRUNCATED / CORRUPT / UNEXPECTED_ENTRY. */
export function readTar(bytes: Uint8Array, file: string): TarEntry[] {
  const entries: TarEntry[] = [];
  let at = 0;
  for (;;) {
    if (at + BLOCK > bytes.length) {
      if (entries.length === 0 && !looksLikeTarStart(bytes)) {
        throw new ArtifactError('ARTIFACT_NOT_TAR', file, `${bytes.length} bytes is too short to be an artifact (a tar archive); is this the right file?`);
      }
      throw new ArtifactError('ARTIFACT_TRUNCATED', file, `archive ends at byte ${bytes.length} without its end-of-archive marker (expected after ${entries.map((e) => e.name).join(', ') || 'the first header'}); the file was cut short: copy it again`);
    }
    const h = bytes.subarray(at, at + BLOCK);
    if (isZero(h)) {
      if (at + 2 * BLOCK > bytes.length) {
        throw new ArtifactError('ARTIFACT_TRUNCATED', file, `archive ends at byte ${bytes.length} in its end-of-archive marker; the file was cut short: copy it again`);
      }
      return entries;
    }
    if (!checksumOk(h) || !field(h, 257, 6).startsWith('ustar')) {
      if (entries.length === 0) {
        throw new ArtifactError('ARTIFACT_NOT_TAR', file, `not an EdgePrompt artifact: the first 512 bytes are not a ustar header${looksLikeOnnx(bytes) ? ' (this looks like a bare ONNX model; pack it into an .epk with packArtifact / edgeprompt compile)' : ''}`);
      }
      throw new ArtifactError('ARTIFACT_CORRUPT', file, `the tar header at byte ${at} (after ${entries.at(-1)!.name}) is corrupt (bad checksum or magic); the file is damaged: copy it again`);
    }
    const name = field(h, 0, 100);
    const type = field(h, 156, 1);
    const size = parseOctal(h, 124, 12);
    if (size === null) throw new ArtifactError('ARTIFACT_CORRUPT', file, `tar header of ${name} at byte ${at} has an unreadable size field`);
    if (type !== '0' && type !== '') {
      throw new ArtifactError('ARTIFACT_UNEXPECTED_ENTRY', file, `entry ${name} has tar type '${type}'; an artifact holds only regular files (was it re-packed with another tar? use edgeprompt to pack)`, { field: name });
    }
    const start = at + BLOCK;
    if (start + size > bytes.length) {
      throw new ArtifactError('ARTIFACT_TRUNCATED', file, `entry ${name} needs ${size} bytes from byte ${start} but the file ends at ${bytes.length}; the file was cut short: copy it again`, { field: name });
    }
    entries.push({ name, data: bytes.subarray(start, start + size), offset: start, mtime: parseOctal(h, 136, 12) ?? 0 });
    at = start + padded(size);
  }
}

function looksLikeTarStart(b: Uint8Array): boolean {
  return b.length >= 262 && field(b, 257, 5) === 'ustar';
}

/** An ONNX ModelProto starts with field 1 (ir_version, varint): byte 0x08. A weak hint, only used in messages. */
function looksLikeOnnx(b: Uint8Array): boolean {
  return b.length > 2 && b[0] === 0x08 && b[1]! < 0x20;
}
