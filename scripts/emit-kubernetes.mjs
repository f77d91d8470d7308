#!/usr/bin/env node
// Writes deploy/kubernetes/*.yaml from the typed objects in src/deploy/kubernetes/ (validated
// against the Kubernetes schema as they render). Run after tsc: node scripts/emit-kubernetes.mjs
// (src/deploy/kubernetes/manifests.test.ts fails when the checked-in files differ).
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderManifests } from '../dist/deploy/kubernetes/render.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'deploy', 'kubernetes');
await mkdir(dir, { recursive: true });
const files = renderManifests();
// Files the objects no longer render are removed, so the directory is exactly what they make.
for (const f of await readdir(dir)) if (f.endsWith('.yaml') && !files.has(f)) await rm(join(dir, f));
for (const [name, text] of files) await writeFile(join(dir, name), text);
process.stdout.write(`${[...files.keys()].map((f) => `deploy/kubernetes/${f}`).join('\n')}\n`);
