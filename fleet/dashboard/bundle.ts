// The page's static files: fleet/web/ (preact + htm, uPlot) bundled by esbuild into app.js and
// app.css plus index.html. Built on first use into a cache directory keyed by a hash of the
// sources and the bundled packages' versions, so `npm ci` then `edgeprompt dashboard` works with
// no build step, a changed source rebuilds, and an unchanged one starts at once.
// `npm run build:web` builds it ahead (CI, images) and prints the sizes.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WEB = join(ROOT, 'fleet/web');
const BUNDLED = ['preact', 'htm', 'uplot', 'esbuild'];

export class BundleError extends Error {
  override readonly name = 'BundleError';
  readonly code = 'DASHBOARD_BUNDLE_FAILED' as const;
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)])).sort();
}

function version(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'missing';
  }
}

/** Hash of the front end's sources and the versions of what it bundles. */
export function sourceHash(): string {
  const h = createHash('sha256');
  for (const f of files(WEB)) h.update(f.slice(WEB.length)).update('\0').update(readFileSync(f)).update('\0');
  for (const p of BUNDLED) h.update(`${p}@${version(p)}\n`);
  return h.digest('hex').slice(0, 16);
}

/** $EDGEPROMPT_CACHE_DIR, else .cache/ in the checkout, else the system temp dir. */
function cacheRoot(): string {
  if (process.env.EDGEPROMPT_CACHE_DIR) return process.env.EDGEPROMPT_CACHE_DIR;
  const inRepo = join(ROOT, '.cache');
  try {
    mkdirSync(inRepo, { recursive: true });
    return inRepo;
  } catch {
    return join(tmpdir(), 'edgeprompt-cache');
  }
}

export interface WebBundle {
  dir: string;
  /** Bytes of app.js + app.css, raw and gzipped. */
  bytes: number;
  gzipBytes: number;
  built: boolean;
}

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>EdgePrompt line dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css">
</head>
<body>
<div id="app"></div>
<script type="module" src="app.js"></script>
</body>
</html>
`;

function sizes(dir: string): { bytes: number; gzipBytes: number } {
  let bytes = 0;
  let gzipBytes = 0;
  for (const f of ['app.js', 'app.css']) {
    const b = readFileSync(join(dir, f));
    bytes += b.length;
    gzipBytes += gzipSync(b, { level: 9 }).length;
  }
  return { bytes, gzipBytes };
}

/** The bundle's directory, built now if the cache has none for these sources. */
export async function ensureWebBundle(opts: { force?: boolean } = {}): Promise<WebBundle> {
  const dir = join(cacheRoot(), 'web', sourceHash());
  if (!opts.force && existsSync(join(dir, 'index.html'))) return { dir, built: false, ...sizes(dir) };
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new BundleError(`cannot build the dashboard's page: esbuild is not installed (${(e as Error).message}); install the dev dependencies (npm ci) or run npm run build:web where they are`);
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await esbuild.build({
      entryPoints: { app: join(WEB, 'main.ts') },
      bundle: true,
      format: 'esm',
      target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
      platform: 'browser',
      minify: true,
      sourcemap: false,
      outdir: tmp,
      legalComments: 'none',
      logLevel: 'silent',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new BundleError(`cannot build the dashboard's page from ${WEB}: ${(e as Error).message}`);
  }
  if (!existsSync(join(tmp, 'app.css'))) writeFileSync(join(tmp, 'app.css'), '');
  writeFileSync(join(tmp, 'index.html'), INDEX_HTML);
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process built it meanwhile
  }
  return { dir, built: true, ...sizes(dir) };
}

export function bundleFiles(dir: string): { name: string; bytes: number }[] {
  return readdirSync(dir).map((name) => ({ name, bytes: statSync(join(dir, name)).size }));
}
