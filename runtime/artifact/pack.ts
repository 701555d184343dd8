// Writing an artifact (the compiler's side): manifest draft + model bytes (+ signing keys) -> .epk,
// and a prompt pack: manifest draft + tensors -> .epp.
// Packing is deterministic: the same inputs give the same bytes (tar mtimes come from createdAt and
// ed25519 signatures are deterministic), so a rebuilt artifact can be compared byte for byte.

import { rename, writeFile } from 'node:fs/promises';
import { ENTRY, PACK_ENTRY } from './container.ts';
import { ArtifactError } from './errors.ts';
import { type KeyLike } from './keys.ts';
import { encodeManifest, MANIFEST_SCHEMA_VERSION, validateManifest, type Manifest, type ManifestDraft } from './manifest.ts';
import { parsePackTensors, readPromptPack } from './prompt-pack.ts';
import { readModelArtifact, type ModelArtifact } from './read.ts';
import { validateBackboneManifest, validatePackManifest, type BackboneManifest, type BackboneManifestDraft, type PromptPackDraft, type PromptPackManifest } from './backbone-pack.ts';
import { encodeSignatureFile, makeSignatureFile, PACK_SIGNATURE_MESSAGE, sha256, SIGNATURE_MESSAGE, type SignatureFile } from './signature.ts';
import { writeTar } from './tar.ts';

export interface PackInput {
  manifest: ManifestDraft;
  /** The ONNX model bytes (ModelProto), exactly as onnxruntime should load them. */
  model: Uint8Array;
}

export interface PackOptions {
  /** ed25519 private key(s) to sign with; none gives an unsigned artifact (refused by devices with trusted keys). */
  privateKey?: KeyLike | readonly KeyLike[];
}

export interface Packed<M = Manifest> {
  bytes: Buffer;
  /** The manifest as written (defaults filled, model digest added). */
  manifest: M;
  /** Key ids of the signatures, in order. */
  keyIds: string[];
  /** sha256 of the whole .epk (what the runtime reports as the model's sha256). */
  sha256: string;
}

/** The signed container: manifest.json, the payload entry (model.onnx or tensors.safetensors), signature.json. */
function packContainer<M extends { createdAt: string }>(manifest: M, manifestBytes: Uint8Array, payload: { name: string; data: Uint8Array }, keys: readonly KeyLike[], message: SignatureFile['message'] = SIGNATURE_MESSAGE): Packed<M> {
  const sig = makeSignatureFile(manifestBytes, payload.data, keys, message);
  const mtime = Math.floor(Date.parse(manifest.createdAt) / 1000);
  const bytes = writeTar([
    { name: ENTRY.manifest, data: manifestBytes, mtime },
    { name: payload.name, data: payload.data, mtime },
    { name: ENTRY.signature, data: encodeSignatureFile(sig), mtime },
  ]);
  return { bytes, manifest, keyIds: sig.signatures.map((s) => s.keyId), sha256: sha256(bytes).toString('hex') };
}

function pack<M extends { createdAt: string }>(manifest: M, model: Uint8Array, keys: readonly KeyLike[]): Packed<M> {
  return packContainer(manifest, encodeManifest(manifest), { name: ENTRY.model, data: model }, keys);
}

const keyList = (k: PackOptions['privateKey']): readonly KeyLike[] => (k === undefined ? [] : Array.isArray(k) ? k : [k as KeyLike]);

function checkModel(model: Uint8Array): void {
  if (!(model instanceof Uint8Array) || model.length === 0) {
    throw new ArtifactError('MANIFEST_INVALID', '(new artifact)', 'model must be non-empty ONNX bytes (a Uint8Array)', { field: 'model' });
  }
}

/**
 * Validates the manifest (throws ArtifactError MANIFEST_INVALID naming each field), fills in
 * schemaVersion, model {sha256, bytes} and createdAt (now, when omitted), and packs and signs.
 */
export function packArtifact(input: PackInput, opts: PackOptions = {}): Packed {
  checkModel(input.model);
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

/** packArtifact for a shared backbone: the manifest fills in schemaVersion, shape, model and createdAt. */
export function packBackboneArtifact(input: { manifest: BackboneManifestDraft; model: Uint8Array }, opts: PackOptions = {}): Packed<BackboneManifest> {
  checkModel(input.model);
  const manifest = validateBackboneManifest(
    {
      createdAt: new Date().toISOString(),
      ...input.manifest,
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      shape: 'shared-backbone',
      model: { sha256: sha256(input.model).toString('hex'), bytes: input.model.length },
    },
    '(new artifact)',
  );
  return pack(manifest, input.model, keyList(opts.privateKey));
}

/** Re-signs an existing artifact (replacing its signatures) without touching manifest or model bytes. */
export function signArtifact<A extends ModelArtifact>(artifact: A, privateKey: KeyLike | readonly KeyLike[]): Packed<A['manifest']> {
  return packContainer(artifact.manifest, artifact.manifestBytes, { name: ENTRY.model, data: artifact.model }, keyList(privateKey));
}

/** packArtifact, then an atomic write (temp file + rename), then a read-back check. */
export async function writeArtifactFile(path: string, input: PackInput, opts: PackOptions = {}): Promise<Packed> {
  const packed = packArtifact(input, opts);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, packed.bytes);
  readModelArtifact(packed.bytes, path); // never leave a file the runtime would refuse
  await rename(tmp, path);
  return packed;
}

/**
 * Validates the manifest (MANIFEST_INVALID naming each field) and the tensors (PACK_TENSORS_INVALID),
 * fills in schemaVersion, kind, tensors {sha256, bytes} and createdAt, then packs and signs.
 */
export function packPromptPack(input: { manifest: PromptPackDraft; tensors: Uint8Array }, opts: PackOptions = {}): Packed<PromptPackManifest> {
  parsePackTensors(input.tensors, '(new pack)');
  const manifest = validatePackManifest(
    {
      createdAt: new Date().toISOString(),
      ...input.manifest,
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      kind: 'prompt-pack',
      tensors: { sha256: sha256(input.tensors).toString('hex'), bytes: input.tensors.length },
    },
    '(new pack)',
  );
  return packContainer(manifest, encodeManifest(manifest), { name: PACK_ENTRY.tensors, data: input.tensors }, keyList(opts.privateKey), PACK_SIGNATURE_MESSAGE);
}

/** packPromptPack, then an atomic write and a read-back check. */
export async function writePromptPackFile(path: string, input: { manifest: PromptPackDraft; tensors: Uint8Array }, opts: PackOptions = {}): Promise<Packed<PromptPackManifest>> {
  const packed = packPromptPack(input, opts);
  readPromptPack(packed.bytes, path);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, packed.bytes);
  await rename(tmp, path);
  return packed;
}
