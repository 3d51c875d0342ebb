#!/usr/bin/env -S node --single-threaded-gc
// The `shoal` command. shoal runs its TypeScript sources directly through tsx's loader, so a clean
// checkout works after `npm ci` with no build step. The #! line's node flags are the ones a member
// runs with (src/cli/node-flags.ts explains them).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
