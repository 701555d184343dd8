// A real browser for the dashboard tests: Debian's chromium driven by playwright-core (which
// cannot download its own browser here). Missing chromium fails the test with the fix; it is
// never skipped.

import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`chromium not found at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does), or set CHROMIUM_PATH`);
  }
  // --no-sandbox: chromium refuses to run its sandbox as root (CI containers).
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}
