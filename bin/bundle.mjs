// How the `shoal` command runs its TypeScript sources: as one bundled ES module built by esbuild,
// not through a loader hook.
//
// Why: a loader hook (tsx's `register()`, Node's `module.register`) runs on a thread of its own for
// the life of the process, with its own V8 heap holding every transformed source. Under load that
// thread woke every few hundred milliseconds for 1 to 4 ms of garbage collection in each member.
// Three members and a client share two cores here, so each such burst took a core from a member
// that was waiting for it, and it showed in the put latency tail (bench/README.md, 2026-12-06).
// A bundle needs no hook: the member runs plain JavaScript on its main thread only.
//
// The bundle is rebuilt only when one of its inputs changed, so a clean checkout, an edited source
// file and `git checkout` of another commit all run what the sources say:
// - a manifest in the cache directory lists every input the last build read (each source
//   file, package.json, tsconfig.json) with its size and modification time, and the bundle it made;
// - a start stats those inputs (about 2 ms for the whole server); any difference rebuilds.
// Bundles are named by a hash of their content and written under a temporary name and renamed,
// so members starting at the same time never read a half-written file.
//
// Two details keep the bundle's behaviour the source's:
// - packages stay external: the bundle lives in `<root>/node_modules/.cache/shoal-bundle/`, from
//   where `import 'lmdb'` finds the same installed package the sources would;
// - `import.meta.url` is replaced in each source file by that file's own URL, so paths computed
//   from it (the etcd .proto files next to the codec) stay right.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * The manifest's name: one per entry file (by absolute path), so checkouts that share a
 * node_modules directory (a symlink) never run each other's bundle.
 */
function manifestName(root, entry) {
  const key = createHash('sha256').update(resolve(root, entry)).digest('hex').slice(0, 16);
  return `manifest-${key}.json`;
}
/** Bundles kept besides the current one: a member that just built one must still find it. */
const KEEP_OTHER_BUNDLES = 3;

/** The files besides the sources whose change must rebuild: they steer esbuild and resolution. */
function configInputs(root) {
  return ['package.json', 'tsconfig.json'].map((name) => join(root, name));
}

/** A file's stat, or undefined when it does not exist. */
function stat(path) {
  try {
    return fs.statSync(path);
  } catch {
    return undefined;
  }
}

/** A file's size and modification time as the manifest records them ('missing' if absent). */
function stamp(found) {
  return found === undefined ? 'missing' : `${found.size}:${found.mtimeMs}`;
}

/**
 * A file modified this close to the build's start may have changed after esbuild read it (file
 * times come from a coarse clock), so its stamp could describe content the bundle lacks.
 */
const EDITED_DURING_BUILD_MARGIN_MS = 1000;

/** The cached bundle for `entry` when none of its inputs changed since it was built, else null. */
export function cachedBundle(root, entry, cacheDir) {
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(join(cacheDir, manifestName(root, entry)), 'utf8'));
  } catch {
    return null;
  }
  if (manifest.entry !== resolve(root, entry) || typeof manifest.bundle !== 'string') return null;
  for (const [path, expected] of Object.entries(manifest.inputs ?? {})) {
    if (stamp(stat(path)) !== expected) return null;
  }
  const bundle = join(cacheDir, manifest.bundle);
  return fs.existsSync(bundle) ? bundle : null;
}

/** An esbuild plugin that gives every source file its own `import.meta.url` (see the top). */
function ownImportMetaUrl(root) {
  return {
    name: 'own-import-meta-url',
    setup(build) {
      build.onLoad({ filter: /\.[cm]?[jt]s$/ }, (args) => {
        if (args.path.includes(join(root, 'node_modules'))) return undefined;
        const source = fs.readFileSync(args.path, 'utf8');
        const loader = args.path.endsWith('ts') ? 'ts' : 'js';
        if (!source.includes('import.meta.url')) return { contents: source, loader };
        const url = JSON.stringify(pathToFileURL(args.path).href);
        return { contents: source.replaceAll('import.meta.url', url), loader };
      });
    },
  };
}

/** Deletes old bundles, keeping `current` and the newest few others. */
function prune(cacheDir, current) {
  const others = fs
    .readdirSync(cacheDir)
    .filter((name) => name.endsWith('.mjs') && name !== current)
    .map((name) => ({ name, mtime: fs.statSync(join(cacheDir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { name } of others.slice(KEEP_OTHER_BUNDLES)) {
    fs.rmSync(join(cacheDir, name), { force: true });
  }
}

/** Writes `contents` to `path` atomically (temporary file, then rename). */
function writeAtomically(path, contents) {
  const temporary = `${path}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, contents);
  fs.renameSync(temporary, path);
}

/**
 * Builds the bundle of `entry` (a path relative to `root`) into `cacheDir`, records its inputs in
 * the manifest, and returns the bundle's path.
 */
export async function buildBundle(root, entry, cacheDir) {
  const esbuild = await import('esbuild');
  const startedMs = Date.now();
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [join(root, entry)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'inline',
    sourcesContent: false,
    // Not written there (write: false), but source map paths are made relative to this folder,
    // where the bundle goes under its hashed name.
    outfile: join(cacheDir, 'bundle.mjs'),
    write: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [ownImportMetaUrl(root)],
  });
  const inputs = {};
  let editedDuringBuild = false;
  const paths = Object.keys(result.metafile.inputs).map((input) => resolve(root, input));
  for (const path of [...paths, ...configInputs(root)]) {
    const found = stat(path);
    inputs[path] = stamp(found);
    if ((found?.mtimeMs ?? 0) > startedMs - EDITED_DURING_BUILD_MARGIN_MS) editedDuringBuild = true;
  }
  const contents = result.outputFiles[0].contents;
  const name = `${createHash('sha256').update(contents).digest('hex').slice(0, 16)}.mjs`;
  fs.mkdirSync(cacheDir, { recursive: true });
  const bundle = join(cacheDir, name);
  if (!fs.existsSync(bundle)) writeAtomically(bundle, contents);
  else fs.utimesSync(bundle, new Date(), new Date());
  // A bundle that may lack an edit still runs this once, but is not recorded for reuse: the next
  // start builds again.
  const manifestPath = join(cacheDir, manifestName(root, entry));
  if (editedDuringBuild) {
    fs.rmSync(manifestPath, { force: true });
  } else {
    const manifest = { entry: resolve(root, entry), bundle: name, inputs };
    writeAtomically(manifestPath, JSON.stringify(manifest));
  }
  prune(cacheDir, name);
  return bundle;
}

/** The bundle for `entry`, built first when missing or stale. */
export async function bundleFor(
  root,
  entry,
  cacheDir = join(root, 'node_modules', '.cache', 'shoal-bundle'),
) {
  return cachedBundle(root, entry, cacheDir) ?? (await buildBundle(root, entry, cacheDir));
}

/** The repository (or installed package) root this file belongs to. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
