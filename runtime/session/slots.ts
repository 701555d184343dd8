// What the model host holds (host.ts): the active model (a fused session, or a shared backbone with
// its prompt packs by slot: a camera id, or DEFAULT_PACK for every camera without its own), and a
// Prepared model or pack: verified and loaded but not in use, so that a deployment can run it
// beside the current one (shadow) and swap it in later, or swap back what a commit replaced.

import type { Verification } from '../artifact/read.ts';
import type { PromptPack } from '../artifact/prompt-pack.ts';
import type { BackboneSession, PackTask } from './backbone.ts';
import { SessionError } from './errors.ts';
import type { ModelSession } from './session.ts';
import type { ModelTask } from './task.ts';

/** The slot of the default pack: cameras without their own. */
export const DEFAULT_PACK = '*';

export interface Slot {
  /** Where the pack was read from (read again when the backbone reloads), or the pack itself when it came as bytes. */
  source: string | PromptPack;
  task: PackTask;
  /** The .epp file's bytes (a deployment keeps them as its rollback copy). */
  bytes: Uint8Array;
}
export type Shared = { kind: 'shared'; session: BackboneSession; slots: ReadonlyMap<string, Slot>; bytes: Uint8Array };
/** The model in use; `bytes`: its .epk file. */
export type Active = { kind: 'fused'; session: ModelSession; bytes: Uint8Array } | Shared;

/** A verified model or pack, loaded but not in use (ModelHost.prepare), or what a commit replaced. */
export interface Prepared {
  readonly kind: 'model' | 'pack';
  /** sha256 of the whole file. */
  readonly sha256: string;
  /** The file's bytes. */
  readonly bytes: Uint8Array;
  readonly manifest: { readonly name: string; readonly version: string; readonly release: number };
  /** What it decides with: the model's (default) task, or the pack bound to the running backbone. */
  readonly task: ModelTask;
  /** True when frames of this camera would run on it once committed. */
  covers(camera: string): boolean;
}

/** A model with its own session; a pack bound to the backbone; or pack slots a commit replaced. */
export type PreparedState =
  | { kind: 'model'; next: Active }
  | { kind: 'pack'; pack: PromptPack; source: string | PromptPack; task: PackTask }
  | { kind: 'slots'; slots: ReadonlyMap<string, Slot>; task: PackTask };

export class PreparedLoad implements Prepared {
  released = false;
  constructor(
    readonly state: PreparedState,
    readonly sha256: string,
    readonly bytes: Uint8Array,
    readonly manifest: Prepared['manifest'],
    readonly task: ModelTask,
    readonly verification: Verification,
    /** The host's model in use, read when asked whom this would serve. */
    private readonly active: () => Active | null,
  ) {}

  get kind(): 'model' | 'pack' {
    return this.state.kind === 'model' ? 'model' : 'pack';
  }

  covers(camera: string): boolean {
    const a = this.active();
    if (this.state.kind === 'model') return true;
    if (a?.kind !== 'shared') return false;
    const key = a.slots.has(camera) ? camera : DEFAULT_PACK;
    if (this.state.kind === 'slots') return this.state.slots.has(key);
    try {
      return packTargets(a, this.state.pack).includes(key);
    } catch {
      return false;
    }
  }
}

/**
 * The slots a pack replaces: those running a pack of the same name (a new version of the task);
 * a pack of another name replaces the only pack when one runs, and is PACK_AMBIGUOUS when several do.
 */
export function packTargets(a: Shared, pack: PromptPack): string[] {
  const named = [...a.slots].filter(([, s]) => s.task.pack.manifest.name === pack.manifest.name).map(([k]) => k);
  const running = [...new Set([...a.slots.values()].map((s) => s.task.pack.manifest.name))];
  if (named.length > 0) return named;
  if (running.length === 1) return [...a.slots.keys()];
  throw new SessionError('PACK_AMBIGUOUS', `${pack.file}: pack ${pack.manifest.name} replaces a running pack of the same name, but this device runs ${running.join(', ')}; name the pack like the one it replaces, or assign it in the device config (packs.<camera>) and reload the backbone`);
}

/** A backbone's default task: the default pack, else the first. */
export function defaultTask(a: { slots: ReadonlyMap<string, Slot> }): PackTask {
  return (a.slots.get(DEFAULT_PACK) ?? [...a.slots.values()][0]!).task;
}
