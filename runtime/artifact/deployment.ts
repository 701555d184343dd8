// Signed deployment documents (docs/deploy.md): the deploy controller signs a document with the
// release key; a device runs only documents signed by a key it trusts, so access to the broker
// alone can neither deploy nor downgrade.
//
//   message   = "edgeprompt deployment v1\n" ‖ the document's JSON text (UTF-8, exactly as sent)
//   signature = ed25519(privateKey, message)
//
// The prefix keeps a document signature from ever verifying as anything else (an artifact signs a
// 64-byte digest pair). The text travels as a string, so nothing is re-serialised before checking.

import { sign, verify } from 'node:crypto';
import { formatIssues } from '../schema/codec.ts';
import { DeployError, DeploymentDocument, SignedDocument, type DeploymentDocumentInput } from '../schema/deploy.ts';
import { keyIdOf, toPrivateKey, type KeyLike, type TrustedKey } from './keys.ts';

const DOMAIN = Buffer.from('edgeprompt deployment v1\n', 'utf8');
/** Clock skew tolerated on issuedAt (a device clock behind the controller's). */
export const MAX_CLOCK_SKEW_MS = 10 * 60_000;

const message = (text: string) => Buffer.concat([DOMAIN, Buffer.from(text, 'utf8')]);

/** Validates the document (DEPLOY_DOCUMENT_INVALID naming each field) and signs its JSON text. */
export function signDeployment(doc: DeploymentDocumentInput, keys: readonly KeyLike[]): SignedDocument {
  const r = DeploymentDocument.safeParse(doc);
  if (!r.success) throw new DeployError('DEPLOY_DOCUMENT_INVALID', `deployment document is invalid: ${formatIssues(r.error.issues)}`);
  const text = JSON.stringify(r.data);
  const signatures = keys.map((k) => {
    const priv = toPrivateKey(k, '(signing key)');
    return { keyId: keyIdOf(priv), value: sign(null, message(text), priv).toString('base64') };
  });
  return { document: text, signatures };
}

/**
 * The envelope and the document it carries, without checking trust (a refusal is reported against
 * the document's rollout). DEPLOY_DOCUMENT_INVALID for anything that is not a valid document.
 */
export function parseDeployment(signed: unknown): { signed: SignedDocument; document: DeploymentDocument } {
  const env = SignedDocument.safeParse(signed);
  if (!env.success) throw new DeployError('DEPLOY_DOCUMENT_INVALID', `signed deployment is invalid: ${formatIssues(env.error.issues)}`);
  let json: unknown;
  try {
    json = JSON.parse(env.data.document);
  } catch (e) {
    throw new DeployError('DEPLOY_DOCUMENT_INVALID', `deployment document is not JSON (${(e as Error).message})`);
  }
  const doc = DeploymentDocument.safeParse(json);
  if (!doc.success) {
    const v = (json as { v?: unknown } | null)?.v;
    const hint = typeof v === 'number' && v > 1 ? ' (a newer document version: update the device runtime)' : '';
    throw new DeployError('DEPLOY_DOCUMENT_INVALID', `deployment document is invalid${hint}: ${formatIssues(doc.error.issues)}`);
  }
  return { signed: env.data, document: doc.data };
}

/**
 * Trust: a signature by one of `trusted` must verify over the document text. Deployments always need
 * keys (there is no allowUnsigned for them): DEPLOY_NO_TRUSTED_KEYS, DEPLOY_UNSIGNED,
 * DEPLOY_UNKNOWN_KEY, DEPLOY_SIGNATURE_INVALID.
 */
export function verifyDeployment(signed: SignedDocument, trusted: readonly TrustedKey[]): { keyId: string; source: string } {
  if (trusted.length === 0) throw new DeployError('DEPLOY_NO_TRUSTED_KEYS', 'this device trusts no keys, so it cannot check a deployment: configure trustedKeys (or deploy.trustedKeys)');
  if (signed.signatures.length === 0) throw new DeployError('DEPLOY_UNSIGNED', `the deployment is not signed; sign it with a key the device trusts (${trusted.map((k) => k.keyId).join(', ')})`);
  const byId = new Map(trusted.map((k) => [k.keyId, k]));
  const usable = signed.signatures.filter((s) => byId.has(s.keyId));
  if (usable.length === 0) {
    throw new DeployError(
      'DEPLOY_UNKNOWN_KEY',
      `the deployment is signed by key ${signed.signatures.map((s) => s.keyId).join(', ')}, which this device does not trust (trusted: ${trusted.map((k) => `${k.keyId} from ${k.source}`).join('; ')}); sign with a trusted release key or add its public key to the device's trustedKeys`,
    );
  }
  const msg = message(signed.document);
  for (const s of usable) {
    const key = byId.get(s.keyId)!;
    if (verify(null, msg, key.key, Buffer.from(s.value, 'base64'))) return { keyId: key.keyId, source: key.source };
  }
  throw new DeployError('DEPLOY_SIGNATURE_INVALID', `the signature by key ${usable.map((s) => s.keyId).join(', ')} does not verify: the document was changed after signing; do not run it`);
}

/** The checks that depend on who and when: DEPLOY_NOT_TARGETED, DEPLOY_EXPIRED, DEPLOY_NOT_YET_VALID. */
export function checkDeploymentFor(doc: DeploymentDocument, device: string, now = Date.now()): void {
  if (!doc.targets.includes(device)) {
    const few = doc.targets.length <= 5 ? doc.targets.join(', ') : `${doc.targets.slice(0, 5).join(', ')} and ${doc.targets.length - 5} more`;
    throw new DeployError('DEPLOY_NOT_TARGETED', `rollout ${doc.rollout} is for ${few}, not for ${device}`);
  }
  if (now > doc.expiresAt) {
    throw new DeployError('DEPLOY_EXPIRED', `rollout ${doc.rollout}'s document expired at ${new Date(doc.expiresAt).toISOString()} (device clock ${new Date(now).toISOString()}); issue a new one`);
  }
  if (doc.issuedAt > now + MAX_CLOCK_SKEW_MS) {
    throw new DeployError('DEPLOY_NOT_YET_VALID', `rollout ${doc.rollout}'s document was issued at ${new Date(doc.issuedAt).toISOString()}, after the device clock (${new Date(now).toISOString()}) by more than ${MAX_CLOCK_SKEW_MS / 60_000} min; check the clocks`);
  }
}
