// The staged rollout (docs/deploy.md "Rollout"): `edgeprompt deploy` on the line PC. It signs one
// deployment document for all targets, then goes stage by stage (canary first): it sends the
// document to the stage's devices (the `deploy` command), serves the blocks they ask for, and
// waits until each is committed or failed. It stops the rollout when failures reach the policy's
// threshold (a canary failure always does) or a stage times out.
//
// The controller keeps no state of its own: what each device did is its retained `<device>/deploy`
// topic, and the rollout id follows from the command's inputs. Killed and started again with the
// same command, it reads those topics, skips devices already on this rollout and continues.

import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import type { z } from 'zod';
import { signDeployment } from '../../runtime/artifact/deployment.ts';
import { keyIdOf, toPublicKey, type KeyLike } from '../../runtime/artifact/keys.ts';
import { verifyArtifact } from '../../runtime/artifact/read.ts';
import { connectCommandClient } from '../../runtime/mqtt/command-client.ts';
import { ConnectionOptions, endClient, parseOptions, toMqttOptions } from '../../runtime/mqtt/connection.ts';
import { DeployError, isFinalPhase, type DeploymentStatus, type DeployReason } from '../../runtime/schema/deploy.ts';
import { BlockServer } from './block-server.ts';
import { buildDocument, readDeployFile, rolloutIdOf, type DeployFile } from './document.ts';
import { FleetView } from './fleet-view.ts';
import { planStages, type Stage } from './plan.ts';
import type { RolloutPolicy } from './policy.ts';
import { describe } from './status.ts';

export interface RolloutOptions {
  connection: z.input<typeof ConnectionOptions>;
  /** The .epk / .epp to deploy. */
  file: string;
  /** Device ids and globs (`line1-*`), comma-separated; globs match the devices seen on the broker. */
  devices: string;
  policy: RolloutPolicy;
  /** The release key(s) the document is signed with. */
  signKeys: readonly KeyLike[];
  /** Overrides the id derived from file, targets and policy. */
  rollout?: string;
  /** How long to listen for devices (retained status) when `devices` has a glob. */
  discoverMs?: number;
  /** Progress lines. */
  print?(line: string): void;
}

export type DeviceOutcome = 'committed' | 'failed' | 'pending';

export interface RolloutResult {
  rollout: string;
  outcome: 'completed' | 'aborted';
  reason: DeployReason | null;
  devices: Record<string, { outcome: DeviceOutcome; status: DeploymentStatus | null; error: DeployReason | null }>;
  /** Blocks the controller sent, per device (this run). */
  served: Record<string, number>;
}

const TICK_MS = 250;

