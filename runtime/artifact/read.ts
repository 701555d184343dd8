// Reading an artifact (the runtime's side, and `edgeprompt inspect/verify`).
// readArtifact: structure and integrity (tar, the three entries in order, manifest schema, model
// digest). verifyArtifact: trust (a signature by a configured key). Both throw ArtifactError with a
// code naming the problem; the model stays a view into the file's bytes (no copy).
// An .epk is fused (ManifestV1) or a shared backbone (BackboneManifestV1, `shape: shared-backbone`);
// readModelArtifact reads either, readArtifact only the fused one. Prompt packs (.epp) use the same
// container with tensors.safetensors in place of model.onnx (prompt-pack.ts); readSignedFile reads
// whichever a file is. Writing is pack.ts's.

import type { KeyObject } from 'node:crypto';
import { checkContainer, checkDigest, ENTRY, MODEL_ORDER, PACK_ENTRY, readFileBytes } from './container.ts';
import { ArtifactError } from './errors.ts';
import { keyIdOf, loadTrustedKeys, toPublicKey, type TrustedKey } from './keys.ts';
import { parseManifestJson, validateManifest, type Manifest } from './manifest.ts';
import { validateBackboneManifest, type BackboneManifest } from './backbone-pack.ts';
import { packFromEntries, type PromptPack } from './prompt-pack.ts';
import { checkSignatures, sha256, SIGNATURE_MESSAGE, type SignatureFile } from './signature.ts';
import { readTar, type TarEntry } from './tar.ts';

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

/** A shared-backbone .epk: its graph takes a prompt pack's tensors as inputs besides the image. */
export interface BackboneArtifact extends Omit<Artifact, 'manifest'> {
  manifest: BackboneManifest;
}

export type ModelArtifact = Artifact | BackboneArtifact;

export const isBackbone = (a: ModelArtifact): a is BackboneArtifact => a.manifest.shape === 'shared-backbone';

/** A fused or a shared-backbone .epk, by its manifest's `shape`. */
export function readModelArtifact(bytes: Uint8Array, file = '(buffer)'): ModelArtifact {
  return modelFromEntries(readTar(bytes, file), bytes, file);
}

function modelFromEntries(entries: readonly TarEntry[], bytes: Uint8Array, file: string): ModelArtifact {
  const c = checkContainer(entries, file, MODEL_ORDER, 'an artifact', SIGNATURE_MESSAGE);
  const json = parseManifestJson(c.manifestBytes, file);
  const shared = typeof json === 'object' && json !== null && (json as { shape?: unknown }).shape === 'shared-backbone';
  const manifest = shared ? validateBackboneManifest(json, file) : validateManifest(json, file);
  checkDigest(c.payload, manifest.model, file, ENTRY.model, 'model');
  return { file, sha256: sha256(bytes).toString('hex'), bytes: bytes.length, manifest, manifestBytes: c.manifestBytes, model: c.payload, signature: c.signature } as ModelArtifact;
}

/** A fused .epk; a shared backbone is ARTIFACT_KIND (read it with readModelArtifact). */
export function readArtifact(bytes: Uint8Array, file = '(buffer)'): Artifact {
  const a = readModelArtifact(bytes, file);
  if (isBackbone(a)) throw new ArtifactError('ARTIFACT_KIND', file, 'is a shared-backbone artifact: it runs only with a prompt pack (.epp); read it with readModelArtifact', { field: 'shape' });
  return a;
}

/** Any signed EdgePrompt file, by what it holds. */
export type SignedFile = { kind: 'fused'; artifact: Artifact } | { kind: 'backbone'; artifact: BackboneArtifact } | { kind: 'pack'; pack: PromptPack };

/**
 * Reads an .epk (fused or shared backbone) or an .epp, told apart by the entry after
 * manifest.json. The archive is parsed once: the entries that tell the kind are the ones read.
 */
export function readSignedFile(bytes: Uint8Array, file = '(buffer)'): SignedFile {
  const entries = readTar(bytes, file);
  if (entries.some((e) => e.name === PACK_ENTRY.tensors)) return { kind: 'pack', pack: packFromEntries(entries, bytes, file) };
  const a = modelFromEntries(entries, bytes, file);
  return isBackbone(a) ? { kind: 'backbone', artifact: a } : { kind: 'fused', artifact: a };
}

export async function readArtifactFile(path: string): Promise<Artifact> {
  return readArtifact(await readFileBytes(path), path);
}

export async function readModelArtifactFile(path: string): Promise<ModelArtifact> {
  return readModelArtifact(await readFileBytes(path), path);
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

/** What a signature covers: an artifact's model.onnx, or a pack's tensors.safetensors. */
export type Signed = Pick<Artifact, 'file' | 'manifestBytes' | 'signature'> & ({ model: Uint8Array } | { tensorBytes: Uint8Array });

/**
 * Trust check. With trusted keys, the artifact (or pack) must carry a verifying signature by one
 * of them (ARTIFACT_UNSIGNED, SIGNATURE_UNKNOWN_KEY, SIGNATURE_INVALID otherwise); `allowUnsigned`
 * does not weaken that. Without keys, it throws NO_TRUSTED_KEYS unless `allowUnsigned`.
 */
export function verifyArtifact(artifact: Signed, trustedKeys: readonly (TrustedKey | KeyObject)[], opts: VerifyOptions = {}): Verification {
  const keys = trustedKeys.map((k, i): TrustedKey => ('keyId' in k ? k : { key: toPublicKey(k), keyId: keyIdOf(k), source: `trustedKeys[${i}]` }));
  if (keys.length === 0) {
    if (opts.allowUnsigned) return { verified: false, keyId: null, keySource: null };
    throw new ArtifactError('NO_TRUSTED_KEYS', artifact.file, 'cannot be verified: no trusted public keys are configured; add trustedKeys (recommended) or set allowUnsigned: true for development');
  }
  const [payload, name] = 'model' in artifact ? [artifact.model, ENTRY.model] : [artifact.tensorBytes, 'tensors.safetensors'];
  const ok = checkSignatures(artifact.signature, artifact.manifestBytes, payload, keys, artifact.file, name);
  return { verified: true, keyId: ok.keyId, keySource: ok.source };
}

/** readArtifactFile + verifyArtifact, with the keys given as PEM paths or inline PEM. */
export async function loadVerifiedArtifact(path: string, trusted: readonly string[], opts: VerifyOptions = {}): Promise<{ artifact: Artifact; verification: Verification }> {
  const keys = await loadTrustedKeys(trusted);
  const artifact = await readArtifactFile(path);
  return { artifact, verification: verifyArtifact(artifact, keys, opts) };
}
