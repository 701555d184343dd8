// Getting the file of a deployment onto the device and checking it is the one the signed document
// pins (size, sha256) before anything else looks at it; then it moves into files/ under its sha256.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '../artifact/signature.ts';
import type { DeployConfig } from '../config/device-config.ts';
import type { Reporter } from '../mqtt/reporter.ts';
import { topics } from '../mqtt/topics.ts';
import { encodePayload } from '../schema/codec.ts';
import { BlockRequestPayload, DeployError, type DeploymentDocument, type TransferFigures } from '../schema/deploy.ts';
import { PAYLOAD_VERSION } from '../schema/payloads.ts';
import { fileName, type DeployStore } from './store.ts';
import { BlockTransfer } from './transfer-mqtt.ts';
import { HttpTransfer } from './transfer-http.ts';

/** Where a rollout's transfer lives while it is incomplete. */
export function incoming(store: DeployStore, rollout: string): { part: string; bitmap: string } {
  const base = join(store.incomingDir, rollout);
  return { part: `${base}.part`, bitmap: `${base}.bitmap` };
}

export interface TransferDeps {
  device: string;
  store: DeployStore;
  config: DeployConfig;
  reporter: Pick<Reporter, 'publish'>;
  progress(f: TransferFigures): void;
}

/** The transfer the document names, run until the part file holds every byte. */
export function makeTransfer(doc: DeploymentDocument, d: TransferDeps): { transfer: BlockTransfer | HttpTransfer; run(): Promise<TransferFigures> } {
  const t = doc.transfer;
  const { part, bitmap } = incoming(d.store, doc.rollout);
  if (t.via === 'http') {
    const ht = new HttpTransfer({ url: t.url, part, totalBytes: doc.artifact.bytes, stallMs: t.stallS * 1000, onProgress: d.progress });
    return { transfer: ht, run: async () => (await ht.run(), { ...ht.figures }) };
  }
  const topic = topics.deployGet(d.device);
  const bt = new BlockTransfer({
    part,
    bitmap,
    sha256: doc.artifact.sha256,
    totalBytes: doc.artifact.bytes,
    blockBytes: t.blockBytes,
    hashes: t.blocks,
    window: d.config.window,
    retryMs: d.config.retryMs,
    stallMs: t.stallS * 1000,
    maxBadBlocks: t.maxBadBlocks,
    request: (blocks) => d.reporter.publish(topic, encodePayload(BlockRequestPayload, topic, { v: PAYLOAD_VERSION, device: d.device, rollout: doc.rollout, sha256: doc.artifact.sha256, blocks }), { qos: 1 }),
    onProgress: d.progress,
  });
  return {
    transfer: bt,
    run: async () => {
      await bt.open();
      d.progress({ ...bt.figures });
      await bt.start();
      return { ...bt.figures };
    },
  };
}

/**
 * SIZE_MISMATCH / SHA256_MISMATCH unless the transferred file is exactly the one the document pins;
 * then it moves into files/ (durably). Returns its name there. A restart after the move finds it there.
 */
export async function checkTransferred(doc: DeploymentDocument, store: DeployStore): Promise<string> {
  const a = doc.artifact;
  const name = fileName(a.kind, a.sha256);
  const installed = join(store.filesDir, name);
  const { part, bitmap } = incoming(store, doc.rollout);
  const src = existsSync(installed) ? installed : part;
  const bytes = await readFile(src).catch((e: NodeJS.ErrnoException) => {
    throw new DeployError('INSTALL_FAILED', `${src}: cannot read the transferred file (${e.code})`);
  });
  if (bytes.length !== a.bytes) throw new DeployError('SIZE_MISMATCH', `the transferred file has ${bytes.length} bytes, the document pins ${a.bytes}`);
  const digest = sha256(bytes).toString('hex');
  if (digest !== a.sha256) throw new DeployError('SHA256_MISMATCH', `the transferred file has sha256 ${digest}, the document pins ${a.sha256}`);
  if (src === part) await store.adopt(part, a.kind, a.sha256);
  await store.remove(bitmap);
  return name;
}
