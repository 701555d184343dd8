// The layering rules of docs/architecture.md, checked on every .ts file of the tree: no import
// circle anywhere (a circle of types counts: keep types in their own file, implementations beside
// them), and no import running back up the layers (cli/bench/tools → compiler → runtime → devices;
// fleet beside compiler, reading only runtime's contracts). A failure names the cycle or the import.

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportedNames, findCycles, importGraph, parseImports, stripComments, tsFiles, type ImportEdge } from './helpers/import-graph.ts';

const root = join(import.meta.dirname, '..');
const folders = ['cli', 'compiler', 'runtime', 'devices', 'fleet', 'test', 'bench', 'tools'].filter((f) => existsSync(join(root, f)));
const graph = importGraph(root, tsFiles(root, folders));

test('the parser sees every form of import the tree uses, and which carry types only', (t) => {
  const imp = 'import'; // spelled apart so this file's own import graph stays clean
  const src = [
    "import a from './a.ts';",
    "import type { B } from './b.ts';",
    "import {\n  type C,\n  type D,\n} from './c.ts';",
    "import { type E, f } from './e.ts';",
    "export { g } from './g.ts';",
    "export type { H } from './h.ts';",
    "import './side.ts';",
    `const m = await ${imp}('./dyn.ts');`,
    `let x: typeof ${imp}('./typeof.ts');`,
    "// import z from './commented.ts';",
    "/* import y from './block.ts'; */",
    "const url = 'mqtt://host'; import * as ns from 'pkg';",
  ].join('\n');
  t.deepEqual(parseImports(src), [
    { spec: './a.ts', typeOnly: false },
    { spec: './b.ts', typeOnly: true },
    { spec: './c.ts', typeOnly: true },
    { spec: './e.ts', typeOnly: false },
    { spec: './g.ts', typeOnly: false },
    { spec: './h.ts', typeOnly: true },
    { spec: 'pkg', typeOnly: false },
    { spec: './side.ts', typeOnly: false },
    { spec: './dyn.ts', typeOnly: false },
    { spec: './typeof.ts', typeOnly: true },
  ]);
});

test('a cycle is found and named, type-only edges included; a diamond is not a cycle', (t) => {
  const e = (to: string, typeOnly = false): ImportEdge => ({ to, typeOnly, external: false });
  const g = new Map<string, ImportEdge[]>([
    ['a.ts', [e('b.ts'), e('d.ts')]],
    ['b.ts', [e('c.ts')]],
    ['c.ts', [e('a.ts', true)]],
    ['d.ts', [e('e.ts')]],
    ['e.ts', []],
    ['f.ts', [e('d.ts'), e('e.ts')]],
  ]);
  t.deepEqual(findCycles(g), [['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  g.set('c.ts', []);
  t.deepEqual(findCycles(g), []);
});

test('every relative import resolves to a file of the tree', (t) => {
  const missing = [...graph].flatMap(([file, edges]) => edges.filter((x) => !x.external && !graph.has(x.to) && !existsSync(join(root, x.to))).map((x) => `${file} → ${x.to}`));
  t.deepEqual(missing, []);
  t.true(graph.size > 200, `walked ${graph.size} files`);
});

test('no import circle anywhere in the tree', (t) => {
  const cycles = findCycles(graph).map((c) => c.join(' → '));
  t.deepEqual(cycles, [], `import circles:\n${cycles.join('\n')}`);
});

/** folder → the repository folders and packages its files must never import. */
const FORBIDDEN: Record<string, { folders: string[]; packages: RegExp }> = {
  devices: { folders: ['runtime', 'compiler', 'fleet', 'cli', 'bench', 'tools', 'test'], packages: /^@tensorflow\// },
  runtime: { folders: ['compiler', 'fleet', 'cli', 'bench', 'tools', 'test'], packages: /^@tensorflow\// },
  fleet: { folders: ['compiler', 'devices', 'cli', 'bench', 'tools', 'test'], packages: /^@tensorflow\// },
  compiler: { folders: ['cli', 'fleet', 'bench', 'tools', 'test'], packages: /^$/ },
  cli: { folders: ['bench', 'test'], packages: /^$/ },
};

test('no import runs back up the layers: devices ↛ runtime/compiler, runtime ↛ compiler/tfjs, …', (t) => {
  const bad: string[] = [];
  for (const [file, edges] of graph) {
    const rule = FORBIDDEN[file.split('/')[0]!];
    if (!rule) continue;
    for (const x of edges) {
      const hit = x.external ? rule.packages.test(x.to) : rule.folders.includes(x.to.split('/')[0]!);
      if (hit) bad.push(`${file} imports ${x.to}`);
    }
  }
  t.deepEqual(bad, []);
});

test('the version is written once, in package.json: no source file repeats it', async (t) => {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const literal = new RegExp(`['"\`]${version.replaceAll('.', '\\.')}['"\`]`);
  const sources = tsFiles(root, folders.filter((f) => f !== 'test')).concat(tsFiles(root, ['test']).filter((f) => f.startsWith('test/helpers/')));
  const repeats = sources.filter((f) => literal.test(readFileSync(join(root, f), 'utf8')));
  t.deepEqual(repeats, [], `import VERSION from runtime/version.ts instead of writing '${version}'`);
});

test('no dead exports: every exported name is used, in its own module or elsewhere in the tree', (t) => {
  const text = new Map([...graph.keys()].map((f) => [f, stripComments(readFileSync(join(root, f), 'utf8'))]));
  const scripts = ['tools/edgeprompt.mjs', 'tools/build-runtime.mjs'].map((f) => readFileSync(join(root, f), 'utf8')).join('\n');
  const dead: string[] = [];
  for (const [file, src] of text) {
    if (file.startsWith('test/') && !file.startsWith('test/helpers/')) continue;
    for (const name of exportedNames(src)) {
      const word = new RegExp(`(?<![\\w$])${name.replaceAll('$', '\\$')}(?![\\w$])`, 'g');
      const ownUses = (src.match(word) ?? []).length - 1;
      if (ownUses > 0 || word.test(scripts) || [...text].some(([g, other]) => g !== file && other.search(word) >= 0)) continue;
      dead.push(`${file}: ${name}`);
    }
  }
  t.deepEqual(dead, [], 'delete these, or use them');
});
