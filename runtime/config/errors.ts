// Config errors: every message names the file and the field path, with the bad value and what is allowed.
// One class for every YAML/JSON config EdgePrompt reads: the device config, device profiles and the
// compile config (compiler/config/load.ts throws this one too).

import { issueReport } from '../../devices/config-issues.ts';

export type ConfigErrorCode =
  | 'CONFIG_UNREADABLE' // the file cannot be read
  | 'CONFIG_YAML' // not valid YAML (line and column in the message)
  | 'CONFIG_INVALID' // fields missing or wrong: `issues` lists each
  | 'PROFILE_NOT_FOUND' // no devices/profiles/<name>.yaml in the searched folders
  | 'PROFILE_INVALID';

export interface ConfigIssue {
  field: string;
  message: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly code: ConfigErrorCode,
    readonly file: string,
    message: string,
    readonly issues: readonly ConfigIssue[] = [],
    options?: { cause?: unknown },
  ) {
    super(issues.length > 0 ? issueReport(`${file}: ${message}`, issues) : `${file}: ${message}`, options);
  }
  /** The first offending field, for callers that highlight one. */
  get field(): string | undefined {
    return this.issues[0]?.field;
  }
}
