// One process per outbox directory: two writers appending to one log would interleave records.
// The lock file holds the owner's pid; a lock whose pid is dead (kill -9, power loss) is stale
// and taken over.

import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { OutboxError } from './errors.ts';

const LOCK = 'outbox.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

export async function acquireLock(dir: string, notWritable: (dir: string, e: unknown) => Error): Promise<void> {
  const path = join(dir, LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      try {
        await fh.writeFile(String(process.pid));
      } finally {
        await fh.close();
      }
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw notWritable(dir, e);
    }
    const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      throw new OutboxError(
        'OUTBOX_LOCKED',
        `outbox dir ${JSON.stringify(dir)} is in use by pid ${pid}${pid === process.pid ? ' (this process)' : ''}; ` +
          'give each runtime its own outbox.dir, or close the other outbox first',
      );
    }
    await rm(path, { force: true }); // stale: its owner is gone
  }
  throw new OutboxError('OUTBOX_LOCKED', `outbox dir ${JSON.stringify(dir)}: could not take ${LOCK}`);
}

export async function releaseLock(dir: string): Promise<void> {
  await rm(join(dir, LOCK), { force: true });
}
