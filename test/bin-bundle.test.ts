/**
 * bin/bundle.mjs: the `shoal` command runs its sources as one bundle (no loader thread). These
 * check what makes that safe: a bundle runs what the sources say now (rebuilt when any input
 * changes, reused otherwise), each source keeps its own `import.meta.url`, and `bin/shoal.mjs`
 * really starts from a bundle.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
// @ts-expect-error: plain JavaScript module without type declarations
import { buildBundle, bundleFor, cachedBundle, ROOT } from '../bin/bundle.mjs';

let project: string;
let cache: string;

before(() => {
  project = fs.mkdtempSync(join(os.tmpdir(), 'shoal-bundle-test-'));
  cache = join(project, 'cache');
  fs.writeFileSync(join(project, 'package.json'), '{"type":"module"}');
  fs.writeFileSync(join(project, 'tsconfig.json'), '{}');
  fs.mkdirSync(join(project, 'src', 'deep'), { recursive: true });
  fs.writeFileSync(
    join(project, 'src', 'main.ts'),
    "import { where } from './deep/where.js';\nconst n: number = 1;\nconsole.log(JSON.stringify({ n, where }));\n",
  );
  fs.writeFileSync(
    join(project, 'src', 'deep', 'where.ts'),
    'export const where: string = import.meta.url;\n',
  );
});

after(() => fs.rmSync(project, { recursive: true, force: true }));

function run(bundle: string): { n: number; where: string } {
  return JSON.parse(execFileSync(process.execPath, [bundle], { encoding: 'utf8' }));
}

let edits = 0;

/**
 * Writes a file as an editor saving it would, dated a minute back (each edit a little later than
 * the one before): a build skips recording files modified while it ran, see the last test.
 */
function touch(path: string, contents: string): void {
  fs.writeFileSync(path, contents);
  const when = new Date(Date.now() - 60_000 + ++edits * 10);
  fs.utimesSync(path, when, when);
}

/** Dates every file of the test project a minute back, as if written well before a build. */
function ageProject(): void {
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!path.startsWith(cache)) touch(path, fs.readFileSync(path, 'utf8'));
    }
  };
  walk(project);
}

test('a bundle runs the sources, each with its own import.meta.url', async () => {
  const bundle = await buildBundle(project, 'src/main.ts', cache);
  assert.ok(bundle.startsWith(cache));
  const out = run(bundle);
  assert.equal(out.n, 1);
  assert.equal(out.where, pathToFileURL(join(project, 'src', 'deep', 'where.ts')).href);
});

test('stack traces from a bundle point at the TypeScript source', async () => {
  fs.writeFileSync(
    join(project, 'src', 'boom.ts'),
    'function boom(): never {\n  throw new Error("boom");\n}\nboom();\n',
  );
  const bundle = await buildBundle(project, 'src/boom.ts', cache);
  const run = spawnSync(process.execPath, ['--enable-source-maps', bundle], { encoding: 'utf8' });
  assert.notEqual(run.status, 0);
  assert.ok(
    run.stderr.includes(`at boom (${join(project, 'src', 'boom.ts')}:2:`),
    `stack names the source: ${run.stderr}`,
  );
});

test('an unchanged tree reuses the bundle; an edited source or config rebuilds it', async () => {
  ageProject();
  const first = await bundleFor(project, 'src/main.ts', cache);
  assert.equal(cachedBundle(project, 'src/main.ts', cache), first);

  const main = join(project, 'src', 'main.ts');
  touch(main, fs.readFileSync(main, 'utf8').replace('= 1;', '= 2;'));
  assert.equal(cachedBundle(project, 'src/main.ts', cache), null, 'an edited source is seen');
  const second = await bundleFor(project, 'src/main.ts', cache);
  assert.notEqual(second, first);
  assert.equal(run(second).n, 2);

  touch(join(project, 'tsconfig.json'), '{ }');
  assert.equal(
    cachedBundle(project, 'src/main.ts', cache),
    null,
    'an edited tsconfig.json is seen',
  );
  await bundleFor(project, 'src/main.ts', cache);

  // A newly imported file is an input of the next build (its importer changed to import it).
  touch(join(project, 'src', 'extra.ts'), 'export const extra = 40;\n');
  touch(
    main,
    `import { extra } from './extra.js';\nconsole.log(JSON.stringify({ n: extra + 2, where: '' }));\n`,
  );
  const third = await bundleFor(project, 'src/main.ts', cache);
  assert.equal(run(third).n, 42);
  touch(join(project, 'src', 'extra.ts'), 'export const extra = 50;\n');
  assert.equal(cachedBundle(project, 'src/main.ts', cache), null);
  assert.equal(run(await bundleFor(project, 'src/main.ts', cache)).n, 52);
});

