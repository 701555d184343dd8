// The signed container both file kinds share: a ustar archive (tar.ts) of manifest.json, one payload
// entry (model.onnx in an .epk, tensors.safetensors in an .epp) and signature.json, in that order.
// Here: the entry names, the structural check over the parsed entries, the payload digest check and
// reading a file's bytes. read.ts and prompt-pack.ts build the two kinds on top.

import { readFile, stat } from 'node:fs/promises';
import { ArtifactError } from './errors.ts';
import { parseSignatureFile, sha256 } from './signature.ts';
import type { TarEntry } from './tar.ts';

/** Entry names, in the order they must appear. */
export const ENTRY = { manifest: 'manifest.json', model: 'model.onnx', signature: 'signature.json' } as const;
export const MODEL_ORDER = [ENTRY.manifest, ENTRY.model, ENTRY.signature] as const;

export const PACK_ENTRY = { manifest: ENTRY.manifest, tensors: 'tensors.safetensors', signature: ENTRY.signature } as const;
export const PACK_ORDER = [PACK_ENTRY.manifest, PACK_ENTRY.tensors, PACK_ENTRY.signature] as const;

/**
 * The three entries of a signed container (an .epk or an .epp), in order, and its parsed signature
 * file. Takes the archive's entries (readTar), so a reader that has already looked at them to tell
 * the kind (readSignedFile) does not parse the tar again.
 */
export function checkContainer(entries: readonly TarEntry[], file: string, order: readonly [string, string, string], kind: 'an artifact' | 'a prompt pack', message: string) {
  const names = entries.map((e) => e.name);
  for (const want of order) {
    if (!names.includes(want)) {
      const other = kind === 'an artifact' && names.includes(PACK_ENTRY.tensors) ? ' (this is a prompt pack, .epp: load it as a pack)' : kind === 'a prompt pack' && names.includes(ENTRY.model) ? ' (this is a model artifact, .epk, not a prompt pack)' : '';
      throw new ArtifactError(other ? 'ARTIFACT_KIND' : 'ARTIFACT_MISSING_ENTRY', file, `has no ${want} entry (found: ${names.join(', ') || 'none'}); ${kind} holds ${order.join(', ')}${other}`, { field: want });
    }
  }
  if (names.length !== order.length || names.some((n, i) => n !== order[i])) {
    throw new ArtifactError('ARTIFACT_UNEXPECTED_ENTRY', file, `entries are ${names.join(', ')}; ${kind} holds exactly ${order.join(', ')}, in that order`);
  }
  const signature = parseSignatureFile(entries[2]!.data, file);
  if (signature.message !== message) throw new ArtifactError('SIGNATURE_MALFORMED', file, `signature.json signs "${signature.message}", but ${kind} is signed over "${message}"`, { field: 'message' });
  return { manifestBytes: entries[0]!.data, payload: entries[1]!.data, signature };
}

/** MODEL_DIGEST_MISMATCH unless `payload` has the size and sha256 the manifest records under `field`. */
export function checkDigest(payload: Uint8Array, want: { sha256: string; bytes: number }, file: string, entry: string, field: string): void {
  const what = entry === ENTRY.model ? 'the artifact' : 'the pack';
  if (payload.length !== want.bytes) {
    throw new ArtifactError('MODEL_DIGEST_MISMATCH', file, `${entry} is ${payload.length} bytes but manifest.${field}.bytes says ${want.bytes}; ${what} is damaged or was tampered with`, { field: `${field}.bytes` });
  }
  const digest = sha256(payload).toString('hex');
  if (digest !== want.sha256) {
    throw new ArtifactError('MODEL_DIGEST_MISMATCH', file, `${entry} has sha256 ${digest} but manifest.${field}.sha256 says ${want.sha256}; ${what} is damaged or was tampered with`, { field: `${field}.sha256` });
  }
}

/** The bytes of a file, or ARTIFACT_UNREADABLE naming it. */
export async function readFileBytes(path: string, what = 'artifact'): Promise<Buffer> {
  try {
    // Bug (found by fuzzing MQTT `reload`): a path to a device such as /dev/zero was read until
    // memory ran out, and a FIFO blocked the read forever. Only regular files are artifacts.
    const st = await stat(path);
    if (!st.isFile()) {
      throw new ArtifactError('ARTIFACT_UNREADABLE', path, `cannot read the ${what}: not a regular file (${st.isDirectory() ? 'a directory' : 'a device, FIFO or socket'}); point it at the file`);
    }
    return await readFile(path);
  } catch (e) {
    if (e instanceof ArtifactError) throw e;
    throw new ArtifactError('ARTIFACT_UNREADABLE', path, `cannot read the ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`, { cause: e });
  }
}
