// Reading an artifact (the runtime's side, and `edgeprompt inspect/verify`).
// readArtifact: structure and integrity (tar, the three entries in order, manifest schema, model
// digest). verifyArtifact: trust (a signature by a configured key). Both throw ArtifactError with a
// code naming the problem; the model stays a view into the file's bytes (no copy).

import { readFile } from 'node:fs/promises';
import { ArtifactError } from './errors.ts';
import type { KeyObject } from 'node:crypto';
import { keyIdOf, loadTrustedKeys, toPublicKey, type TrustedKey } from './keys.ts';
import { parseManifest, type Manifest } from './manifest.ts';
import { checkSignatures, parseSignatureFile, sha256, type SignatureFile } from './signature.ts';
import { readTar } from './tar.ts';

/** Entry names, in the order they must appear. */
export const ENTRY = { manifest: 'manifest.json', model: 'model.onnx', signature: 'signature.json' } as const;
const ORDER = [ENTRY.manifest, ENTRY.model, ENTRY.signature];

export interface Artifact {
  /** The path it was read from, or the name given for bytes; used in every message. */
  file: string;
  /** sha256 of the whole .epk file: the identity reported in MQTT results (model.sha256). */
  sha256: string;
  bytes: number;
  manifest: Manifest;
  manifestBytes: Uint8Array;
  /** model.onnx: a subarray of the archive, 512-byte aligned within it. */
  model: Uint8Array;
  signature: SignatureFile;
}

export function readArtifact(bytes: Uint8Array, file = '(buffer)'): Artifact {
  const entries = readTar(bytes, file);
  const names = entries.map((e) => e.name);
  for (const want of ORDER) {
    if (!names.includes(want)) {
      throw new ArtifactError('ARTIFACT_MISSING_ENTRY', file, `has no ${want} entry (found: ${names.join(', ') || 'none'}); an artifact holds ${ORDER.join(', ')}`, { field: want });
    }
  }
  if (names.length !== ORDER.length || names.some((n, i) => n !== ORDER[i])) {
    throw new ArtifactError('ARTIFACT_UNEXPECTED_ENTRY', file, `entries are ${names.join(', ')}; an artifact holds exactly ${ORDER.join(', ')}, in that order`);
  }
  const [m, model, s] = entries as [(typeof entries)[0], (typeof entries)[0], (typeof entries)[0]];
  const manifest = parseManifest(m.data, file);
  const signature = parseSignatureFile(s.data, file);
  if (model.data.length !== manifest.model.bytes) {
    throw new ArtifactError('MODEL_DIGEST_MISMATCH', file, `model.onnx is ${model.data.length} bytes but manifest.model.bytes says ${manifest.model.bytes}; the artifact is damaged or was tampered with`, { field: 'model.bytes' });
  }
  const digest = sha256(model.data).toString('hex');
  if (digest !== manifest.model.sha256) {
    throw new ArtifactError('MODEL_DIGEST_MISMATCH', file, `model.onnx has sha256 ${digest} but manifest.model.sha256 says ${manifest.model.sha256}; the artifact is damaged or was tampered with`, { field: 'model.sha256' });
  }
  return { file, sha256: sha256(bytes).toString('hex'), bytes: bytes.length, manifest, manifestBytes: m.data, model: model.data, signature };
}

export async function readArtifactFile(path: string): Promise<Artifact> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ArtifactError('ARTIFACT_UNREADABLE', path, `cannot read the artifact (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path`, { cause: e });
  }
  return readArtifact(bytes, path);
}

export interface VerifyOptions {
  /** With no trusted keys: accept unsigned (and unverifiable) artifacts instead of throwing NO_TRUSTED_KEYS. For development only. */
  allowUnsigned?: boolean;
}

export interface Verification {
  /** True when a trusted key's signature verified. */
  verified: boolean;
  keyId: string | null;
  keySource: string | null;
}

/**
 * Trust check. With trusted keys, the artifact must carry a verifying signature by one of them
 * (ARTIFACT_UNSIGNED, SIGNATURE_UNKNOWN_KEY, SIGNATURE_INVALID otherwise); `allowUnsigned` does
 * not weaken that. Without keys, it throws NO_TRUSTED_KEYS unless `allowUnsigned`.
 */
export function verifyArtifact(artifact: Artifact, trustedKeys: readonly (TrustedKey | KeyObject)[], opts: VerifyOptions = {}): Verification {
  const keys = trustedKeys.map((k, i): TrustedKey => ('keyId' in k ? k : { key: toPublicKey(k), keyId: keyIdOf(k), source: `trustedKeys[${i}]` }));
  if (keys.length === 0) {
    if (opts.allowUnsigned) return { verified: false, keyId: null, keySource: null };
    throw new ArtifactError('NO_TRUSTED_KEYS', artifact.file, 'cannot be verified: no trusted public keys are configured; add trustedKeys (recommended) or set allowUnsigned: true for development');
  }
  const ok = checkSignatures(artifact.signature, artifact.manifestBytes, artifact.model, keys, artifact.file);
  return { verified: true, keyId: ok.keyId, keySource: ok.source };
}

/** readArtifactFile + verifyArtifact, with the keys given as PEM paths or inline PEM. */
export async function loadVerifiedArtifact(path: string, trusted: readonly string[], opts: VerifyOptions = {}): Promise<{ artifact: Artifact; verification: Verification }> {
  const keys = await loadTrustedKeys(trusted);
  const artifact = await readArtifactFile(path);
  return { artifact, verification: verifyArtifact(artifact, keys, opts) };
}
