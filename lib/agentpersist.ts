// The agent's own registrations on disk, so they survive a restart: services and checks registered
// through the HTTP API (config-file definitions come back from the config files), and the last
// result of each TTL check with the time its TTL runs out, and maintenance mode (its check, as
// Consul persists it).
//
// Layout as Consul's (agent/agent.go persistService, persistCheck, persistCheckState):
// `<data-dir>/services/<md5 of ID>`, `<data-dir>/checks/<md5 of ID>`,
// `<data-dir>/checks/state/<md5 of ID>`; the contents are ours: one JSON object
// `{"version":1,"kind":...,"sha256":<hex of payload text>,"payload":<text>}`, written durably
// (temp file, fsync, rename, directory fsync). A file that is torn, fails its checksum, has
// another version or kind, is too large, or whose ID does not match its name is set aside as
// `<name>.corrupt` with a warning, never loaded and never fatal.

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckDefinition, CheckStatus, ServiceDefinition } from './definitions.js';
import { writeFileDurably } from './disk.js';
import type { Logger } from './log.js';

// ---------------------------------------------------------------------------------------------
// Exported types

export type PersistedSource = 'local' | 'remote';

export interface PersistedService {
  readonly definition: ServiceDefinition;
  readonly source: PersistedSource;
}

export interface PersistedCheck {
  readonly definition: CheckDefinition;
  readonly source: PersistedSource;
  /** A maintenance-mode check (id, name, notes and serviceId set): restored by enabling maintenance again. */
  readonly isMaintenance?: boolean;
}

/** A TTL check's last result; expiresAtMs is when its TTL runs out (epoch ms). */
export interface PersistedCheckState {
  readonly checkId: string;
  readonly status: CheckStatus;
  readonly output: string;
  readonly expiresAtMs: number;
}

// ---------------------------------------------------------------------------------------------
// Limits

/** On-disk format version. Append only. */
export const PERSIST_FORMAT_VERSION = 1;
/** A persisted file larger than this is not read. */
export const PERSIST_FILE_BYTES_MAX = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Exported API

export class AgentPersistence {
  private readonly servicesDir: string;
  private readonly checksDir: string;
  private readonly statesDir: string;

  constructor(
    dataDir: string,
    private readonly logger: Logger,
  ) {
    this.servicesDir = join(dataDir, 'services');
    this.checksDir = join(dataDir, 'checks');
    this.statesDir = join(dataDir, 'checks', 'state');
  }

  saveService(service: PersistedService): void {
    this.write(this.servicesDir, 'service', serviceId(service.definition), service);
  }

  removeService(id: string): void {
    rmSync(join(this.servicesDir, fileName(id)), { force: true });
  }

  saveCheck(check: PersistedCheck): void {
    this.write(this.checksDir, 'check', check.definition.id, check);
  }

  /** Removes the check and its TTL state. */
  removeCheck(id: string): void {
    rmSync(join(this.checksDir, fileName(id)), { force: true });
    this.removeCheckState(id);
  }

  saveCheckState(state: PersistedCheckState): void {
    this.write(this.statesDir, 'check-state', state.checkId, state);
  }

  removeCheckState(id: string): void {
    rmSync(join(this.statesDir, fileName(id)), { force: true });
  }

  /** Everything persisted; bad files are set aside with a warning. */
  load(): { services: PersistedService[]; checks: PersistedCheck[]; checkStates: Map<string, PersistedCheckState> } {
    const services = this.readAll<PersistedService>(this.servicesDir, 'service', (item) => serviceId(item.definition));
    const checks = this.readAll<PersistedCheck>(this.checksDir, 'check', (item) => item.definition.id);
    const states = this.readAll<PersistedCheckState>(this.statesDir, 'check-state', (item) => item.checkId);
    return { services, checks, checkStates: new Map(states.map((state) => [state.checkId, state])) };
  }

  private write(dir: string, kind: string, id: string, payload: unknown): void {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const text = JSON.stringify(payload);
    const record = { version: PERSIST_FORMAT_VERSION, kind, sha256: sha256(text), payload: text };
    writeFileDurably(join(dir, fileName(id)), JSON.stringify(record));
  }

  private readAll<T>(dir: string, kind: string, idOf: (item: T) => string): T[] {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const items: T[] = [];
    for (const name of names.sort()) {
      if (!/^[0-9a-f]{32}$/.test(name)) continue;
      const path = join(dir, name);
      const problem = this.readOne<T>(path, kind, name, idOf);
      if (typeof problem === 'string') {
        this.logger.warn('persisted agent file is unreadable; set aside', { file: path, reason: problem });
        renameSync(path, `${path}.corrupt`);
      } else {
        items.push(problem.item);
      }
    }
    return items;
  }

  /** The item of one file, or why it cannot be used. */
  private readOne<T>(path: string, kind: string, name: string, idOf: (item: T) => string): { item: T } | string {
    const stat = statSync(path);
    if (!stat.isFile()) return 'not a file';
    if (stat.size > PERSIST_FILE_BYTES_MAX) return `larger than ${PERSIST_FILE_BYTES_MAX} bytes`;
    let record: unknown;
    try {
      record = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      return 'not JSON (torn write?)';
    }
    const fields = record as { version?: unknown; kind?: unknown; sha256?: unknown; payload?: unknown } | null;
    if (fields === null || typeof fields !== 'object') return 'not an object';
    if (fields.version !== PERSIST_FORMAT_VERSION) return `unknown version ${JSON.stringify(fields.version)}`;
    if (fields.kind !== kind) return `holds a ${JSON.stringify(fields.kind)}, not a ${kind}`;
    if (typeof fields.payload !== 'string' || fields.sha256 !== sha256(fields.payload)) return 'checksum mismatch';
    let item: T;
    try {
      item = JSON.parse(fields.payload) as T;
    } catch {
      return 'payload is not JSON';
    }
    let id: unknown;
    try {
      id = idOf(item);
    } catch {
      return 'payload has no ID';
    }
    if (typeof id !== 'string' || fileName(id) !== name) return 'ID does not match the file name';
    return { item };
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers

/** Consul's stringID: the md5 hex of the ID (file names safe whatever the ID holds). */
function fileName(id: string): string {
  return createHash('md5').update(id).digest('hex');
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function serviceId(definition: ServiceDefinition): string {
  return definition.id !== '' ? definition.id : definition.name;
}
