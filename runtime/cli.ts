// The runtime's command line: `run -c configs/device.yaml` and `watch --url …`. The `edgeprompt`
// CLI adds these commands (runtimeCommands()); the esbuild bundle (dist/edgeprompt-runtime.mjs)
// uses this file as its entry, so it is also runnable on its own.

import { Command, InvalidArgumentError } from 'commander';
import { exitSoon, invokedDirectly, runProgram } from './cli-entry.ts';
import { Runtime } from './app/runtime.ts';
import { loadDeviceConfig } from './config/device-config.ts';
import { defaultLog } from './log.ts';
import { VERSION } from './version.ts';
import { startWatch } from './watch.ts';

const int = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} takes a non-negative integer, got "${v}"`);
  return n;
};

export function runCommand(): Command {
  return new Command('run')
    .description('run the device runtime: cameras → model → MQTT (and serial PLC) from a device config')
    .requiredOption('-c, --config <file>', 'device config (YAML), e.g. configs/device.yaml')
    .option('--drain-timeout <ms>', 'on exit, wait this long for the broker to acknowledge stored results', int('--drain-timeout'), 5000)
    .action(async (opts: { config: string; drainTimeout: number }) => {
      const log = defaultLog('edgeprompt.runtime');
      const cfg = loadDeviceConfig(opts.config);
      const rt = await Runtime.start(cfg, { log });
      // Finite cameras (a video file, a folder) end by themselves; live ones run until a signal.
      const signalled = new Promise<string>((resolve) => {
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
      });
      const why = await Promise.race([rt.ended.then(() => 'cameras ended'), signalled]);
      log.info({ why }, 'runtime: stopping');
      await rt.stop({ drainMs: opts.drainTimeout });
      // What each camera did, for the operator (and for a test that must tell a dropped frame from a lost result).
      const cameras = Object.fromEntries(Object.entries(rt.pipeline.stats()).map(([id, c]) => [id, { framesIn: c.framesIn, processed: c.processed, dropped: c.dropped, failures: c.failures }]));
      log.info({ cameras, outboxDepth: rt.outbox.size }, 'runtime: stopped');
    });
}

function watchCommand(): Command {
  return new Command('watch')
    .description('print live results and per-device health from an MQTT broker')
    .requiredOption('--url <url>', 'broker, e.g. mqtt://127.0.0.1:1883')
    .option('--device <id>', 'only this device')
    .option('--camera <id>', 'only this camera')
    .option('--client-id <id>', 'persistent session: results sent while watch was away arrive when it returns')
    .option('--mqtt-version <4|5>', 'protocol version (aedes speaks only 4)', (v) => {
      if (v !== '4' && v !== '5') throw new InvalidArgumentError('--mqtt-version takes 4 or 5');
      return Number(v) as 4 | 5;
    })
    .option('--username <name>')
    .option('--password <secret>')
    .option('--json', 'JSON lines (results, health, status) instead of the human view')
    .option('--quiet', 'no per-result lines, the health table only')
    .option('--table-every <ms>', 'health table at most this often (0 = never)', int('--table-every'), 5000)
    .option('--count <n>', 'exit after n results', int('--count'))
    .action(async (o: { url: string; device?: string; camera?: string; clientId?: string; mqttVersion?: 4 | 5; username?: string; password?: string; json?: boolean; quiet?: boolean; tableEvery: number; count?: number }) => {
      const w = startWatch({
        url: o.url,
        tableEveryMs: o.tableEvery,
        ...(o.device !== undefined && { device: o.device }),
        ...(o.camera !== undefined && { camera: o.camera }),
        ...(o.clientId !== undefined && { clientId: o.clientId }),
        ...(o.mqttVersion !== undefined && { protocolVersion: o.mqttVersion }),
        ...(o.username !== undefined && { username: o.username }),
        ...(o.password !== undefined && { password: o.password }),
        ...(o.json && { json: true }),
        ...(o.quiet && { quiet: true }),
        ...(o.count !== undefined && { count: o.count }),
      });
      for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => void w.close());
      await w.done;
      await w.close();
    });
}

/** The runtime's commands, for the `edgeprompt` CLI to add. */
export function runtimeCommands(): Command[] {
  return [runCommand(), watchCommand()];
}

export function runtimeProgram(): Command {
  const program = new Command('edgeprompt-runtime')
    .description('EdgePrompt device runtime: signed ONNX artifacts on line cameras, results over MQTT')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  for (const c of runtimeCommands()) program.addCommand(c);
  return program;
}

/** Known errors (they all carry a code) become one line and exit code 2; anything else a stack and 1. */
export function main(argv: readonly string[] = process.argv): Promise<number> {
  return runProgram(runtimeProgram(), argv);
}

if (invokedDirectly(import.meta.url)) exitSoon(await main());
