// Fuzzing with fast-check, CI-sized: every target of test/helpers/fuzz-targets.ts for a short
// budget (a random seed each run, printed; a failure prints fast-check's shrunk input and the seed
// to replay it with EDGEPROMPT_FUZZ_SEED). `npm run bench:fuzz -- --seconds 600` runs each for longer.

import test from 'ava';
import { FUZZ_TARGETS } from './helpers/fuzz-targets.ts';
import { fuzzTarget } from './helpers/fuzz.ts';

const seed = Number(process.env.EDGEPROMPT_FUZZ_SEED ?? Date.now() % 2 ** 31);

for (const target of FUZZ_TARGETS) {
  test.serial(`${target.name}: never a crash, hang or unhandled rejection; a refusal carries a code${['mqtt-command', 'serial-line', 'transfer-block'].includes(target.name) ? '; it keeps working' : ''}`, async (t) => {
    t.timeout(120_000);
    const r = await fuzzTarget(target, { seconds: target.name === 'mqtt-command' ? 4 : 1.5, seed });
    t.log(`seed ${seed}: ${r.runs} runs, ${r.accepted} accepted, ${r.refused} refused ${JSON.stringify(r.codes)}`);
    t.is(r.failure, null, r.failure ?? '');
    t.is(r.unhandledRejections, 0);
    t.is(r.unhealthy, null);
    t.true(r.runs > 0);
  });
}
