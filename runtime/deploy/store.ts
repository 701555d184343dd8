// The device's deployment store (the `deploy.dir` of the device config):
//
//   state.json                 the one source of truth: what runs, the rollback copies, the highest
//                              release accepted per model/task, the deployment in progress
//   files/<sha256>.epk|.epp    installed files: the active ones, the previous ones (rollback), a candidate
//   incoming/<rollout>.part    a transfer in progress, and its .bitmap
//
// Crash safety (docs/deploy.md "Install"): a file is complete and durable (fsync, rename, directory
// fsync) before state.json names it, and state.json is replaced atomically (temporary file, fsync,
// rename, directory fsync). So after a kill -9 at any point state.json names files that exist and
// verify, and the device serves the old model or the new one, never neither. Files state.json
// does not name are leftovers of a step the crash cut short: recover() deletes them. The file
// operations go through FsOps so a test can stop them after any step.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DEPLOY_PHASES, DeployReason, InstalledRef, ShadowFigures, SignedDocument, TransferFigures, WatchFigures, DeployError } from '../schema/deploy.ts';
import type { Log } from '../log.ts';

/** The file operations the store makes, each durable when it returns. */
export interface FsOps {
  /** Writes a new file: temporary name, fsync, rename, directory fsync. */
  writeDurable(path: string, bytes: Uint8Array): Promise<void>;
  /** rename + fsync of the target directory. */
  renameDurable(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';

export const realFs: FsOps = {
  async writeDurable(path, bytes) {
    const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(bytes);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirOf(path));
  },
  async renameDurable(from, to) {
    await rename(from, to);
    await fsyncDir(dirOf(to));
  },
  remove: (path) => rm(path, { force: true }),
};

/** A model or pack file in files/. */
export const InstalledFile = InstalledRef.extend({ file: z.string().regex(/^[0-9a-f]{64}\.(epk|epp)$/) });
export type InstalledFile = z.infer<typeof InstalledFile>;

export const DeployRecord = z.object({
  rollout: z.string(),
  /** The signed document, kept to check it again after a restart. */
  signed: SignedDocument,
  state: z.enum(DEPLOY_PHASES),
  /** False for a document refused before it started (signature, target, downgrade…): sending it again checks it again. */
  accepted: z.boolean(),
  startedAt: z.number(),
  since: z.number(),
  releaseBefore: z.number().int().nullable(),
  /** The verified candidate, once installed in files/. */
  candidate: InstalledFile.nullable(),
  transfer: TransferFigures.nullable(),
  shadow: ShadowFigures.nullable(),
  watch: WatchFigures.nullable(),
  reason: DeployReason.nullable(),
});
export type DeployRecord = z.infer<typeof DeployRecord>;

export const StoreState = z.object({
  v: z.literal(1),
  /** What runs instead of the device config's `artifact` / a configured pack (by pack name). */
  active: z.object({ model: InstalledFile.nullable(), packs: z.record(z.string(), InstalledFile) }),
  /** What the active ones replaced: the rollback copies. */
  previous: z.object({ model: InstalledFile.nullable(), packs: z.record(z.string(), InstalledFile) }),
  /** Highest release accepted (promoted) per `model:<name>` / `pack:<name>`, with the file it was. */
  highest: z.record(z.string(), z.object({ release: z.number().int().nonnegative(), sha256: z.string() })),
  current: DeployRecord.nullable(),
  /** The last deployments' outcomes, newest last (bounded). */
  history: z.array(z.object({ rollout: z.string(), state: z.enum(DEPLOY_PHASES), at: z.number(), code: z.string().optional() })),
});
export type StoreState = z.infer<typeof StoreState>;

const HISTORY = 50;
export const emptyState = (): StoreState => ({ v: 1, active: { model: null, packs: {} }, previous: { model: null, packs: {} }, highest: {}, current: null, history: [] });
export const releaseKey = (kind: 'model' | 'pack', name: string) => `${kind}:${name}`;
export const fileName = (kind: 'model' | 'pack', sha256: string) => `${sha256}.${kind === 'model' ? 'epk' : 'epp'}`;

export class DeployStore {
  private current: StoreState = emptyState();

  constructor(
    readonly dir: string,
    private readonly fs: FsOps = realFs,
    private readonly log?: Log,
  ) {}

  get state(): Readonly<StoreState> {
    return this.current;
  }
  get filesDir(): string {
    return join(this.dir, 'files');
  }
  get incomingDir(): string {
    return join(this.dir, 'incoming');
  }
  pathOf(f: { file: string }): string {
    return join(this.filesDir, f.file);
  }

