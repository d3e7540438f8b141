// Builds the release folder: compiled lib/ and bin/ plus a package.json that marks the
// output as ES modules, so that `node bin/agent.js` runs from the folder alone on any host
// with Node 20+, with no npm install. Usage: tsx scripts/build.ts <outDir>
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const outDir = resolve(process.argv[2] ?? 'dist');
const projectRoot = resolve(import.meta.dirname, '..');
const tscPath = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
execFileSync(process.execPath, [tscPath, '-p', resolve(projectRoot, 'tsconfig.build.json'), '--outDir', outDir], {
  stdio: 'inherit',
});

const source = JSON.parse(readFileSync(resolve(projectRoot, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  description: string;
  license: string;
  engines: Record<string, string>;
};
const release = {
  name: source.name,
  version: source.version,
  description: source.description,
  license: source.license,
  type: 'module',
  engines: source.engines,
  bin: { 'consul-ts': 'bin/agent.js' },
};
writeFileSync(resolve(outDir, 'package.json'), JSON.stringify(release, null, 2) + '\n');
