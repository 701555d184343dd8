// Prompt packs (.epp): what a task adds to a shared backbone. The same signed ustar container as an
// .epk (container.ts), with the tensors in place of the model:
//
//   manifest.json         PromptPackManifestV1 (backbone-pack.ts)
//   tensors.safetensors   float32 tensors named like the backbone's pack inputs, little-endian
//   signature.json        ed25519 over sha256(manifest.json) ‖ sha256(tensors.safetensors)
//
// The safetensors reader here is deliberately strict (F32 only, bounds-checked, no overlaps):
// the compiler writes these files (pack.ts: packPromptPack), and anything else is damage.

import { checkContainer, checkDigest, PACK_ENTRY, PACK_ORDER, readFileBytes } from './container.ts';
import { ArtifactError } from './errors.ts';
import { parseManifestJson } from './manifest.ts';
import { validatePackManifest, type PromptPackManifest } from './backbone-pack.ts';
import { PACK_SIGNATURE_MESSAGE, sha256, type SignatureFile } from './signature.ts';
import { readTar, type TarEntry } from './tar.ts';

export interface PackTensor {
  shape: number[];
  /** An aligned copy (onnxruntime takes it as is). */
  data: Float32Array;
}

export interface PromptPack {
  file: string;
  /** sha256 of the whole .epp: the `prompt.sha256` reported with every result it produced. */
  sha256: string;
  bytes: number;
  manifest: PromptPackManifest;
  manifestBytes: Uint8Array;
  /** tensors.safetensors: a view into the file's bytes. */
  tensorBytes: Uint8Array;
  tensors: Map<string, PackTensor>;
  signature: SignatureFile;
}

/** Parses a float32 safetensors file: PACK_TENSORS_INVALID naming the tensor and the problem. */
export function parsePackTensors(bytes: Uint8Array, file: string): Map<string, PackTensor> {
  const bad = (why: string, field?: string) => new ArtifactError('PACK_TENSORS_INVALID', file, `${PACK_ENTRY.tensors} ${why}; rebuild the pack`, field ? { field } : {});
  if (bytes.length < 8) throw bad(`is ${bytes.length} bytes, too short for a safetensors header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > bytes.length - 8) throw bad(`declares a ${headerLen}-byte header in ${bytes.length} bytes`);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLen).toString('utf8'));
  } catch (e) {
    throw bad(`has a header that is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('has a header that is not a JSON object');
  const start = 8 + headerLen;
  const out = new Map<string, PackTensor>();
  const spans: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e?.dtype !== 'F32') throw bad(`tensor ${name} has dtype ${JSON.stringify(e?.dtype)}; pack tensors are F32`, name);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor ${name} has no valid shape`, name);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor ${name} has no valid data_offsets`, name);
    const [b, end] = off as [number, number];
    const n = (shape as number[]).reduce((p, d) => p * d, 1);
    if (end - b !== 4 * n) throw bad(`tensor ${name} [${shape.join(', ')}] needs ${4 * n} bytes, its offsets give ${end - b}`, name);
    if (start + end > bytes.length) throw bad(`tensor ${name} ends at byte ${start + end} of ${bytes.length} (truncated)`, name);
    spans.push([b, end, name]);
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(bytes.subarray(start + b, start + end));
    out.set(name, { shape: shape as number[], data });
  }
  spans.sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < spans.length; i++) if (spans[i]![0] < spans[i - 1]![1]) throw bad(`tensors ${spans[i - 1]![2]} and ${spans[i]![2]} overlap`);
  if (out.size === 0) throw bad('holds no tensors');
  return out;
}

/** Structure and integrity of an .epp (trust is verifyArtifact's, fit to a backbone checkPackFits'). */
export function readPromptPack(bytes: Uint8Array, file = '(buffer)'): PromptPack {
  return packFromEntries(readTar(bytes, file), bytes, file);
}

/** readPromptPack over an archive already parsed (readSignedFile). */
export function packFromEntries(entries: readonly TarEntry[], bytes: Uint8Array, file: string): PromptPack {
  const c = checkContainer(entries, file, PACK_ORDER, 'a prompt pack', PACK_SIGNATURE_MESSAGE);
  const json = parseManifestJson(c.manifestBytes, file);
  if (typeof json === 'object' && json !== null && (json as { kind?: unknown }).kind !== 'prompt-pack') {
    throw new ArtifactError('ARTIFACT_KIND', file, `manifest.json has kind ${JSON.stringify((json as { kind?: unknown }).kind)}; a prompt pack says kind: "prompt-pack"`, { field: 'kind' });
  }
  const manifest = validatePackManifest(json, file);
  checkDigest(c.payload, manifest.tensors, file, PACK_ENTRY.tensors, 'tensors');
  const tensors = parsePackTensors(c.payload, file);
  return { file, sha256: sha256(bytes).toString('hex'), bytes: bytes.length, manifest, manifestBytes: c.manifestBytes, tensorBytes: c.payload, tensors, signature: c.signature };
}

export async function readPromptPackFile(path: string): Promise<PromptPack> {
  return readPromptPack(await readFileBytes(path, 'prompt pack'), path);
}
