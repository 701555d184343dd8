// `npm run build:web`: builds the dashboard's page (fleet/web → app.js, app.css, index.html)
// into the cache `edgeprompt dashboard` serves from, and prints its size. The dashboard also
// builds it on first start; this is for images and CI that want it ahead.
import { bundleFiles, ensureWebBundle } from '../fleet/dashboard/bundle.ts';

const b = await ensureWebBundle({ force: process.argv.includes('--force') });
console.log(`${b.built ? 'built' : 'up to date'}: ${b.dir}`);
for (const f of bundleFiles(b.dir)) console.log(`  ${f.name.padEnd(12)} ${(f.bytes / 1024).toFixed(1)} KB`);
console.log(`  app.js + app.css: ${(b.bytes / 1024).toFixed(1)} KB, ${(b.gzipBytes / 1024).toFixed(1)} KB gzipped`);
