// The device side of a deployment (docs/deploy.md): the `deploy` command hands over a signed
// document; once accepted the agent drives it through
//   downloading → verifying → shadow → promoted → committed   (or rejected / rolled-back)
// saving each step in the store before acting on it, so a restart continues where it was:
// a transfer resumes from its bitmap, a verification or shadow starts again, a promoted model is
// watched again for a full window. Progress and the outcome are published on the retained
// `<device>/deploy` topic (DeployStatePayload), on every change and on every reconnect.

import { parseDeployment } from '../artifact/deployment.ts';
import type { TrustedKey } from '../artifact/keys.ts';
import type { DeployConfig } from '../config/device-config.ts';
import type { Log } from '../log.ts';
import { CommandError } from '../mqtt/errors.ts';
import type { Reporter } from '../mqtt/reporter.ts';
import { topics } from '../mqtt/topics.ts';
import type { Pipeline } from '../pipeline/pipeline.ts';
import { decodeBlockFrame, DeployError, isFinalPhase, type DeploymentDocument, type DeploymentStatus, type DeployPhase, type SignedDocument } from '../schema/deploy.ts';
import type { ModelHost, Prepared } from '../session/host.ts';
import { accept, type Running } from './accept.ts';
import { promote, rollback } from './swap.ts';
import { ShadowRun, type ShadowTap } from './shadow.ts';
import { checkTransferred, makeTransfer } from './fetch.ts';
import { DeployStore, type DeployRecord } from './store.ts';
import { BlockTransfer } from './transfer-mqtt.ts';
import { HttpTransfer } from './transfer-http.ts';
import { StatePublisher } from './publish.ts';
import { WatchRun } from './watch.ts';

export interface AgentDeps {
  device: string;
  store: DeployStore;
  host: ModelHost;
  tap: ShadowTap;
  pipeline: Pick<Pipeline, 'on' | 'off' | 'thresholds'>;
  reporter: Pick<Reporter, 'subscribe' | 'publish' | 'publishEvent' | 'on' | 'bootId'>;
  trusted: readonly TrustedKey[];
  config: DeployConfig;
  log: Log;
  /** After a swap (promotion, rollback): refresh the retained device state. */
  onSwap(): void;
}

/** Thrown inside a phase when the runtime stops: the deployment is left as saved, for the next start. */
class Stopped extends Error {}
const TICK_MS = 200;

