/**
 * Keeps the layering of ARCHITECTURE.md true: a folder under src/ may import only the folders listed
 * for it, and the pure cores (raft, the SWIM protocol core) import no `node:` module and no package,
 * so the simulator can drive them deterministically. Test files are exempt: they may reach across.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

/** layer -> the layers it may import (besides itself). Mirrors the table in ARCHITECTURE.md. */
export const allowedImports: Record<string, readonly string[]> = {
  rpc: [],
  raft: [],
  storage: ['raft'],
  membership: ['rpc'],
  kv: ['raft', 'storage'],
  files: ['raft', 'storage', 'kv', 'rpc', 'membership'],
  client: ['rpc'],
  server: ['rpc', 'raft', 'storage', 'membership', 'kv', 'files', 'client'],
  sim: ['raft', 'storage', 'kv', 'membership'],
  cli: ['rpc', 'raft', 'storage', 'membership', 'kv', 'files', 'server', 'client', 'sim'],
};

/** Folders whose code must be pure: no node: modules, no packages, only relative imports. */
const pureFolders = ['raft', 'membership/core'];

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const importPattern =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers: string[] = [];
  for (const match of text.matchAll(importPattern)) specifiers.push((match[1] ?? match[2])!);
  return specifiers;
}

function layerOf(file: string): string {
  return relative(src, file).split('/')[0]!;
}

test('every src folder is a known layer', () => {
  for (const name of readdirSync(src)) {
    if (statSync(join(src, name)).isDirectory()) {
      assert.ok(
        name in allowedImports,
        `src/${name} is not listed in allowedImports (ARCHITECTURE.md)`,
      );
    }
  }
});

test('imports only point down the layers', () => {
  const violations: string[] = [];
  for (const file of sourceFiles(src)) {
    const layer = layerOf(file);
    const allowed = new Set([layer, ...(allowedImports[layer] ?? [])]);
    for (const specifier of importsOf(file)) {
      if (!specifier.startsWith('.')) continue;
      const target = resolve(dirname(file), specifier);
      if (!target.startsWith(`${src}/`)) {
        violations.push(`${relative(root, file)} imports ${specifier} outside src/`);
        continue;
      }
      const targetLayer = layerOf(target);
      if (!allowed.has(targetLayer)) {
        violations.push(`${relative(root, file)} (${layer}) imports ${specifier} (${targetLayer})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('pure cores import neither node: modules nor packages', () => {
  const violations: string[] = [];
  for (const folder of pureFolders) {
    let files: string[] = [];
    try {
      files = sourceFiles(join(src, folder));
    } catch {
      continue; // The folder does not exist yet.
    }
    for (const file of files) {
      for (const specifier of importsOf(file)) {
        const target = specifier.startsWith('.') ? resolve(dirname(file), specifier) : null;
        if (target === null || !target.startsWith(join(src, folder))) {
          violations.push(`${relative(root, file)} imports ${specifier}`);
        }
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('the import scanner sees the imports it must check', () => {
  // Guards the regular expression itself: if it stopped matching, the tests above would pass vacuously.
  const specifiers = importsOf(join(src, 'raft', 'memory-storage.ts'));
  assert.ok(specifiers.includes('./types.js'), `scanner found only ${JSON.stringify(specifiers)}`);
  assert.ok(specifiers.includes('./storage.js'));
});
