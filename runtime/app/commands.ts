// The device's MQTT command handlers (the reporter dispatches them one at a time and answers
// `ping` itself). Each applies all or nothing: a refused reload keeps the running model, an
// unknown camera changes nothing. Errors carry codes (CAMERA_UNKNOWN, NO_FRAME, the artifact's
// or session's own code for a refused reload).

import { isAbsolute, resolve } from 'node:path';
import type { CommandTrigger } from '../../devices/triggers/armed.ts';
import { TriggerError } from '../../devices/errors.ts';
import type { DeviceConfig } from '../config/device-config.ts';
import type { CommandHandlers } from '../mqtt/commands.ts';
import { CommandError } from '../mqtt/errors.ts';
import { encodePng } from '../pipeline/png.ts';
import type { Pipeline } from '../pipeline/pipeline.ts';
import type { ModelHost } from '../session/host.ts';

export interface CommandDeps {
  config: Pick<DeviceConfig, 'artifact' | 'dir'>;
  pipeline: Pipeline;
  host: ModelHost;
  /** Cameras with an `mqtt` trigger. */
  commandTriggers: ReadonlyMap<string, CommandTrigger>;
}

export function commandHandlers(d: CommandDeps): CommandHandlers {
  const { pipeline, host } = d;
  const camera = (id: string | undefined): void => {
    if (id !== undefined && !pipeline.hasCamera(id)) {
      throw new CommandError('CAMERA_UNKNOWN', `no camera ${JSON.stringify(id)} on this device (cameras: ${pipeline.cameraIds.join(', ')})`);
    }
  };
  const pausedReply = () => {
    const pausedCameras = pipeline.pausedCameras;
    return { paused: pausedCameras.length === pipeline.cameraIds.length, pausedCameras };
  };
  let triggerCount = 0;

  return {
    reload: async (args, ctx) => {
      // A relative path is relative to the config file, like every path in it.
      const src = args.artifact === undefined ? d.config.artifact : /^[a-z]+:\/\//i.test(args.artifact) || isAbsolute(args.artifact) ? args.artifact : resolve(d.config.dir, args.artifact);
      const { session } = await host.load(src); // throws with the artifact/session code; the old model keeps running
      ctx.setState({ model: session.ref, ep: session.ep, thresholds: pipeline.thresholds.toPayload(session.manifest) });
      return { model: session.ref, ep: session.ep };
    },
    'set-threshold': (args, ctx) => {
      camera(args.camera);
      pipeline.thresholds.set(args.threshold, args.camera);
      const thresholds = pipeline.thresholds.toPayload(host.current?.manifest ?? null);
      ctx.setState({ thresholds });
      return { thresholds };
    },
    snapshot: (args) => {
      camera(args.camera);
      const f = pipeline.lastFrame(args.camera);
      if (f === null) throw new CommandError('NO_FRAME', `camera ${args.camera} has not delivered a frame yet`);
      // Always PNG (node:zlib): the runtime bundle carries no JPEG encoder; contentType says so.
      const png = encodePng(f.data, f.width, f.height, f.channels);
      return { camera: args.camera, frameId: String(f.frameId), captureTs: f.captureTs, contentType: 'image/png', dataBase64: png.toString('base64') };
    },
    pause: (args, ctx) => {
      camera(args.camera);
      pipeline.setPaused(true, args.camera);
      const r = pausedReply();
      ctx.setState(r);
      return r;
    },
    resume: (args, ctx) => {
      camera(args.camera);
      pipeline.setPaused(false, args.camera);
      const r = pausedReply();
      ctx.setState(r);
      return r;
    },
    trigger: (args) => {
      camera(args.camera);
      const trig = d.commandTriggers.get(args.camera);
      if (!trig) throw new CommandError('NOT_MQTT_TRIGGERED', `camera ${args.camera} is not triggered by MQTT; set triggers.${args.camera}.kind: mqtt in the device config`);
      const triggerId = args.triggerId ?? `m${Date.now().toString(36)}-${++triggerCount}`;
      try {
        trig.fire(triggerId);
      } catch (e) {
        if (e instanceof TriggerError) throw new CommandError(e.code, e.message);
        throw e;
      }
      return { camera: args.camera, triggerId };
    },
  };
}