export async function runRollout(o: RolloutOptions): Promise<RolloutResult> {
  const print = o.print ?? ((l: string) => console.log(l));
  const file = await readDeployFile(o.file);
  const note = checkSigner(file, o.signKeys);
  if (note) print(note);
  const conn = parseOptions(ConnectionOptions, o.connection, 'deploy');
  const client = mqtt.connect(conn.url, toMqttOptions(conn, { clientId: conn.clientId ?? `edgeprompt-deploy-${randomUUID().slice(0, 8)}`, clean: true }));
  client.on('error', () => {}); // reconnects; a broker that never answers ends in a stage timeout
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  const commands = await connectCommandClient({ ...o.connection, clientId: undefined });
  const view = new FleetView(client);
  let server: BlockServer | null = null;
  try {
    await view.start();
    const targets = await resolveTargets(o.devices, view, o.discoverMs ?? 1500);
    const stages = planStages(targets, o.policy);
    const rollout = o.rollout ?? rolloutIdOf(file, targets, o.policy);
    const signed = signDeployment(buildDocument(file, targets, o.policy, rollout), o.signKeys);
    const a = file.artifact;
    print(`rollout ${rollout}: ${a.kind} ${a.name} ${a.version} release ${a.release} (${(a.bytes / 1e6).toFixed(2)} MB, sha256 ${a.sha256.slice(0, 12)}…) to ${targets.length} device(s) via ${o.policy.transfer.via}`);
    print(`stages: ${stages.map((s) => `${s.name} [${s.devices.join(' ')}]`).join(' → ')}`);
    if (o.policy.transfer.via === 'mqtt') {
      server = new BlockServer(client, { rollout, sha256: a.sha256, bytes: file.bytes, blockBytes: o.policy.transfer.blockKiB * 1024, targets: new Set(targets), maxKiBps: o.policy.transfer.maxKiBps });
      await server.start();
    }
    await new Promise((r) => setTimeout(r, 300)); // retained deploy states arrive right after the subscription

    const replyErrors = new Map<string, DeployReason>();
    const ours = (d: string) => {
      const s = view.get(d).deploy?.deployment;
      return s?.rollout === rollout ? s : null;
    };
    const outcome = (d: string): DeviceOutcome => {
      const s = ours(d);
      if (s?.state === 'committed') return 'committed';
      if ((s && isFinalPhase(s.state)) || replyErrors.has(d)) return 'failed';
      return 'pending';
    };
    const result = (out: RolloutResult['outcome'], reason: DeployReason | null): RolloutResult => ({
      rollout,
      outcome: out,
      reason,
      devices: Object.fromEntries(targets.map((d) => [d, { outcome: outcome(d), status: ours(d), error: replyErrors.get(d) ?? null }])),
      served: Object.fromEntries(server?.served ?? []),
    });
    const shown = new Map<string, string>();
    const show = (stage: Stage, d: string) => {
      const s = ours(d);
      const err = replyErrors.get(d);
      const line = err && !s ? `refused: ${err.code}: ${err.message}` : s ? describe(s) : 'waiting';
      if (shown.get(d) === line) return;
      shown.set(d, line);
      print(`[${stage.name}] ${d}: ${line}`);
    };

    for (const [k, stage] of stages.entries()) {
      const started = Date.now();
      for (const d of stage.devices) {
        if (ours(d)) continue; // sent before (this run or a previous one)
        void commands.send(d, 'deploy', signed, { timeoutMs: 10_000 }).then(
          (reply) => {
            if (!reply.ok) replyErrors.set(d, reply.error);
          },
          () => print(`[${stage.name}] ${d}: no reply yet (offline?); the document waits in its session`),
        );
      }
      for (;;) {
        for (const d of stage.devices) show(stage, d);
        const failed = targets.filter((d) => outcome(d) === 'failed');
        const limit = Math.min(o.policy.abortAt.failures, o.policy.abortAt.percent === undefined ? Infinity : Math.ceil((o.policy.abortAt.percent * targets.length) / 100));
        if ((stage.name === 'canary' && stage.devices.some((d) => outcome(d) === 'failed')) || failed.length >= limit) {
          const why = stage.name === 'canary' ? 'the canary failed' : `${failed.length} device(s) failed (abortAt: ${JSON.stringify(o.policy.abortAt)})`;
          const reason = { code: 'ROLLOUT_ABORTED', message: `${why}: ${failed.join(', ')}; stopped before ${k + 1 < stages.length ? `stage ${stages[k + 1]!.name}` : 'the end'}` };
          print(`rollout ${rollout} ABORTED: ${reason.message}`);
          return result('aborted', reason);
        }
        if (stage.devices.every((d) => outcome(d) !== 'pending')) break;
        if (Date.now() - started > o.policy.stageTimeoutS * 1000) {
          const late = stage.devices.filter((d) => outcome(d) === 'pending');
          const reason = { code: 'STAGE_TIMEOUT', message: `stage ${stage.name} did not finish within stageTimeoutS ${o.policy.stageTimeoutS}: ${late.map((d) => `${d} (${ours(d)?.state ?? 'no answer'})`).join(', ')}` };
          print(`rollout ${rollout} ABORTED: ${reason.message}`);
          return result('aborted', reason);
        }
        await new Promise<void>((r) => {
          const done = () => {
            clearTimeout(t);
            view.off('change', done);
            r();
          };
          const t = setTimeout(done, TICK_MS);
          view.on('change', done);
        });
      }
      print(`stage ${stage.name} done`);
    }
    print(`rollout ${rollout} completed: ${targets.length} device(s) committed`);
    return result('completed', null);
  } finally {
    await server?.close();
    await commands.close();
    await endClient(client, 2000);
  }
}

/**
 * Devices verify the file's own signature too: an unsigned file would travel everywhere only to be
 * refused (ARTIFACT_UNSIGNED, thrown here). A file signed by another key than the release key is
 * fine if devices trust that key as well; the returned note says so.
 */
function checkSigner(file: DeployFile, keys: readonly KeyLike[]): string | null {
  const ids = keys.map((k) => keyIdOf(k));
  try {
    verifyArtifact(file.signed, keys.map((k) => toPublicKey(k)));
    return null;
  } catch (e) {
    if ((e as { code?: string }).code === 'SIGNATURE_UNKNOWN_KEY') return `note: ${file.path} is signed by ${file.signed.signature.signatures.map((s) => s.keyId).join(', ')}, not by the release key ${ids.join(', ')}: devices must trust its signer too`;
    throw e;
  }
}

/** Ids as given; globs against the devices that published a retained status or deploy state. */
async function resolveTargets(spec: string, view: FleetView, discoverMs: number): Promise<string[]> {
  const items = spec.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new DeployError('NO_DEVICES', '--devices is empty: give device ids or globs, comma-separated (e.g. press-1,press-2 or "line1-*")');
  const globs = items.filter((s) => /[*?]/.test(s));
  const out = new Set(items.filter((s) => !/[*?]/.test(s)));
  if (globs.length > 0) {
    await new Promise((r) => setTimeout(r, discoverMs));
    const res = globs.map((g) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`));
    for (const d of view.devices.keys()) if (res.some((r) => r.test(d))) out.add(d);
    if (out.size === 0) throw new DeployError('NO_DEVICES', `--devices ${spec}: no device seen on the broker matches (devices seen: ${[...view.devices.keys()].join(', ') || 'none'})`);
  }
  return [...out].sort();
}