  /**
   * Reads state.json (a missing one is the empty state; an unreadable one is set aside with a
   * warning: the device then runs its configured model) and deletes what no step finished with.
   */
  async open(): Promise<StoreState> {
    await mkdir(this.filesDir, { recursive: true });
    await mkdir(this.incomingDir, { recursive: true });
    const file = join(this.dir, 'state.json');
    let text: string | null = null;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new DeployError('INSTALL_FAILED', `${file}: cannot read (${(e as NodeJS.ErrnoException).code}); check the deploy directory's permissions`, { cause: e });
    }
    if (text !== null) {
      const r = (() => {
        try {
          return StoreState.safeParse(JSON.parse(text));
        } catch {
          return null;
        }
      })();
      if (r?.success) this.current = r.data;
      else {
        const aside = `${file}.bad-${Date.now()}`;
        await rename(file, aside);
        this.log?.error({ file, aside }, 'deploy: state.json is unreadable; set aside, running the configured model');
      }
    }
    await this.collect();
    return this.current;
  }

  /** Replaces state.json atomically. */
  async save(next: StoreState): Promise<void> {
    const s = { ...next, history: next.history.slice(-HISTORY) };
    await this.fs.writeDurable(join(this.dir, 'state.json'), Buffer.from(JSON.stringify(s)));
    this.current = s;
  }

  /** Moves a finished, verified transfer into files/ (durably), under its sha256. */
  async adopt(part: string, kind: 'model' | 'pack', sha256: string): Promise<string> {
    const name = fileName(kind, sha256);
    await this.fs.renameDurable(part, join(this.filesDir, name));
    return name;
  }

  /** Writes bytes into files/ under their sha256 unless already there (the rollback copy of what runs). */
  async keep(kind: 'model' | 'pack', sha256: string, bytes: Uint8Array): Promise<string> {
    const name = fileName(kind, sha256);
    const present = await readdir(this.filesDir).then((l) => l.includes(name));
    if (!present) await this.fs.writeDurable(join(this.filesDir, name), bytes);
    return name;
  }

  remove(path: string): Promise<void> {
    return this.fs.remove(path);
  }

  /** Free bytes in the deploy directory's file system. */
  async freeBytes(): Promise<number> {
    const s = await statfs(this.dir);
    return s.bavail * s.bsize;
  }

  /** The files state.json names, and the transfer of the deployment in progress. */
  private referenced(): { files: Set<string>; incoming: string | null } {
    const s = this.current;
    const files = new Set<string>();
    const add = (f: InstalledFile | null | undefined) => void (f && files.add(f.file));
    add(s.active.model);
    add(s.previous.model);
    Object.values(s.active.packs).forEach(add);
    Object.values(s.previous.packs).forEach(add);
    let incoming: string | null = null;
    const c = s.current;
    if (c && c.state !== 'committed' && c.state !== 'rejected' && c.state !== 'rolled-back') {
      add(c.candidate);
      // A verified transfer moved into files/ before state.json named it: keep it for the restart.
      const doc = JSON.parse(c.signed.document) as { artifact: { kind: 'model' | 'pack'; sha256: string } };
      files.add(fileName(doc.artifact.kind, doc.artifact.sha256));
      incoming = c.rollout;
    }
    return { files, incoming };
  }

  /** Deletes files/ entries and transfers state.json does not name, and temporary files. */
  async collect(): Promise<void> {
    const { files, incoming } = this.referenced();
    for (const name of await readdir(this.filesDir)) {
      if (!files.has(name)) {
        await this.fs.remove(join(this.filesDir, name));
        this.log?.debug({ file: name }, 'deploy: removed a file no deployment uses');
      }
    }
    for (const name of await readdir(this.incomingDir)) {
      const keep = incoming !== null && (name === `${incoming}.part` || name === `${incoming}.bitmap`);
      if (!keep) await this.fs.remove(join(this.incomingDir, name));
    }
    for (const name of await readdir(this.dir)) if (name.includes('.tmp-')) await this.fs.remove(join(this.dir, name));
  }

  /** Appends a final outcome to the history (the caller saves). */
  static withHistory(s: StoreState, rec: DeployRecord): StoreState['history'] {
    return [...s.history, { rollout: rec.rollout, state: rec.state, at: rec.since, ...(rec.reason && { code: rec.reason.code }) }];
  }
}
