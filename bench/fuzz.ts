// Fuzzing with fast-check for N seconds per target (test/helpers/fuzz-targets.ts has the targets,
// test/helpers/fuzz.ts the property; test/fuzz.test.ts runs a short budget in CI).
//   npm run bench:fuzz -- --seconds 600 [--only manifest,tar] [--seed 1]
// Writes the "fuzz" section of docs/bench/reliability.md. Exits 1 when a target failed.
// With --only, the rows of the other targets are kept from the section already there when it was
// written at the same --seconds (one target can be run again without 100 minutes for all ten); the
// command line then names both runs.

import { parseArgs } from 'node:util';
import { FUZZ_TARGETS } from '../test/helpers/fuzz-targets.ts';
import { fuzzTarget, type FuzzReport } from '../test/helpers/fuzz.ts';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadNow, repo, writeReportSection } from './lib.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '600' }, only: { type: 'string' }, seed: { type: 'string' } } });
const seconds = Number(values.seconds);
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
const only = values.only?.split(',');
const loadBefore = loadNow();
const reports: { r: FuzzReport; what: string }[] = [];
for (const t of FUZZ_TARGETS) {
  if (only && !only.includes(t.name)) continue;
  console.log(`— ${t.name}: ${seconds} s`);
  const r = await fuzzTarget(t, { seconds, seed });
  console.log(`  ${r.runs} runs, ${r.refused} refused; ${r.failure ? `FAILED:\n${r.failure}` : 'ok'}${r.unhealthy ? `; unhealthy: ${r.unhealthy}` : ''}`);
  reports.push({ r, what: t.what });
}
/** The section's rows by target and its command, when it was written at this budget. */
function earlier(): { rows: Map<string, string>; command: string } | null {
  const file = join(repo, 'docs/bench/reliability.md');
  if (!existsSync(file)) return null;
  const text = readFileSync(file, 'utf8');
  const section = text.slice(text.indexOf('<!-- section:fuzz -->'), text.indexOf('<!-- /section:fuzz -->'));
  if (!section.includes(`Each target ran for ${seconds} s`)) return null;
  // The whole command line, runs joined by "`; then `" (writeReportSection adds the outer backticks).
  const command = /- command: `(.+)`\n/.exec(section)?.[1] ?? '';
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const name = /^\| ([a-z-]+) \|/.exec(line)?.[1];
    if (name && FUZZ_TARGETS.some((t) => t.name === name)) rows.set(name, line);
  }
  return { rows, command };
}
const kept = only ? earlier() : null;
const codes = (c: Record<string, number>) => Object.entries(c).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || '—';
const body = `
Each target ran for ${seconds} s (fast-check, seed ${seed}; shrink runs included in the counts). The property for every input: the parser returns (accepted) or throws an error carrying an UPPER_SNAKE \`code\` (refused); anything else is a crash, a run over 15 s a hang, an unhandled rejection a failure; afterwards the live targets must still serve. Inputs are mostly a valid document or file with a few edits (a value replaced by any JSON, a key deleted or added; bytes changed, cut or inserted), the rest pure noise (fast-check \`jsonValue\`, \`uint8Array\`, \`string\`).

| target | what is fed | runs | accepted | refused, by code | crashes / hangs | unhandled rejections | still serving |
|---|---|---|---|---|---|---|---|
${FUZZ_TARGETS.map((t) => {
  const mine = reports.find(({ r }) => r.target === t.name);
  if (!mine) return kept?.rows.get(t.name);
  const { r, what } = mine;
  return `| ${r.target} | ${what} | ${r.runs} | ${r.accepted} | ${codes(r.codes)} | ${r.failure ? `**1**: ${r.failure.split('\n')[0]}` : '0'} | ${r.unhandledRejections} | ${r.unhealthy ?? 'yes'} |`;
})
  .filter((row) => row !== undefined)
  .join('\n')}

"accepted" for \`artifact\`, \`prompt-pack\` and \`deploy-document\` means a changed file verified with exactly the signed bytes it started with (a change in tar header fields, or in the envelope around an unchanged document, that no signature covers); any change to what was signed must be refused, and was. Found by these targets and fixed: MQTT \`reload\` of a path to a device file (\`/dev/zero\`) read it until memory ran out (now ARTIFACT_UNREADABLE: not a regular file); a reload from an unreachable URL was HANDLER_FAILED "fetch failed" (now ARTIFACT_UNREADABLE naming the cause); YAML warnings in a device config (an unknown tag or directive) went to stderr as process warnings and the value was used as a string (now CONFIG_YAML naming the line). In the harness: the \`transfer-block\` target gave its transfer the product's 600-s stall bound, so a 600-s run ended with the transfer dropped as stalled (TRANSFER_STALLED, as designed: the fuzzed frames are almost never a valid new block) and the target read as no longer serving; it now runs without a stall bound.
`;
const file = writeReportSection('reliability', 'Reliability: crash injection, faults, flapping cameras, fuzzing, soak', { id: 'fuzz', title: 'Fuzzing', command: `${kept && [...kept.rows.keys()].some((k) => !reports.some(({ r }) => r.target === k)) ? `${kept.command}\`; then \`` : ''}npm run bench:fuzz -- --seconds ${seconds} --seed ${seed}${only ? ` --only ${only.join(',')}` : ''}`, load: `${loadBefore} → ${loadNow()}` }, body);
console.log(`wrote ${file}`);
process.exit(reports.every(({ r }) => !r.failure && !r.unhealthy && r.unhandledRejections === 0) ? 0 : 1);
