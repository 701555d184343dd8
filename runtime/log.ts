// The logging surface of the runtime and the CLI. pino's Logger satisfies it; tests pass a recorder.

import { destination, pino } from 'pino';

export interface Log {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** pino on stderr (stdout may carry a CLI's table), level from EDGEPROMPT_LOG_LEVEL (default info). */
export function defaultLog(name: string): Log {
  return pino({ name, level: process.env.EDGEPROMPT_LOG_LEVEL ?? 'info' }, destination(2));
}
