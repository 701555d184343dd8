// The artifact API: what the compiler calls to write and sign an .epk (fused or shared backbone)
// and an .epp (prompt pack), and the runtime to read and verify them. See docs/artifact.md.
export { ArtifactError, type ArtifactErrorCode } from './errors.ts';
export {
  ManifestV1,
  MANIFEST_SCHEMA_VERSION,
  PRECISIONS,
  Precision,
  PrecisionMetrics,
  InputSpec,
  OutputSpec,
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
export { SignatureFile, SIGNATURE_MESSAGE, PACK_SIGNATURE_MESSAGE, signingMessage } from './signature.ts';
export { packArtifact, packBackboneArtifact, packPromptPack, signArtifact, writeArtifactFile, writePromptPackFile, type PackInput, type PackOptions, type Packed } from './pack.ts';
export {
  readArtifact,
  readArtifactFile,
  readModelArtifact,
  readModelArtifactFile,
  isBackbone,
  readSignedFile,
  verifyArtifact,
  loadVerifiedArtifact,
  type Artifact,
  type BackboneArtifact,
  type ModelArtifact,
  type Signed,
  type SignedFile,
  type Verification,
  type VerifyOptions,
} from './read.ts';
export { ENTRY, PACK_ENTRY, readFileBytes } from './container.ts';
export {
  BackboneManifestV1,
  PromptPackManifestV1,
  PackInput as PackInputSpec,
  CLASSES_DIM,
  checkPackFits,
  taskManifest,
  type BackboneManifest,
  type BackboneManifestDraft,
  type PromptPackManifest,
  type PromptPackDraft,
} from './backbone-pack.ts';
export { readPromptPack, readPromptPackFile, parsePackTensors, type PromptPack, type PackTensor } from './prompt-pack.ts';
export { readTar, writeTar, type TarEntry, type TarFile } from './tar.ts';
