#!/usr/bin/env node
// The `edgeprompt` command: the compile stage runs from TypeScript sources through tsx
// (the device runtime ships as an esbuild bundle instead, see runtime/).
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
