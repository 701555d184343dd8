// Every way an artifact can be refused, as a code the caller branches on (never the message text).
// Messages name the file, the entry or field, and say what to do.

import type { FieldIssue } from '../../devices/config-issues.ts';

export type ArtifactErrorCode =
  | 'ARTIFACT_UNREADABLE' // the file cannot be read (missing, permissions)
  | 'ARTIFACT_NOT_TAR' // the bytes are not a POSIX ustar archive (a bare .onnx, a zip, garbage)
  | 'ARTIFACT_TRUNCATED' // an entry or the end-of-archive marker runs past the end of the bytes
  | 'ARTIFACT_CORRUPT' // a later tar header fails its checksum
  | 'ARTIFACT_MISSING_ENTRY' // manifest.json, model.onnx (tensors.safetensors) or signature.json is absent
  | 'ARTIFACT_UNEXPECTED_ENTRY' // an entry that is not ours, a duplicate, or the entries out of order
  | 'MANIFEST_BAD_JSON' // manifest.json is not JSON
  | 'MANIFEST_SCHEMA_VERSION' // schemaVersion missing or not one this runtime reads
  | 'MANIFEST_INVALID' // a manifest field is missing or wrong (the message lists each)
  | 'MODEL_DIGEST_MISMATCH' // model.onnx (a pack's tensors.safetensors) does not match the manifest's sha256/bytes: tampered or corrupt
  | 'ARTIFACT_KIND' // another kind of file than the one expected: a prompt pack, a shared backbone or a fused artifact
  | 'PACK_TENSORS_INVALID' // a pack's tensors.safetensors is not a valid float32 safetensors file
  | 'PACK_BACKBONE_MISMATCH' // a prompt pack compiled for another shared backbone (its model digest differs)
  | 'PACK_SHAPE_MISMATCH' // a pack's tensors are not the inputs its backbone takes (names, shapes, class count)
  | 'SIGNATURE_MALFORMED' // signature.json is not the expected shape
  | 'SIGNATURE_INVALID' // a signature by a trusted key does not verify: tampered manifest or model
  | 'SIGNATURE_UNKNOWN_KEY' // signed, but by no key this device trusts (wrong key)
  | 'ARTIFACT_UNSIGNED' // no signature while trusted keys are configured
  | 'NO_TRUSTED_KEYS' // nothing to verify against and unsigned artifacts are not allowed
  | 'KEY_INVALID' // a key is not an ed25519 key in PEM (or KeyObject) form
  | 'KEY_UNREADABLE' // a key file cannot be read
  | 'KEY_WRITE_FAILED' // a key file (or its folder) cannot be written
  | 'KEY_EXISTS'; // writing a key pair would overwrite a file

export class ArtifactError extends Error {
  override readonly name = 'ArtifactError';
  constructor(
    readonly code: ArtifactErrorCode,
    /** The artifact (or key) file the error is about; '(buffer)' for bytes without a name. */
    readonly file: string,
    message: string,
    options?: { cause?: unknown; field?: string; issues?: readonly FieldIssue[] },
  ) {
    super(`${file}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.field = options?.field;
    this.issues = options?.issues ?? [];
  }
  /** The manifest field or archive entry at fault, when there is one. */
  readonly field: string | undefined;
  /** MANIFEST_INVALID: every bad field with its value (the message lists them too). */
  readonly issues: readonly FieldIssue[];
}
