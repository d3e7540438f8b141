// Runs every benchmark in bench/ (files named *.bench.ts), one after another so they do not
// compete for the two cores. `npm run bench`, or `npm run bench -- http` for those whose name
// contains "http".
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const filter = process.argv[2] ?? '';
const benchDir = import.meta.dirname;
const files = readdirSync(benchDir).filter((name) => name.endsWith('.bench.ts') && name.includes(filter)).sort();
if (files.length === 0) {
  process.stderr.write(`no benchmark in bench/ matches ${JSON.stringify(filter)}\n`);
  process.exit(1);
}
let failed = 0;
for (const file of files) {
  process.stdout.write(`\n## ${file}\n\n`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(benchDir, file)], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
