/** Compile configs: every shipped example validates; bad files name the file, field and reason. */
import test from 'ava';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { methodByName } from '../compiler/methods/registry.ts';
import { ConfigError } from '../runtime/config/errors.ts';
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

const bad: [string, string, RegExp, string?][] = [
  ['a wrong type', base.replace('perClass: 4', 'perClass: many'), /bad-0\.yaml: invalid compile config: data\.perClass: Invalid input: expected number, received string \(got "many"\)/],
  ['an unknown field', `${base}epochz: 3\n`, /bad-1\.yaml: invalid compile config: epochz: unknown field; known: name, backbone,/],
  ['an unknown data kind', base.replace('kind: parts', 'kind: cifar'), /bad-2\.yaml: invalid compile config: data\.kind: must be one of fashion-mnist \| parts \| image-folder \(got "cifar"\)/],
  ['a missing section', base.replace(/output:.*\n/, ''), /bad-3\.yaml: invalid compile config: output: Invalid input: expected object, received undefined/],
  ['broken YAML', base.replace('method: {', 'method: {{'), /bad-4\.yaml: is not valid YAML: .*line \d+, column \d+/, 'CONFIG_YAML'],
  ['a bad value range', base.replace('data: { kind: parts, perClass: 4 }', 'data: { kind: parts, valFraction: 1.5 }'), /bad-5\.yaml: invalid compile config: data\.valFraction: Too big.* \(got 1\.5\)/],
  ['an unknown finish', base.replace('data: { kind: parts, perClass: 4 }', 'data: { kind: parts, material: gold }'), /bad-6\.yaml: invalid compile config: data\.material: Invalid option: expected one of "steel"\|"aluminium".* \(got "gold"\)/],
  ['a misspelt field', base.replace('output:', 'outptu:'), /outptu: unknown field; did you mean "output"\?/],
  ['a misspelt method option', base.replace('prompts: 2', 'promts: 2'), /bad-8\.yaml: invalid compile config: method\.options\.promts: unknown field; did you mean "prompts"\?/],
  ['a bad method option value', base.replace('prompts: 2', 'prompts: -3'), /bad-9\.yaml: invalid compile config: method\.options\.prompts: Too small: expected number to be >0 \(got -3\)$/],
  ['a misspelt method', base.replace('vpt-deep', 'vpt-dep'), /method\.name: unknown method "vpt-dep"; did you mean "vpt-deep"\?/],
  ['a misspelt arch', base.replace('vit_fixture_patch8_32', 'vit_fixture_patch8_23'), /backbone\.arch: unknown arch "vit_fixture_patch8_23"; did you mean "vit_fixture_patch8_32"\?/],
  ['a misspelt choice', base.replace('output:', 'engine: onnx\noutput:'), /engine: Invalid option: expected one of "tfjs"\|"ort"\|"auto" \(got "onnx"\)/],
];
bad.forEach(([what, text, re, code], i) => {
  test(`config error for ${what} names the file and field`, (t) => {
    const f = write(`bad-${i}.yaml`, text);
    const e = t.throws(() => loadCompileConfig(f), { instanceOf: ConfigError });
    t.is<string, string>(e!.code, code ?? 'CONFIG_INVALID');
    t.regex(e!.message, re);
  });
});

test('every problem is listed at once, schema and method options together, each with its value', (t) => {
  const f = write('many.yaml', base.replace('perClass: 4', 'perClass: -1').replace('prompts: 2', 'prompts: 0, dropuot: 0.1').replace('output:', 'seed: x\noutput:'));
  const e = t.throws(() => loadCompileConfig(f), { instanceOf: ConfigError });
  t.deepEqual(e!.issues.map((i) => i.field).sort(), ['data.perClass', 'method.options.dropuot', 'method.options.prompts', 'seed']);
  t.regex(e!.message, /many\.yaml: invalid compile config \(4 problems\):\n {2}/);
  t.regex(e!.message, /\n {2}data\.perClass: .*\(got -1\)/);
  t.regex(e!.message, /\n {2}method\.options\.dropuot: unknown field; did you mean "dropout"\?/);
  t.regex(e!.message, /\n {2}seed: .*\(got "x"\)/);
});

test('a missing config file and a malformed --set are reported; a bad --set value is marked as such', (t) => {
  const missing = t.throws(() => loadCompileConfig(join(dir, 'nope.yaml')), { instanceOf: ConfigError });
  t.is(missing!.code, 'CONFIG_UNREADABLE');
  t.regex(missing!.message, /nope\.yaml: cannot read \(ENOENT\); check the path/);
  t.throws(() => loadCompileConfig(write('ok2.yaml', base), ['recipe.epochs']), { code: 'CONFIG_INVALID', message: /--set: malformed override: recipe\.epochs: expected key\.path=value/ } as never);
  t.throws(() => loadCompileConfig(write('ok3.yaml', base), ['method.options.prompts=-3']), { message: /method\.options\.prompts: Too small.*\(got -3\) \(from --set\)/ });
});

test('method options are validated with the field named', (t) => {
  t.throws(() => methodByName('vpt-deep').resolveOptions({ prompts: -1 }), { message: /prompts/ });
  t.throws(() => methodByName('vpt-deep').resolveOptions({ promts: 3 }), { message: /promts/ });
  t.throws(() => methodByName('vpt-xl'), { message: /unknown method "vpt-xl"; known: linear, full, vpt-shallow, vpt-deep/ });
});
