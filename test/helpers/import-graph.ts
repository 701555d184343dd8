// The import graph of the repository's own .ts files, read with a small parser (TypeScript 7 ships
// no compiler API to Node). It sees every static `import … from`, `export … from`, side-effect
// `import '…'`, `import('…')` and `typeof import('…')` whose specifier is a string literal; a
// specifier built at run time (the worker boot strings) is not a module edge and is not seen.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export interface ImportEdge {
  /** Repository-relative path with '/' separators ('runtime/mqtt/outbox.ts'), or a package name ('onnxruntime-node'). */
  to: string;
  /** True for a package (a specifier not starting with '.'), including node: built-ins. */
  external: boolean;
  /** True when the edge carries types only (`import type`, `export type`, all names `type`). */
  typeOnly: boolean;
}

/** Every .ts file under the given top-level folders (node_modules and fixtures skipped). */
export function tsFiles(root: string, folders: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (name === 'node_modules' || name === 'fixtures' || name.startsWith('.')) continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(relative(root, p).split(sep).join('/'));
    }
  };
  for (const f of folders) walk(join(root, f));
  return out.sort();
}

/** Block comments and whole-line `//` comments removed (a `//` inside a string, e.g. a URL, stays). */
export function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/^\s*\/\/.*$/gm, '');
}

const STATIC = /(?:^|[;}\n])\s*(import|export)\s+(type\s+)?([^;'"`]*?)\s*from\s*['"]([^'"]+)['"]/g;
const BARE = /(?:^|[;}\n])\s*import\s*['"]([^'"]+)['"]/g;
const DYNAMIC = /(typeof\s+)?\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The relative specifiers one source imports, with whether each carries types only. */
export function parseImports(src: string): { spec: string; typeOnly: boolean }[] {
  const text = stripComments(src);
  const out: { spec: string; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(STATIC)) {
    const clause = m[3]!.trim();
    // `import { type A, type B } from` is type-only too; `import X, { type A }` is not.
    const braces = /^\{([\s\S]*)\}$/.exec(clause);
    const allTypes = braces !== null && braces[1]!.split(',').map((s) => s.trim()).filter(Boolean).every((s) => s.startsWith('type '));
    out.push({ spec: m[4]!, typeOnly: m[2] !== undefined || allTypes });
  }
  for (const m of text.matchAll(BARE)) out.push({ spec: m[1]!, typeOnly: false });
  for (const m of text.matchAll(DYNAMIC)) out.push({ spec: m[2]!, typeOnly: m[1] !== undefined });
  return out;
}

/** file → every import it makes: repository files (resolved) and packages (as written). */
export function importGraph(root: string, files: readonly string[]): Map<string, ImportEdge[]> {
  const graph = new Map<string, ImportEdge[]>();
  for (const file of files) {
    const edges: ImportEdge[] = [];
    for (const { spec, typeOnly } of parseImports(readFileSync(join(root, file), 'utf8'))) {
      if (!spec.startsWith('.')) {
        edges.push({ to: spec, typeOnly, external: true });
        continue;
      }
      const to = relative(root, resolve(root, dirname(file), spec)).split(sep).join('/');
      edges.push({ to, typeOnly, external: false });
    }
    graph.set(file, edges);
  }
  return graph;
}

/**
 * Every strongly connected component with more than one file (or a file importing itself), each as
 * one concrete cycle `a → b → … → a`, found by Tarjan's algorithm then a path search inside the
 * component. Type-only edges count: a circle of types still ties two modules together.
 */
export function findCycles(graph: Map<string, ImportEdge[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const comps: string[][] = [];
  const next = (v: string) => (graph.get(v) ?? []).filter((e) => !e.external && graph.has(e.to)).map((e) => e.to);
  const strong = (v: string) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || next(v).includes(v)) comps.push(comp.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) strong(v);
  return comps.map((comp) => {
    // The shortest way from the component's first file back to itself, staying inside it.
    const inside = new Set(comp);
    const start = comp[0]!;
    const prev = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
      const v = queue.shift()!;
      for (const w of next(v)) {
        if (!inside.has(w)) continue;
        if (w === start) {
          const path = [start];
          for (let u = v; u !== start; u = prev.get(u)!) path.splice(1, 0, u);
          return [...path, start];
        }
        if (!prev.has(w)) { prev.set(w, v); queue.push(w); }
      }
    }
    return [...comp, comp[0]!];
  });
}

/** The names a module exports by declaration (`export function f`, `export type T`, …) or in an `export { a, b as c }` list. */
export function exportedNames(src: string): string[] {
  const text = stripComments(src);
  const names = new Set<string>();
  for (const m of text.matchAll(/^export\s+(?:declare\s+)?(?:default\s+)?(?:async\s+)?(?:abstract\s+)?(?:function\*?|const|let|class|interface|type|enum)\s+([A-Za-z_$][\w$]*)/gm)) names.add(m[1]!);
  for (const m of text.matchAll(/^export\s+(?:type\s+)?\{([^}]*)\}/gm)) {
    for (const part of m[1]!.split(',')) {
      const p = part.trim().replace(/^type\s+/, '');
      if (p !== '') names.add(p.split(/\s+as\s+/).at(-1)!.trim());
    }
  }
  return [...names];
}