test('old bundles are pruned, the current one never', async () => {
  const main = join(project, 'src', 'main.ts');
  for (let i = 0; i < 6; i++) {
    touch(main, `console.log(JSON.stringify({ n: ${100 + i}, where: '' }));\n`);
    await bundleFor(project, 'src/main.ts', cache);
  }
  const bundles = fs.readdirSync(cache).filter((name) => name.endsWith('.mjs'));
  assert.ok(bundles.length <= 4, `kept ${bundles.length}`);
  assert.equal(run(cachedBundle(project, 'src/main.ts', cache)).n, 105);
});

test('a source that does not compile is refused with its file and line', () => {
  const broken = fs.mkdtempSync(join(os.tmpdir(), 'shoal-bundle-broken-'));
  try {
    fs.mkdirSync(join(broken, 'bin'));
    fs.mkdirSync(join(broken, 'src', 'cli'), { recursive: true });
    fs.copyFileSync(join(ROOT, 'bin', 'shoal.mjs'), join(broken, 'bin', 'shoal.mjs'));
    fs.copyFileSync(join(ROOT, 'bin', 'bundle.mjs'), join(broken, 'bin', 'bundle.mjs'));
    fs.symlinkSync(join(ROOT, 'node_modules'), join(broken, 'node_modules'));
    fs.writeFileSync(join(broken, 'src', 'cli', 'main.ts'), 'const x = ;\n');
    const result = (() => {
      try {
        execFileSync(process.execPath, [join(broken, 'bin', 'shoal.mjs')], {
          encoding: 'utf8',
          stdio: 'pipe',
        });
        return undefined;
      } catch (error) {
        return error as { status: number; stderr: string };
      }
    })();
    assert.ok(result, 'the command failed');
    assert.equal(result.status, 1);
    assert.match(result.stderr, /cannot build src\/cli\/main\.ts: src\/cli\/main\.ts:1:\d+: /);
  } finally {
    fs.rmSync(broken, { recursive: true, force: true });
  }
});

test('bin/shoal.mjs runs the CLI from the current bundle, not through a loader hook', () => {
  const run = spawnSync(process.execPath, [join(ROOT, 'bin', 'shoal.mjs'), '--help'], {
    encoding: 'utf8',
    env: { ...process.env, SHOAL_LAUNCH_INFO: '1' },
  });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /Usage: shoal/);
  const launched = /^shoal: running (.*)$/m.exec(run.stderr)?.[1];
  const cacheDir = join(ROOT, 'node_modules', '.cache', 'shoal-bundle');
  assert.equal(launched, cachedBundle(ROOT, 'src/cli/main.ts', cacheDir));
  assert.ok(launched?.endsWith('.mjs'));
});

test('a build that may have missed an edit made while it ran is used once, not recorded', async () => {
  ageProject();
  const main = join(project, 'src', 'main.ts');
  fs.writeFileSync(main, "console.log(JSON.stringify({ n: 7, where: '' }));\n"); // dated now
  const bundle = await buildBundle(project, 'src/main.ts', cache);
  assert.equal(run(bundle).n, 7, 'the bundle runs');
  assert.equal(cachedBundle(project, 'src/main.ts', cache), null, 'but the next start rebuilds');
  ageProject();
  const again = await bundleFor(project, 'src/main.ts', cache);
  assert.equal(cachedBundle(project, 'src/main.ts', cache), again, 'once it is old enough');
});
