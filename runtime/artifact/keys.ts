// ed25519 keys (node:crypto, no dependency). A key is named by its key id: the first 16 hex digits
// of sha256 over the public key's SPKI DER encoding, so a device trusting several keys (rotation,
// several build servers) picks the right one without trying each, and `edgeprompt verify` can say
// which key signed an artifact.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ArtifactError } from './errors.ts';

/** A key as callers hold it: a KeyObject, or PEM text (string or bytes). */
export type KeyLike = KeyObject | string | Uint8Array;

export interface KeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
  keyId: string;
}

export interface TrustedKey {
  keyId: string;
  key: KeyObject;
  /** Where it came from (a file path), for messages. */
  source: string;
}

export function generateKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKey, privateKey, keyId: keyIdOf(publicKey) };
}

export function keyIdOf(key: KeyLike): string {
  const der = toPublicKey(key).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

function asPem(k: string | Uint8Array): string {
  return typeof k === 'string' ? k : Buffer.from(k).toString('utf8');
}

function checkEd25519(k: KeyObject, source: string): KeyObject {
  if (k.asymmetricKeyType !== 'ed25519') {
    throw new ArtifactError('KEY_INVALID', source, `is a ${k.asymmetricKeyType ?? k.type} key; artifacts are signed with ed25519 keys (edgeprompt keys new)`);
  }
  return k;
}

/** A public key from a public KeyObject, a private one (its public half), or PEM of either. */
export function toPublicKey(key: KeyLike, source = '(key)'): KeyObject {
  try {
    if (typeof key === 'string' || key instanceof Uint8Array) return checkEd25519(createPublicKey(asPem(key)), source);
    return checkEd25519(key.type === 'public' ? key : createPublicKey(key), source);
  } catch (e) {
    if (e instanceof ArtifactError) throw e;
    throw new ArtifactError('KEY_INVALID', source, `is not a PEM public key (${(e as Error).message})`, { cause: e });
  }
}

export function toPrivateKey(key: KeyLike, source = '(key)', passphrase?: string): KeyObject {
  try {
    if (typeof key === 'string' || key instanceof Uint8Array) {
      return checkEd25519(createPrivateKey(passphrase === undefined ? asPem(key) : { key: asPem(key), passphrase }), source);
    }
    if (key.type !== 'private') throw new Error(`a ${key.type} key cannot sign`);
    return checkEd25519(key, source);
  } catch (e) {
    if (e instanceof ArtifactError) throw e;
    throw new ArtifactError('KEY_INVALID', source, `is not a PEM private key (${(e as Error).message})`, { cause: e });
  }
}

export const publicKeyPem = (key: KeyLike): string => toPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
export const privateKeyPem = (key: KeyLike): string => toPrivateKey(key).export({ type: 'pkcs8', format: 'pem' }).toString();

async function readKeyFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new ArtifactError('KEY_UNREADABLE', path, `cannot read key file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix the path or permissions`, { cause: e });
  }
}

export async function readPublicKey(path: string): Promise<TrustedKey> {
  const key = toPublicKey(await readKeyFile(path), path);
  return { key, keyId: keyIdOf(key), source: path };
}

export async function readPrivateKey(path: string, passphrase?: string): Promise<KeyObject> {
  return toPrivateKey(await readKeyFile(path), path, passphrase);
}

/** Trusted keys from PEM files or inline PEM text (a string starting with -----BEGIN). */
export async function loadTrustedKeys(refs: readonly (string | KeyObject)[]): Promise<TrustedKey[]> {
  const keys: TrustedKey[] = [];
  for (const [i, ref] of refs.entries()) {
    if (typeof ref !== 'string') {
      const key = toPublicKey(ref);
      keys.push({ key, keyId: keyIdOf(key), source: `trustedKeys[${i}]` });
    } else if (ref.trimStart().startsWith('-----BEGIN')) {
      const key = toPublicKey(ref, `trustedKeys[${i}]`);
      keys.push({ key, keyId: keyIdOf(key), source: `trustedKeys[${i}]` });
    } else {
      keys.push(await readPublicKey(ref));
    }
  }
  return keys;
}

/**
 * Writes `<base>.key` (pkcs8 PEM, mode 0600) and `<base>.pub` (spki PEM), creating the folder
 * (mode 0700: it holds a secret) when it does not exist. Refuses to overwrite an existing file
 * unless `force`: losing a release key is worse than an error.
 */
export async function writeKeyPair(pair: KeyPair, base: string, opts: { force?: boolean } = {}): Promise<{ privatePath: string; publicPath: string; keyId: string }> {
  const privatePath = `${base}.key`;
  const publicPath = `${base}.pub`;
  const flag = opts.force ? 'w' : 'wx';
  const folder = dirname(privatePath);
  try {
    await mkdir(folder, { recursive: true, mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ArtifactError('KEY_WRITE_FAILED', folder, `cannot create the folder for the key pair (${code ?? (e as Error).message}); check the path and its permissions`, { cause: e });
  }
  for (const [path, text, mode] of [
    [privatePath, privateKeyPem(pair.privateKey), 0o600],
    [publicPath, publicKeyPem(pair.publicKey), 0o644],
  ] as const) {
    const tmp = `${path}.tmp-${process.pid}`;
    try {
      if (!opts.force) await writeFile(path, '', { flag, mode }); // claims the name: fails with EEXIST
      await writeFile(tmp, text, { mode });
      await rename(tmp, path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new ArtifactError('KEY_EXISTS', path, 'already exists; refusing to overwrite a key (pass force to replace it)');
      throw new ArtifactError('KEY_WRITE_FAILED', path, `cannot write the key file (${code ?? (e as Error).message}); check the folder's permissions and free space`, { cause: e });
    }
  }
  return { privatePath, publicPath, keyId: pair.keyId };
}
