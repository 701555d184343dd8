/** Compile configs: every shipped example validates; bad files name the file, field and reason. */
import test from 'ava';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { methodByName } from '../compiler/methods/registry.ts';
import { repoPath } from './helpers/fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'ep-cfg-'));
const write = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};
const base = `name: t
backbone: { arch: vit_fixture_patch8_32, weights: w.safetensors }
data: { kind: parts, perClass: 4 }
method: { name: vpt-deep, options: { prompts: 2 } }
output: { dir: out }
`;

const compileConfigs = readdirSync(repoPath('configs')).filter((f) => f.endsWith('.yaml') && !f.startsWith('device'));
for (const f of compileConfigs) {
  test(`example config ${f} validates, names a known method, and its options survive resolution`, (t) => {
    const c = loadCompileConfig(repoPath(`configs/${f}`));
    const m = methodByName(c.method.name);
    t.is(m.name, c.method.name);
    const resolved = m.resolveOptions(c.method.options) as Record<string, unknown>;
    // Every option the file sets reaches the method unchanged (defaults fill in only the rest),
    // and resolving is idempotent: the resolved options are themselves valid options.
    for (const [k, v] of Object.entries(c.method.options)) t.deepEqual(resolved[k], v, `${f}: method.options.${k}`);
    t.deepEqual(m.resolveOptions(resolved), resolved);
  });
}

test('defaults are filled in and --set overrides fields with typed values', (t) => {
  const c = loadCompileConfig(write('ok.yaml', base), ['recipe.epochs=3', 'recipe.optimizer.lr=0.5', 'data.perClass=7']);
  t.is(c.recipe.epochs, 3);
  t.is(c.recipe.optimizer.lr, 0.5);
  t.is(c.engine, 'auto');
  t.deepEqual(c.data, { kind: 'parts', perClass: 7, size: 32, seed: 0, part: 'plate', material: 'steel', valFraction: 0.25 });
});

const bad: [string, string, RegExp][] = [
  ['a wrong type', base.replace('perClass: 4', 'perClass: many'), /bad-0\.yaml: data\.perClass: Invalid input: expected number, received string/],
  ['an unknown field', `${base}epochz: 3\n`, /bad-1\.yaml: \(top level\): unknown field\(s\) "epochz"/],
  ['an unknown data kind', base.replace('kind: parts', 'kind: cifar'), /bad-2\.yaml: data\.kind: Invalid discriminator value\. Expected 'fashion-mnist' \| 'parts' \| 'image-folder'/],
  ['a missing section', base.replace(/output:.*\n/, ''), /bad-3\.yaml: output: Invalid input: expected object, received undefined/],
  ['broken YAML', base.replace('method: {', 'method: {{'), /bad-4\.yaml: line \d+, column \d+: not valid YAML/],
  ['a bad value range', base.replace('data: { kind: parts, perClass: 4 }', 'data: { kind: parts, valFraction: 1.5 }'), /bad-5\.yaml: data\.valFraction: Too big/],
  ['an unknown finish', base.replace('data: { kind: parts, perClass: 4 }', 'data: { kind: parts, material: gold }'), /bad-6\.yaml: data\.material: Invalid option: expected one of "steel"\|"aluminium"/],
];
bad.forEach(([what, text, re], i) => {
  test(`config error for ${what} names the file and field`, (t) => {
    const f = write(`bad-${i}.yaml`, text);
    t.throws(() => loadCompileConfig(f), { code: 'BAD_ARGUMENT', message: re } as never);
  });
});

test('a missing config file and a malformed --set are reported', (t) => {
  t.throws(() => loadCompileConfig(join(dir, 'nope.yaml')), { code: 'FILE_NOT_FOUND', message: /nope\.yaml: no such config file/ } as never);
  t.throws(() => loadCompileConfig(write('ok2.yaml', base), ['recipe.epochs']), { message: /--set: recipe\.epochs: expected key\.path=value/ });
});

test('method options are validated with the field named', (t) => {
  t.throws(() => methodByName('vpt-deep').resolveOptions({ prompts: -1 }), { message: /prompts/ });
  t.throws(() => methodByName('vpt-deep').resolveOptions({ promts: 3 }), { message: /promts/ });
  t.throws(() => methodByName('vpt-xl'), { message: /unknown method "vpt-xl"; known: linear, full, vpt-shallow, vpt-deep/ });
});
