#!/usr/bin/env node
// The `shoal` command. shoal runs its TypeScript sources directly through tsx's loader, so a clean
// checkout works after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
