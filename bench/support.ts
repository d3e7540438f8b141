// What the benchmarks share: the child processes they start (servers, load generators), so
// that every one is stopped on the way out and one that dies early says so with the end of its
// output; the release build every agent benchmark runs; a small JSON POST for peers' HTTP APIs
// (etcd's gateway) and a PUT for the agent's.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';

/** How long stopAll() waits for killed children to exit. */
const STOP_WAIT_MS = 5_000;
/** Output kept per child for the "exited early" message. */
const OUTPUT_KEPT_CHARS = 10_000;

export class ChildProcesses {
  private readonly children = new Set<ChildProcess>();
  /** Set while we stop children on purpose: their exits are not reported. */
  private isStopping = false;
  /** Children stopped one by one on purpose (stop()). */
  private readonly stopped = new WeakSet<ChildProcess>();

  /** Starts a long-running process; its stdout and stderr are kept (the tail) for error reports. */
  start(command: string, args: readonly string[], cwd: string, name: string): { child: ChildProcess; output: () => string } {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.length > 2 * OUTPUT_KEPT_CHARS) output = output.slice(-OUTPUT_KEPT_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.track(child, (code, signal) => {
      if (!this.isStopping && !this.stopped.has(child)) process.stderr.write(`${name} exited early (${code ?? signal}):\n${output.slice(-2_000)}\n`);
    });
    return { child, output: () => output };
  }

  /** Tracks a child started elsewhere (a load generator with its own pipes). */
  track(child: ChildProcess, onExit: (code: number | null, signal: NodeJS.Signals | null) => void = () => undefined): void {
    this.children.add(child);
    child.on('exit', (code, signal) => {
      this.children.delete(child);
      onExit(code, signal);
    });
  }

  /** The children are about to exit on purpose (we signal them some other way): no reports. */
  expectExits(): void {
    this.isStopping = true;
  }

  /** Sends `signal` to every child without waiting (SIGINT lets a --cpu-prof child write its profile). */
  signalAll(signal: NodeJS.Signals): void {
    this.isStopping = true;
    for (const child of this.children) child.kill(signal);
  }

  /** SIGKILLs one child and waits (bounded) for it to exit. */
  async stop(child: ChildProcess): Promise<void> {
    this.stopped.add(child);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
    child.kill('SIGKILL');
    await Promise.race([exited, new Promise((resolveWait) => setTimeout(resolveWait, STOP_WAIT_MS))]);
  }

  /** SIGKILLs every child and waits (bounded) for them to exit. */
  async stopAll(): Promise<void> {
    this.isStopping = true;
    const exits = [...this.children].map((child) => new Promise<void>((resolveExit) => child.once('exit', () => resolveExit())));
    for (const child of this.children) child.kill('SIGKILL');
    await Promise.race([Promise.all(exits), new Promise((resolveWait) => setTimeout(resolveWait, STOP_WAIT_MS))]);
    this.isStopping = false;
  }

  /** For a signal handler: SIGKILL everything now. */
  killAll(): void {
    for (const child of this.children) child.kill('SIGKILL');
  }

  /** On SIGINT or SIGTERM: kill every child, remove `scratch`, exit 130 (every bench's interrupt path). */
  cleanUpOnSignal(scratch: string): void {
    const onSignal = (): void => {
      this.killAll();
      rmSync(scratch, { recursive: true, force: true });
      process.exit(130);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
}

/** POSTs `body` as JSON to `url` + `path` (a fresh connection, 2 s deadline); resolves with the parsed 200 answer. */
export function httpJson(url: string, path: string, body: unknown): Promise<unknown> {
  return new Promise((resolveReq, rejectReq) => {
    const req = request(new URL(path, url), { method: 'POST', agent: false, headers: { 'Content-Type': 'application/json', Connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) rejectReq(new Error(`HTTP ${res.statusCode}`));
        else resolveReq(JSON.parse(Buffer.concat(chunks).toString()));
      });
    });
    req.setTimeout(2_000, () => req.destroy(new Error('timeout')));
    req.on('error', rejectReq);
    req.end(JSON.stringify(body));
  });
}

/** Builds the release folder (scripts/build.ts) into `outDir`, as a user would run it; throws if the build fails. */
export function buildRelease(outDir: string): void {
  const root = resolve(import.meta.dirname, '..');
  const build = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'build.ts'), outDir], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('build failed');
}

/** PUTs `body` as JSON to the agent on 127.0.0.1:`port`; throws unless it answers 200. */
export async function httpPut(port: number, path: string, body: unknown): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'PUT', body: JSON.stringify(body) });
  if (response.status !== 200) throw new Error(`${path}: ${response.status} ${await response.text()}`);
}