export class DeployAgent {
  private doc: DeploymentDocument | null = null;
  private candidate: Prepared | null = null;
  /** What a promotion replaced, ready to swap back (gone after a restart: then the rollback copy is loaded). */
  private standby: Prepared | null = null;
  private transfer: BlockTransfer | HttpTransfer | null = null;
  private shadow: ShadowRun | null = null;
  private driving: Promise<void> | null = null;
  private stopping = false;
  private readonly pub: StatePublisher;
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly d: AgentDeps) {
    this.pub = new StatePublisher({ device: d.device, reporter: d.reporter, host: d.host, log: d.log, status: () => this.status() });
    d.reporter.subscribe(topics.deployBlock(d.device), (_t, payload) => this.onBlock(payload));
    d.reporter.on('connect', () => {
      this.pub.now();
      if (this.transfer instanceof BlockTransfer) this.transfer.onConnect();
    });
  }

  /** A deployment is in progress (the `reload` command waits for it to end). */
  get busy(): DeployRecord | null {
    const r = this.rec;
    return r && !isFinalPhase(r.state) ? r : null;
  }

  private get rec(): DeployRecord | null {
    return this.d.store.state.current;
  }

  /** Continues a deployment a previous run of the device left unfinished. */
  async start(): Promise<void> {
    const rec = this.rec;
    if (!rec || isFinalPhase(rec.state)) return this.pub.now();
    this.doc = parseDeployment(rec.signed).document;
    if (rec.state === 'promoted' && !this.runs(rec)) {
      // The promoted file did not load at start (boot.ts fell back): that is a rollback.
      await this.finish('rolled-back', { code: 'PROMOTION_FAILED', message: `the promoted ${rec.candidate?.file ?? 'file'} did not load when the device started; it runs the previous one` });
      return;
    }
    this.d.log.info({ rollout: rec.rollout, state: rec.state }, 'deploy: continuing after a restart');
    this.driving = this.drive();
  }

  /** The `deploy` command. */
  async handle(signed: SignedDocument): Promise<{ rollout: string; state: DeployPhase }> {
    let doc: DeploymentDocument | null = null;
    try {
      doc = parseDeployment(signed).document;
      const r = await accept(signed, { device: this.d.device, trusted: this.d.trusted, store: this.d.store, running: this.running(), reserveBytes: this.d.config.reserveBytes });
      const o = r.outcome;
      if (o.kind === 'known') return { rollout: doc.rollout, state: o.state };
      const now = Date.now();
      const rec: DeployRecord = { rollout: doc.rollout, signed: { document: signed.document, signatures: signed.signatures }, state: o.kind === 'installed' ? 'committed' : 'downloading', accepted: true, startedAt: now, since: now, releaseBefore: o.releaseBefore, candidate: null, transfer: null, shadow: null, watch: null, reason: null };
      const st = this.d.store.state;
      await this.save({ ...st, current: rec, ...(o.kind === 'installed' && { history: DeployStore.withHistory(st, rec) }) });
      this.d.log.info({ rollout: doc.rollout, artifact: `${doc.artifact.name}@${doc.artifact.release}`, state: rec.state }, 'deploy: accepted');
      this.pub.now();
      if (o.kind === 'start') {
        this.doc = doc;
        this.driving = this.drive();
      }
      return { rollout: doc.rollout, state: rec.state };
    } catch (e) {
      const err = e as Error & { code?: string };
      const code = err.code ?? 'DEPLOY_DOCUMENT_INVALID';
      await this.refuse(doc, code, err.message);
      throw new CommandError(code, err.message);
    }
  }

  /** Stops what runs (transfer, shadow, watch) and leaves the deployment saved for the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.pub.stop();
    if (this.shadow) this.d.tap.detach(this.shadow);
    if (this.transfer instanceof BlockTransfer) await this.transfer.close();
    else this.transfer?.stop();
    await this.driving?.catch(() => {});
    if (this.candidate) await this.d.host.discard(this.candidate);
    if (this.standby) await this.d.host.discard(this.standby);
  }

  // ------------------------------------------------------------------ the phases

  private async drive(): Promise<void> {
    try {
      for (;;) {
        const s = this.rec!.state;
        if (s === 'downloading') await this.download();
        else if (s === 'verifying') await this.verify();
        else if (s === 'shadow') await this.runShadow();
        else if (s === 'promoted') await this.runWatch();
        else return;
      }
    } catch (e) {
      if (this.stopping || e instanceof Stopped) return;
      const err = e as Error & { code?: string };
      const reason = { code: (err.code ?? 'INSTALL_FAILED').slice(0, 64), message: (err.message || String(e)).slice(0, 2000) };
      this.d.log.error({ rollout: this.rec?.rollout, ...reason }, 'deploy: failed');
      if (this.rec?.state === 'promoted') await this.finish('rolled-back', reason);
      else await this.finish('rejected', reason);
    }
  }

  private async download(): Promise<void> {
    const doc = this.doc!;
    const t = makeTransfer(doc, {
      device: this.d.device,
      store: this.d.store,
      config: this.d.config,
      reporter: this.d.reporter,
      progress: (f) => {
        this.rec!.transfer = f;
        this.pub.soon();
      },
    });
    this.transfer = t.transfer;
    const figures = await t.run();
    if (figures.resumed > 0) this.d.log.info({ rollout: doc.rollout, resumed: figures.resumed }, 'deploy: the transfer resumed with what was on disk');
    this.transfer = null;
    this.check();
    await this.enter('verifying', { transfer: figures });
  }

  private async verify(): Promise<void> {
    const a = this.doc!.artifact;
    const file = await checkTransferred(this.doc!, this.d.store);
    this.check();
    this.candidate = await this.prepare(file);
    await this.enter('shadow', { candidate: { kind: a.kind, name: a.name, version: a.version, release: a.release, sha256: a.sha256, file } });
  }

  /** Loads the candidate (signature, fit, session) and checks it is what the document says. */
  private async prepare(file: string): Promise<Prepared> {
    const a = this.doc!.artifact;
    const p = await this.d.host.prepare(this.d.store.pathOf({ file }));
    const m = p.manifest;
    if (p.kind !== a.kind || m.name !== a.name || m.version !== a.version || m.release !== a.release) {
      await this.d.host.discard(p);
      throw new DeployError('ARTIFACT_MISMATCH', `the file is ${p.kind} ${m.name} ${m.version} release ${m.release}, the document says ${a.kind} ${a.name} ${a.version} release ${a.release}`);
    }
    return p;
  }

  private async runShadow(): Promise<void> {
    const rec = this.rec!;
    const policy = this.doc!.shadow;
    this.candidate ??= await this.prepare(rec.candidate!.file);
    this.check();
    if (policy.minFrames > 0) {
      const run = new ShadowRun(this.candidate, policy, this.d.pipeline.thresholds);
      this.shadow = run;
      this.d.tap.attach(run);
      const deadline = Date.now() + policy.maxDurationS * 1000;
      let verdict = run.verdict();
      try {
        while (verdict === null) {
          await this.sleep(TICK_MS);
          rec.shadow = run.figures();
          this.pub.soon();
          verdict = run.verdict();
          if (verdict === null && Date.now() > deadline) {
            throw new DeployError('SHADOW_TIMEOUT', `${rec.shadow.frames} of shadow.minFrames ${policy.minFrames} frames compared in shadow.maxDurationS ${policy.maxDurationS} s (camera down or paused?)`);
          }
        }
      } finally {
        this.d.tap.detach(run);
        this.shadow = null;
        await run.settled();
        rec.shadow = run.figures();
      }
      if (!verdict.ok) throw new DeployError(verdict.code, verdict.message);
    }
    const r = await promote({ store: this.d.store, host: this.d.host, rec, doc: this.doc!, candidate: this.candidate });
    this.standby = r.standby;
    this.candidate = null;
    this.d.onSwap();
    this.d.log.info({ rollout: rec.rollout, artifact: `${this.doc!.artifact.name}@${this.doc!.artifact.release}`, shadow: rec.shadow }, 'deploy: promoted');
    this.pub.now();
  }

  private async runWatch(): Promise<void> {
    const rec = this.rec!;
    const doc = this.doc!;
    const policy = doc.watch;
    const endsAt = this.standby ? rec.watch!.endsAt : Date.now() + policy.durationS * 1000; // after a restart: a full window again
    const covers = doc.artifact.kind === 'model' ? () => true : (cam: string) => this.d.host.packFor(cam)?.pack.manifest.name === doc.artifact.name;
    const w = new WatchRun(policy, covers, rec.shadow?.ngRate.candidate ?? null, endsAt);
    const onResult = w.result.bind(w);
    const onFailure = w.failure.bind(w);
    this.d.pipeline.on('result', onResult);
    this.d.pipeline.on('failure', onFailure);
    let v = w.verdict();
    try {
      while (v === null) {
        await this.sleep(TICK_MS);
        rec.watch = w.figures();
        this.pub.soon();
        v = w.verdict();
      }
    } finally {
      this.d.pipeline.off('result', onResult);
      this.d.pipeline.off('failure', onFailure);
      rec.watch = w.figures();
    }
    if (!v.ok) throw new DeployError(v.code, v.message);
    await this.finish('committed', null);
  }

  /** The final step: committed (release the replaced model), rejected or rolled-back (put the old one back). */
  private async finish(state: 'committed' | 'rejected' | 'rolled-back', reason: DeploymentStatus['reason']): Promise<void> {
    const rec = this.rec!;
    if (this.shadow) this.d.tap.detach(this.shadow);
    if (this.transfer instanceof BlockTransfer) await this.transfer.close();
    else this.transfer?.stop();
    this.transfer = null;
    if (state === 'rolled-back') {
      await rollback({ store: this.d.store, host: this.d.host, rec, doc: this.doc!, standby: this.standby, reason: reason!, log: this.d.log, save: (s) => this.save(s) });
      this.standby = null;
      this.d.onSwap();
    } else {
      const final: DeployRecord = { ...rec, state, since: Date.now(), reason };
      const st = this.d.store.state;
      await this.save({ ...st, current: final, history: DeployStore.withHistory(st, final) });
      if (this.standby) await this.d.host.discard(this.standby);
      this.standby = null;
    }
    if (this.candidate) await this.d.host.discard(this.candidate);
    this.candidate = null;
    await this.d.store.collect();
    this.d.log[state === 'committed' ? 'info' : 'warn']({ rollout: rec.rollout, state, code: reason?.code, reason: reason?.message }, `deploy: ${state}`);
    this.pub.now();
  }

  /** A document refused before it started: recorded (unless another deployment is in progress) and published. */
  private async refuse(doc: DeploymentDocument | null, code: string, message: string): Promise<void> {
    this.d.reporter.publishEvent({ type: 'error', code: code.slice(0, 64), message: `deployment${doc ? ` ${doc.rollout}` : ''} refused: ${message}`.slice(0, 2000) });
    this.d.log.warn({ rollout: doc?.rollout, code, err: message }, 'deploy: refused');
    const cur = this.rec;
    if (!doc || (cur && !isFinalPhase(cur.state))) return;
    const now = Date.now();
    const rec: DeployRecord = { rollout: doc.rollout, signed: { document: JSON.stringify(doc), signatures: [] }, state: 'rejected', accepted: false, startedAt: now, since: now, releaseBefore: null, candidate: null, transfer: null, shadow: null, watch: null, reason: { code: code.slice(0, 64), message: message.slice(0, 2000) } };
    this.doc = doc;
    await this.save({ ...this.d.store.state, current: rec });
    this.pub.now();
  }

  // ------------------------------------------------------------------ helpers

  private async enter(state: DeployPhase, patch: Partial<DeployRecord>): Promise<void> {
    const next: DeployRecord = { ...this.rec!, ...patch, state, since: Date.now() };
    await this.save({ ...this.d.store.state, current: next });
    this.pub.now();
  }

  private save(s: Parameters<DeployStore['save']>[0]): Promise<void> {
    const next = this.saving.then(() => this.d.store.save(s));
    this.saving = next.catch(() => {});
    return next;
  }

  private check(): void {
    if (this.stopping) throw new Stopped();
  }

  private async sleep(ms: number): Promise<void> {
    this.check();
    await new Promise((r) => setTimeout(r, ms));
    this.check();
  }

  private runs(rec: DeployRecord): boolean {
    const f = this.d.host.files();
    const c = rec.candidate;
    return c !== null && (c.kind === 'model' ? f.model?.sha256 === c.sha256 : f.packs.get(c.name)?.sha256 === c.sha256);
  }

  private running(): Running {
    const f = this.d.host.files();
    return { shared: this.d.host.shared, model: f.model, packs: f.packs };
  }

  private onBlock(payload: Buffer): void {
    const t = this.transfer;
    if (!(t instanceof BlockTransfer)) return;
    const f = decodeBlockFrame(payload);
    if (f === null) return t.badFrame('a message on the block topic is not a block frame (truncated or altered)');
    if (f.rollout !== this.rec?.rollout) return; // a late block of another rollout
    t.onFrame(f);
  }

  private status(): DeploymentStatus | null {
    const rec = this.rec;
    if (!rec) return null;
    if (this.doc?.rollout !== rec.rollout) this.doc = parseDeployment(rec.signed).document;
    const doc = this.doc;
    const a = doc.artifact;
    return { rollout: rec.rollout, artifact: { kind: a.kind, name: a.name, version: a.version, release: a.release, sha256: a.sha256, bytes: a.bytes }, releaseBefore: rec.releaseBefore, state: rec.state, startedAt: rec.startedAt, since: rec.since, transfer: rec.transfer, shadow: rec.shadow, watch: rec.watch, reason: rec.reason };
  }
}
