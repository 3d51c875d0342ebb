#!/usr/bin/env -S node --single-threaded-gc
// The `shoal` command. A clean checkout works after `npm ci` with no build step: the TypeScript
// sources are bundled on first use and whenever they change (bin/bundle.mjs says how and why a
// bundle rather than a loader hook). The #! line's node flags are the ones a member runs with
// (src/cli/node-flags.ts explains them).
import { pathToFileURL } from 'node:url';
import { bundleFor, ROOT } from './bundle.mjs';

const ENTRY = 'src/cli/main.ts';

/** Errors that mean the cache cannot be written here (a read-only install), not a broken source. */
const UNWRITABLE = new Set(['EACCES', 'EPERM', 'EROFS']);

let bundle;
try {
  bundle = await bundleFor(ROOT, ENTRY);
} catch (error) {
  if (!UNWRITABLE.has(error?.code)) {
    // esbuild's own messages name the file, line and problem.
    const messages = error?.errors?.map((e) =>
      e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ${e.text}` : e.text,
    );
    process.stderr.write(`shoal: cannot build ${ENTRY}: ${messages?.join('\n') ?? error}\n`);
    process.exit(1);
  }
  process.stderr.write(
    `shoal: cannot write the bundle cache (${error.code}); running through the tsx loader instead, which costs latency\n`,
  );
}
// Stack traces point at the TypeScript sources, as they did under tsx.
process.setSourceMapsEnabled(true);
if (process.env.SHOAL_LAUNCH_INFO) {
  process.stderr.write(`shoal: running ${bundle ?? `${ENTRY} through the tsx loader`}\n`);
}
if (bundle !== undefined) {
  await import(pathToFileURL(bundle).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(`../${ENTRY}`);
}
