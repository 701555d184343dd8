// The artifact API: what the compiler calls to write and sign an .epk, and the runtime to read and
// verify one. See docs/artifact.md.
export { ArtifactError, type ArtifactErrorCode } from './errors.ts';
export {
  ManifestV1,
  MANIFEST_SCHEMA_VERSION,
  PRECISIONS,
  Precision,
  PrecisionMetrics,
  InputSpec,
  OutputSpec,
  Thresholds as ManifestThresholdsSchema,
  validateManifest,
  parseManifest,
  encodeManifest,
  type Manifest,
  type ManifestInput,
  type ManifestDraft,
  type ManifestThresholds,
} from './manifest.ts';
export {
  generateKeyPair,
  keyIdOf,
  toPublicKey,
  toPrivateKey,
  publicKeyPem,
  privateKeyPem,
  readPublicKey,
  readPrivateKey,
  loadTrustedKeys,
  writeKeyPair,
  type KeyLike,
  type KeyPair,
  type TrustedKey,
} from './keys.ts';
export { SignatureFile, SIGNATURE_MESSAGE, signingMessage } from './signature.ts';
export { packArtifact, signArtifact, writeArtifactFile, type PackInput, type PackOptions, type Packed } from './pack.ts';
export { readArtifact, readArtifactFile, verifyArtifact, loadVerifiedArtifact, ENTRY, type Artifact, type Verification, type VerifyOptions } from './read.ts';
export { readTar, writeTar, type TarEntry, type TarFile } from './tar.ts';
