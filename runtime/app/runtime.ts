// The device runtime, assembled from a validated DeviceConfig: model host (verified artifact, ORT
// session with EP fallback), cameras + triggers (+ PLC handshakes), the pipeline, the MQTT reporter
// with its outbox, command handlers, health and events. `stop()` takes it down in the order that
// loses nothing: cameras, the frames already waiting, the sinks, the PLCs (undecided triggers are
// answered NG E6), then MQTT (results stay in the outbox for the next start).

import { DeviceConfigError } from '../../devices/errors.ts';
import { createSource } from '../../devices/cameras/factory.ts';
import type { CameraConfig } from '../../devices/cameras/config.ts';
import { createLink, type LinkFactory } from '../../devices/serial/config.ts';
import type { PlcHandshake } from '../../devices/serial/plc.ts';
import { CommandTrigger } from '../../devices/triggers/armed.ts';
import { createTrigger } from '../../devices/triggers/config.ts';
import { loadTrustedKeys } from '../artifact/keys.ts';
import type { DeviceConfig } from '../config/device-config.ts';
import { ConfigError } from '../config/errors.ts';
import { collectHealth } from '../health/monitor.ts';
import { defaultLog, type Log } from '../log.ts';
import type { Outbox } from '../mqtt/outbox.ts';
import { openOutbox } from '../mqtt/outbox-config.ts';
import { startReporter, type Reporter } from '../mqtt/reporter.ts';
import { Pipeline, type CameraInput } from '../pipeline/pipeline.ts';
import { MqttResultSink, PlcSink, RejectSink } from '../pipeline/sinks.ts';
import { ThresholdState } from '../pipeline/thresholds.ts';
import { withTimeout } from '../mqtt/connection.ts';
import { ModelHost, type Classifier, type LoadedInfo } from '../session/host.ts';
import { DeployAgent } from '../deploy/agent.ts';
import { loadInstalled } from '../deploy/boot.ts';
import { ShadowTap } from '../deploy/shadow.ts';
import { DeployStore } from '../deploy/store.ts';
import { CommandError } from '../mqtt/errors.ts';
import { commandHandlers } from './commands.ts';
import { DataLoop } from './data-loop.ts';
import { DriftMonitor } from '../drift/monitor.ts';
import { KeepError } from '../keep/errors.ts';
import { EventRelay } from './events.ts';

export interface RuntimeOptions {
  log?: Log;
  /** Wraps the model host, e.g. to slow inference down in a test. */
  classifier?: (host: ModelHost) => Classifier;
  /** Builds the serial links (PLC triggers, reject gates); default real ports. The demo's reject gate is a MockSerialLink. */
  serialLinks?: LinkFactory;
}

/** `pack`/`packs` and the artifact must agree: packs need a shared backbone, which needs a pack for every camera. */
async function checkPacks(cfg: DeviceConfig, host: ModelHost): Promise<void> {
  const issues: { field: string; message: string }[] = [];
  if (!host.shared) {
    if (cfg.pack !== undefined) issues.push({ field: 'pack', message: `${cfg.artifact} is a fused artifact; prompt packs run on a shared-backbone artifact (edgeprompt compile --form shared)` });
    for (const cam of Object.keys(cfg.packs)) issues.push({ field: `packs.${cam}`, message: `${cfg.artifact} is a fused artifact; prompt packs run on a shared-backbone artifact` });
  } else {
    for (const cam of cfg.cameras) if (host.packFor(cam.id) === null) issues.push({ field: 'pack', message: `camera ${cam.id} has no prompt pack for the shared backbone ${cfg.artifact}: set pack (every camera) or packs.${cam.id}` });
  }
  if (issues.length === 0) return;
  await host.close();
  throw new ConfigError('CONFIG_INVALID', cfg.file, 'invalid device config', issues);
}

export class Runtime {
  private stopping: Promise<void> | null = null;
  /** Resolves when every camera is finite and has ended, and every result was acknowledged (or drainMs passed). */
  readonly ended: Promise<void>;
  private readonly startedAt = Date.now();

  private constructor(
    readonly config: DeviceConfig,
    readonly host: ModelHost,
    readonly pipeline: Pipeline,
    readonly reporter: Reporter,
    readonly outbox: Outbox,
    readonly plcs: ReadonlyMap<string, PlcHandshake>,
    readonly rejects: readonly RejectSink[],
    /** Takes deployments when the config has `deploy`. */
    readonly deploy: DeployAgent | null,
    /** Keeps frames and takes labels when the config has `keep`. */
    readonly loop: DataLoop | null,
    readonly drift: DriftMonitor,
    private readonly log: Log,
  ) {
    this.ended = new Promise((resolve) => pipeline.once('ended', () => resolve()));
  }

  get uptimeMs(): number {
    return Date.now() - this.startedAt;
  }

