#!/usr/bin/env node
// Builds the device runtime: dist/edgeprompt-runtime.mjs and the inference worker beside it,
// dist/edgeprompt-runtime-worker.mjs (which the runtime starts relative to its own file; + .maps,
// + profiles/). Copy both .mjs files when deploying.
//   node tools/build-runtime.mjs [--outdir dist] [--no-minify]
// Only onnxruntime-node and serialport stay external (native); everything else is inlined. The
// build fails if anything from compiler/ or tfjs got in: the device must stay light (STYLE rule 9).

import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : dflt;
};
const outdir = resolve(value('--outdir', join(root, 'dist')));
const outfile = join(outdir, 'edgeprompt-runtime.mjs');
// runtime/session/worker-engine.ts looks for this name next to the bundle.
const workerfile = join(outdir, 'edgeprompt-runtime-worker.mjs');

// devices/cameras/folder.ts imports sharp (native) for image-folder cameras. On a device sharp is
// usually absent, so the bundle gets a stand-in that loads the real sharp on first use and
// otherwise fails with a clear message, instead of failing at startup for every camera kind.
const sharpShim = {
  name: 'sharp-shim',
  setup(b) {
    b.onResolve({ filter: /^sharp$/ }, () => ({ path: 'sharp', namespace: 'edgeprompt-shim' }));
    b.onLoad({ filter: /.*/, namespace: 'edgeprompt-shim' }, () => ({
      loader: 'js',
      contents: `
        let real = null;
        function load() {
          if (real === null) {
            try { real = require('sharp'); }
            catch (e) {
              const err = new Error('image-folder cameras need the sharp package next to the runtime bundle (npm install sharp): ' + e.message);
              err.code = 'E_NO_SHARP';
              throw err;
            }
          }
          return real;
        }
        export default new Proxy(function sharp() {}, {
          apply: (_t, _this, a) => load()(...a),
          get: (_t, p) => load()[p],
        });`,
    }));
  },
};

// runtime/version.ts imports package.json for its version; the bundle gets that field alone, not
// the dependency list (which names tfjs, and the device needs none of it).
const versionOnly = {
  name: 'package-version-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]package\.json$/ }, (a) => (a.path === join(root, 'package.json') ? { loader: 'json', contents: JSON.stringify({ version: JSON.parse(readFileSync(a.path, 'utf8')).version }) } : undefined));
  },
};

const started = Date.now();
const result = await build({
  entryPoints: { 'edgeprompt-runtime': join(root, 'runtime/cli.ts'), 'edgeprompt-runtime-worker': join(root, 'runtime/session/worker.ts') },
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: !flag('--no-minify'),
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  external: ['onnxruntime-node', 'serialport'],
  plugins: [sharpShim, versionOnly],
  // mqtt's CJS dependencies call require('stream') etc.; an ESM bundle has no require without this.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});

const forbidden = Object.keys(result.metafile.inputs).filter((p) => /(^|\/)compiler\/|@tensorflow|tfjs/.test(p));
if (forbidden.length > 0) {
  console.error(`build-runtime: the runtime bundle must not contain compiler/ or tfjs, but got:\n  ${forbidden.join('\n  ')}`);
  process.exit(1);
}

// Device profiles travel with the bundle (runtime/config/profile.ts looks in <bundle dir>/profiles).
const profilesSrc = join(root, 'devices/profiles');
mkdirSync(join(outdir, 'profiles'), { recursive: true });
for (const f of readdirSync(profilesSrc).filter((f) => f.endsWith('.yaml'))) copyFileSync(join(profilesSrc, f), join(outdir, 'profiles', f));

const kb = (f) => `${Math.round(statSync(f).size / 1024)} KB`;
console.log(`built ${relative(process.cwd(), outfile)} (${kb(outfile)}, map ${kb(outfile + '.map')}) + ${relative(process.cwd(), workerfile)} (${kb(workerfile)}) + profiles/ in ${Date.now() - started} ms`);
