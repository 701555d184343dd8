// Writing an artifact (the compiler's side): manifest draft + model bytes (+ signing keys) -> .epk.
// Packing is deterministic: the same inputs give the same bytes (tar mtimes come from createdAt and
// ed25519 signatures are deterministic), so a rebuilt artifact can be compared byte for byte.

import { rename, writeFile } from 'node:fs/promises';
import { ArtifactError } from './errors.ts';
import { type KeyLike } from './keys.ts';
import { encodeManifest, MANIFEST_SCHEMA_VERSION, validateManifest, type Manifest, type ManifestDraft } from './manifest.ts';
import { encodeSignatureFile, makeSignatureFile, sha256 } from './signature.ts';
import { writeTar } from './tar.ts';
import { readArtifact, ENTRY, type Artifact } from './read.ts';

export interface PackInput {
  manifest: ManifestDraft;
  /** The ONNX model bytes (ModelProto), exactly as onnxruntime should load them. */
  model: Uint8Array;
}

export interface PackOptions {
  /** ed25519 private key(s) to sign with; none gives an unsigned artifact (refused by devices with trusted keys). */
  privateKey?: KeyLike | readonly KeyLike[];
}

export interface Packed {
  bytes: Buffer;
  /** The manifest as written (defaults filled, model digest added). */
  manifest: Manifest;
  /** Key ids of the signatures, in order. */
  keyIds: string[];
  /** sha256 of the whole .epk (what the runtime reports as the model's sha256). */
  sha256: string;
}

function pack(manifest: Manifest, model: Uint8Array, keys: readonly KeyLike[]): Packed {
  const manifestBytes = encodeManifest(manifest);
  const sig = makeSignatureFile(manifestBytes, model, keys);
  const mtime = Math.floor(Date.parse(manifest.createdAt) / 1000);
  const bytes = writeTar([
    { name: ENTRY.manifest, data: manifestBytes, mtime },
    { name: ENTRY.model, data: model, mtime },
    { name: ENTRY.signature, data: encodeSignatureFile(sig), mtime },
  ]);
  return { bytes, manifest, keyIds: sig.signatures.map((s) => s.keyId), sha256: sha256(bytes).toString('hex') };
}

const keyList = (k: PackOptions['privateKey']): readonly KeyLike[] => (k === undefined ? [] : Array.isArray(k) ? k : [k as KeyLike]);

/**
 * Validates the manifest (throws ArtifactError MANIFEST_INVALID naming each field), fills in
 * schemaVersion, model {sha256, bytes} and createdAt (now, when omitted), and packs and signs.
 */
export function packArtifact(input: PackInput, opts: PackOptions = {}): Packed {
  if (!(input.model instanceof Uint8Array) || input.model.length === 0) {
    throw new ArtifactError('MANIFEST_INVALID', '(new artifact)', 'model must be non-empty ONNX bytes (a Uint8Array)', { field: 'model' });
  }
  const manifest = validateManifest(
    {
      createdAt: new Date().toISOString(),
      ...input.manifest,
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      model: { sha256: sha256(input.model).toString('hex'), bytes: input.model.length },
    },
    '(new artifact)',
  );
  return pack(manifest, input.model, keyList(opts.privateKey));
}

/** Re-signs an existing artifact (replacing its signatures) without touching manifest or model bytes. */
export function signArtifact(artifact: Artifact, privateKey: KeyLike | readonly KeyLike[]): Packed {
  const keys = keyList(privateKey);
  const sig = makeSignatureFile(artifact.manifestBytes, artifact.model, keys);
  const mtime = Math.floor(Date.parse(artifact.manifest.createdAt) / 1000);
  const bytes = writeTar([
    { name: ENTRY.manifest, data: artifact.manifestBytes, mtime },
    { name: ENTRY.model, data: artifact.model, mtime },
    { name: ENTRY.signature, data: encodeSignatureFile(sig), mtime },
  ]);
  return { bytes, manifest: artifact.manifest, keyIds: sig.signatures.map((s) => s.keyId), sha256: sha256(bytes).toString('hex') };
}

/** packArtifact, then an atomic write (temp file + rename), then a read-back check. */
export async function writeArtifactFile(path: string, input: PackInput, opts: PackOptions = {}): Promise<Packed> {
  const packed = packArtifact(input, opts);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, packed.bytes);
  readArtifact(packed.bytes, path); // never leave a file the runtime would refuse
  await rename(tmp, path);
  return packed;
}
