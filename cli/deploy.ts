/**
 * `edgeprompt deploy <file> --devices … --policy rollout.yaml --sign keys/release.key --url …`: a
 * staged rollout to line cameras (fleet/deploy/controller.ts), and `edgeprompt deploy status`: the
 * devices' deploy states as a table. Exit codes: 0 rollout completed, 3 rollout aborted by its
 * policy, 2 bad input (one line naming the file, field or value). Also runnable on its own
 * (`node --import tsx cli/deploy.ts deploy …`), which starts faster than the whole CLI.
 */
import { Command, InvalidArgumentError } from 'commander';
import { exitSoon, invokedDirectly, runProgram } from '../runtime/cli-entry.ts';
import { readPrivateKey } from '../runtime/artifact/keys.ts';
import { runRollout } from '../fleet/deploy/controller.ts';
import { loadPolicy } from '../fleet/deploy/policy.ts';
import { fetchStatus, formatTable, statusRows } from '../fleet/deploy/status.ts';

interface BrokerFlags {
  url: string;
  username?: string;
  password?: string;
  mqttVersion?: 4 | 5;
}

const connection = (f: BrokerFlags) => ({
  url: f.url,
  ...(f.username !== undefined && { username: f.username }),
  ...(f.password !== undefined && { password: f.password }),
  ...(f.mqttVersion !== undefined && { protocolVersion: f.mqttVersion }),
});

function brokerOptions(c: Command, required = true): Command {
  return c
    .exitOverride()
    [required ? 'requiredOption' : 'option']('--url <url>', `MQTT broker, e.g. mqtt://127.0.0.1:1883${required ? '' : ' (required)'}`)
    .option('--username <name>')
    .option('--password <secret>')
    .option('--mqtt-version <4|5>', 'protocol version (default 5)', (v) => {
      if (v !== '4' && v !== '5') throw new InvalidArgumentError('--mqtt-version takes 4 or 5');
      return Number(v) as 4 | 5;
    });
}

export function deployCommand(): Command {
  const cmd = brokerOptions(
    new Command('deploy')
      // Checked in the action, not as commander's required options: those would also be demanded
      // of `deploy status` (commander checks the parent's mandatory options for a subcommand).
      .enablePositionalOptions()
      .description('roll a signed artifact (.epk) or prompt pack (.epp) out to devices: canary, then stages; devices shadow, promote, watch and roll back by themselves')
      .argument('<file>', 'the .epk or .epp to deploy (compiled with a release number)')
      .option('--devices <ids>', 'device ids and globs, comma-separated: press-1,press-2 or "line1-*" (required)')
      .option('--policy <file>', 'rollout policy (YAML): canary, stages, abortAt, transfer, shadow, watch; docs/deploy.md (required)')
      .option('--sign <key>', 'release key (ed25519 PEM) the devices trust: signs the deployment document (required)')
      .option('--rollout-id <id>', 'rollout id (default: derived from file, devices and policy, so rerunning the command continues the rollout)')
      .option('--json', 'print the result as JSON'),
    false,
  ).action(async (file: string, f: Partial<BrokerFlags> & { devices?: string; policy?: string; sign?: string; rolloutId?: string; json?: boolean }) => {
    for (const [flag, v] of [['--url <url>', f.url], ['--devices <ids>', f.devices], ['--policy <file>', f.policy], ['--sign <key>', f.sign]] as const) {
      if (v === undefined) cmd.error(`error: required option '${flag}' not specified`, { exitCode: 2, code: 'commander.missingMandatoryOptionValue' });
    }
    const policy = await loadPolicy(f.policy!);
    const key = await readPrivateKey(f.sign!);
    const r = await runRollout({
      connection: connection(f as BrokerFlags),
      file,
      devices: f.devices!,
      policy,
      signKeys: [key],
      ...(f.rolloutId !== undefined && { rollout: f.rolloutId }),
      ...(f.json && { print: (l: string) => process.stderr.write(`${l}\n`) }),
    });
    if (f.json) console.log(JSON.stringify(r));
    if (r.outcome !== 'completed') process.exitCode = 3;
  });
  cmd.addCommand(
    brokerOptions(
      new Command('status')
        .description("every device's deployment: release before → after, state, transfer, shadow figures, reason (from the retained <device>/deploy topics)")
        .option('--devices <glob>', 'only devices matching (e.g. "line1-*")')
        .option('--wait <ms>', 'how long to collect retained states', (v) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--wait takes a non-negative integer');
          return n;
        }, 1000)
        .option('--json', 'JSON: one object per device'),
    ).action(async (f: BrokerFlags & { devices?: string; wait: number; json?: boolean }) => {
      let views = await fetchStatus(connection(f), f.wait);
      if (f.devices !== undefined) {
        const re = new RegExp(`^${f.devices.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`);
        views = views.filter((v) => re.test(v.device));
      }
      if (f.json) console.log(JSON.stringify(views));
      else console.log(views.length === 0 ? 'no device has published a deploy state or status yet' : formatTable(statusRows(views)));
    }),
  );
  return cmd;
}

/** Coded errors become one line and exit code 2; anything else a stack and 1. */
export function main(argv: readonly string[] = process.argv): Promise<number> {
  const program = new Command('edgeprompt').showHelpAfterError().enablePositionalOptions();
  program.addCommand(deployCommand());
  return runProgram(program, argv);
}

if (invokedDirectly(import.meta.url)) exitSoon(await main());
