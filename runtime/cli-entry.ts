// How a command-line entry reports errors and exits: shared by the runtime's own command line
// (also the esbuild bundle's entry), the standalone `deploy` command and the `edgeprompt` CLI.
// Every coded error (each carries an UPPER_SNAKE `code`) is one line without a stack trace.

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { type Command, CommanderError } from 'commander';

export function hasCode(e: unknown): e is Error & { code: string } {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code);
}

/** Exit code and text for an error: a coded error is bad input (2), anything else a bug with its stack (1). */
export function reportError(e: unknown): { exitCode: number; text: string } {
  if (hasCode(e)) return { exitCode: 2, text: `edgeprompt: error [${e.code}]: ${e.message}` };
  return { exitCode: 1, text: e instanceof Error ? (e.stack ?? e.message) : inspect(e) };
}

/**
 * Parses `argv` with `program` and returns the exit code (a usage error from commander is 2). A
 * reader that closes the output early (`edgeprompt inspect x.epk | head`) ends the command quietly
 * instead of crashing it with EPIPE.
 */
export async function runProgram(program: Command, argv: readonly string[], report = reportError): Promise<number> {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  try {
    await program.exitOverride().parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    const r = report(e);
    process.stderr.write(`${r.text}\n`);
    return r.exitCode;
  }
}

/** True when the module at `moduleUrl` is the script node was started with. */
export function invokedDirectly(moduleUrl: string): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

/** Sets the exit code; everything is closed by now, so a handle a native module keeps open must not hold the process. */
export function exitSoon(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2000).unref();
}
