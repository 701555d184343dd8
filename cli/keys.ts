/** `edgeprompt keys new`: an ed25519 key pair for signing artifacts (the folder is created, mode 0700). */
import type { Command } from 'commander';
import { generateKeyPair, writeKeyPair } from '../runtime/artifact/index.ts';

export function addKeysCommands(program: Command): void {
  const keys = program.command('keys').description('signing keys');
  keys
    .command('new')
    .description('generate an ed25519 key pair: <base>.key (private, 0600) and <base>.pub; a missing folder is created (0700)')
    .requiredOption('--out <base>', 'path without extension, e.g. keys/line1')
    .option('--force', 'overwrite existing files')
    .action(async (f: { out: string; force?: boolean }) => {
      const r = await writeKeyPair(generateKeyPair(), f.out, { force: f.force === true });
      console.log(`wrote ${r.privatePath} (keep it secret) and ${r.publicPath} (give it to devices); key id ${r.keyId}`);
    });
}