  /** Loads and verifies the model (a failure here is fatal: nothing to run), then starts everything. */
  static async start(cfg: DeviceConfig, opts: RuntimeOptions = {}): Promise<Runtime> {
    const log = opts.log ?? defaultLog('edgeprompt.runtime');
    const startedAt = Date.now();
    const trustedKeys = await loadTrustedKeys(cfg.trustedKeys);
    const deployKeys = cfg.deploy?.trustedKeys ? await loadTrustedKeys(cfg.deploy.trustedKeys) : trustedKeys;
    const host = new ModelHost({
      profile: cfg.profile,
      trustedKeys,
      allowUnsigned: cfg.allowUnsigned,
      log,
      ...(cfg.inference.maxBatch !== undefined && { maxBatch: cfg.inference.maxBatch }),
      ...(cfg.inference.warmupRuns !== undefined && { warmupRuns: cfg.inference.warmupRuns }),
      packs: { ...(cfg.pack !== undefined && { default: cfg.pack }), cameras: cfg.packs },
    });
    // With deployments, what the deploy store installed runs instead of the configured files.
    const store = cfg.deploy ? new DeployStore(cfg.deploy.dir, undefined, log) : null;
    await store?.open();
    const first = store ? await loadInstalled(host, store, cfg.artifact, log) : await host.load(cfg.artifact);
    await checkPacks(cfg, host);
    const manifest = first.session.manifest;
    if (manifest.target !== null && manifest.target !== cfg.profile.name) {
      log.warn({ artifactTarget: manifest.target, profile: cfg.profile.name }, 'model: compiled for another device profile');
    }

    const cameras: CameraInput[] = [];
    const plcs = new Map<string, PlcHandshake>();
    const commandTriggers = new Map<string, CommandTrigger>();
    try {
      for (const [i, cam] of cfg.cameras.entries()) {
        let camCfg: CameraConfig = cam;
        if ((cam.kind === 'ffmpeg' || cam.kind === 'folder') && cam.resize !== manifest.input.resize) {
          if (cfg.resizeFromModel.has(cam.id)) camCfg = { ...cam, resize: manifest.input.resize };
          else log.warn({ camera: cam.id, camera_resize: cam.resize, model_resize: manifest.input.resize }, 'camera: resize differs from the model\'s contract');
        }
        const source = createSource(camCfg, { input: { width: manifest.input.width, height: manifest.input.height, channels: 3 }, where: `cameras[${i}]` });
        const { trigger, plc } = createTrigger(cfg.triggers[cam.id], `triggers.${cam.id}`, opts.serialLinks);
        if (plc) plcs.set(cam.id, plc);
        if (trigger instanceof CommandTrigger) commandTriggers.set(cam.id, trigger);
        cameras.push({ id: cam.id, source, trigger, ...(plc && { plc }) });
      }
    } catch (e) {
      await host.close();
      if (e instanceof DeviceConfigError) throw new ConfigError('CONFIG_INVALID', cfg.file, 'invalid device config', e.issues);
      throw e;
    }

    // The tap lets a deployment's candidate run beside the model on the same frames (shadow).
    const tap = new ShadowTap(opts.classifier ? opts.classifier(host) : host);
    const pipeline = new Pipeline({
      cameras,
      classifier: tap,
      thresholds: new ThresholdState(),
      topK: cfg.inference.topK,
      log,
      ...(cfg.inference.maxBatch !== undefined && { maxBatch: cfg.inference.maxBatch }),
    });
    let outbox: Outbox;
    let loop: DataLoop | null = null;
    try {
      outbox = await openOutbox(cfg.outbox, log);
    } catch (e) {
      await host.close();
      throw e;
    }
    try {
      if (cfg.keep) loop = await DataLoop.open(cfg.keep, log);
    } catch (e) {
      await host.close();
      await outbox.close();
      throw e;
    }
    const handlers = commandHandlers({ config: cfg, pipeline, host, commandTriggers });
    const reporter = startReporter(
      { ...cfg.mqtt, device: cfg.device, healthIntervalMs: cfg.health.intervalMs },
      {
        outbox,
        log,
        state: {
          model: first.session.ref,
          ep: first.session.ep,
          cameras: pipeline.cameraIds,
          thresholds: pipeline.thresholds.toPayload(manifest),
          paused: false,
          pausedCameras: [],
        },
        handlers: {
          ...handlers,
          // A reload in the middle of a deployment would change the model the shadow compares with
          // and the one a rollback returns to: it waits until the deployment is over.
          reload: (args, ctx) => {
            const busy = deploy?.busy;
            if (busy) throw new CommandError('DEPLOY_BUSY', `rollout ${busy.rollout} is in progress (${busy.state}); reload when it is over (edgeprompt deploy status)`);
            return handlers.reload!(args, ctx);
          },
          deploy: (args) => {
            if (!deploy) throw new CommandError('DEPLOY_DISABLED', `device ${cfg.device} does not take deployments: set deploy.dir in ${cfg.file}`);
            return deploy.handle({ document: args.document, signatures: args.signatures });
          },
          label: ({ id: _id, ...args }) => {
            if (!loop) throw new KeepError('KEEP_DISABLED', `device ${cfg.device} takes no labels: add a keep section (keep.dir) to ${cfg.file}`);
            return loop.label({ ...args, source: 'mqtt' });
          },
        },
        health: () => {
          const h = collectHealth({ pipeline, classifier: host, startedAt });
          for (const [cam, c] of Object.entries(h.cameras)) c.drift = drift.figures(cam);
          return loop ? { ...h, keep: loop.health() } : h;
        },
      },
    );
    const deploy = store
      ? new DeployAgent({
          device: cfg.device,
          store,
          host,
          tap,
          pipeline,
          reporter,
          trusted: deployKeys,
          config: cfg.deploy!,
          log,
          onSwap: () => {
            const cur = host.current;
            if (cur) reporter.setState({ model: cur.ref, ep: cur.ep, thresholds: pipeline.thresholds.toPayload(cur.manifest) });
          },
        })
      : null;
    const events = new EventRelay(reporter);
    const drift = new DriftMonitor(cfg.drift, (e) => reporter.publishEvent(e));
    pipeline.on('result', (r) => drift.observe(r));
    const keeper = loop?.attach({ device: cfg.device, reporter, pipeline, tap, plcs }) ?? null;
    events.modelLoaded(first);
    host.on('loaded', (info: LoadedInfo) => {
      events.modelLoaded(info);
      log.info({ model: info.session.ref, prompt: (info.pack?.task ?? info.session).prompt, slots: info.pack?.slots, ep: info.session.ep, keyId: info.verification.keyId, loadMs: Math.round(info.loadMs) }, info.pack ? 'model: prompt pack swapped in' : 'model: reloaded');
    });
    host.on('rejected', (err, source) => {
      events.modelRejected(err);
      log.error({ source, code: err.code, err: err.message }, 'model: reload refused; the current model keeps running');
    });
    host.on('workerCrashed', (c) => events.workerCrashed(c));
    pipeline.on('camera', (e) => events.camera(e));
    for (const [id, trig] of commandTriggers) trig.on('expired', (e) => events.triggerExpired(id, e.id));
    pipeline.on('failure', (f) => events.failure(f));

    const rejects: RejectSink[] = [];
    for (const [id, r] of Object.entries(cfg.rejects)) {
      rejects.push(new RejectSink(id, createLink(r.link, opts.serialLinks), { delayMs: r.delayMs, line: r.line, onMissedDeadline: r.onMissedDeadline }));
    }
    pipeline.addSink(new MqttResultSink(reporter, keeper ? (r, result) => keeper.accepted(r, result) : undefined));
    pipeline.addSink(new PlcSink(plcs));
    for (const r of rejects) pipeline.addSink(r);

    const rt = new Runtime(cfg, host, pipeline, reporter, outbox, plcs, rejects, deploy, loop, drift, log);
    await Promise.all([...[...plcs.values()].map((p) => p.start()), ...rejects.map((r) => r.start())]);
    await pipeline.start();
    await deploy?.start(); // a deployment a previous run left unfinished continues
    log.info(
      { device: cfg.device, model: first.session.ref, ep: first.session.ep, attempts: first.session.attempts, warmupMs: Math.round(first.session.warmupMs), cameras: pipeline.cameraIds, keyId: first.verification.keyId },
      'runtime: ready',
    );
    return rt;
  }

  /** Stops everything; results not yet acknowledged stay in the outbox. Idempotent. */
  stop(opts: { drainMs?: number } = {}): Promise<void> {
    this.stopping ??= this.shutdown(opts.drainMs ?? 0);
    return this.stopping;
  }

  private async shutdown(drainMs: number): Promise<void> {
    await this.deploy?.stop(); // what it did so far is saved; the next start continues it
    await this.pipeline.stop();
    await this.loop?.settle(); // frames being encoded reach the spool
    await Promise.all([...this.plcs.values()].map((p) => p.stop()));
    await Promise.all(this.rejects.map((r) => r.stop()));
    if (drainMs > 0) {
      await withTimeout(Promise.all([this.reporter.drained(), this.loop?.drained()]), drainMs).catch(() =>
        this.log.warn({ outboxDepth: this.outbox.size, spooled: this.loop?.spool.size }, 'runtime: stopping with results or kept frames still to send (sent on the next start)'),
      );
    }
    await this.host.close();
    await this.reporter.close();
    await this.loop?.close();
    await this.outbox.close();
  }
}
