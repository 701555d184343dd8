// Runs the fuzz targets (fuzz-targets.ts) with fast-check. The property, for every input: the run
// returns (accepted), or throws an error carrying an UPPER_SNAKE `code` (refused); anything else
// (a TypeError, a RangeError, an error without a code) is a crash; a run over `timeoutMs` is a hang;
// an unhandled rejection while the target runs is a failure too. After the runs, a live target must
// still work (`healthy`). A failure reports fast-check's shrunk counterexample and its seed.

import fc from 'fast-check';
import type { FuzzTarget } from './fuzz-targets.ts';

export interface FuzzReport {
  target: string;
  runs: number;
  accepted: number;
  refused: number;
  /** Refusal codes seen, with counts. */
  codes: Record<string, number>;
  unhandledRejections: number;
  /** fast-check's report of the first failing input (shrunk), or null. */
  failure: string | null;
  /** After the runs: null when the target still works. */
  unhealthy: string | null;
  seconds: number;
  seed: number;
}

const CODE = /^[A-Z][A-Z0-9_]*$/;

/** One target for `seconds` (as many runs as fit) or for `runs` runs, whichever the caller gives. */
export async function fuzzTarget(t: FuzzTarget, o: { seconds?: number; runs?: number; seed?: number; timeoutMs?: number }): Promise<FuzzReport> {
  const seed = o.seed ?? Date.now() % 2 ** 31;
  const report: FuzzReport = { target: t.name, runs: 0, accepted: 0, refused: 0, codes: {}, unhandledRejections: 0, failure: null, unhealthy: null, seconds: 0, seed };
  const unhandled = () => void report.unhandledRejections++;
  process.on('unhandledRejection', unhandled);
  const t0 = performance.now();
  const session = await t.setup();
  try {
    const prop = fc.asyncProperty(session.input, async (x) => {
      report.runs++;
      try {
        await session.run(x);
        report.accepted++;
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (typeof code !== 'string' || !CODE.test(code)) throw e; // a crash, not a refusal
        report.refused++;
        report.codes[code] = (report.codes[code] ?? 0) + 1;
      }
    });
    const details = await fc.check(prop, {
      seed,
      timeout: o.timeoutMs ?? 15_000,
      ...(o.seconds !== undefined ? { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: o.seconds * 1000, markInterruptAsFailure: false } : { numRuns: o.runs ?? 100 }),
    });
    if (details.failed) report.failure = fc.defaultReportMessage(details) ?? 'failed';
    await new Promise((r) => setImmediate(r)); // let a late rejection surface while the listener is on
    report.unhealthy = (await session.healthy?.()) ?? null;
  } finally {
    await session.close?.();
    process.off('unhandledRejection', unhandled);
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}
