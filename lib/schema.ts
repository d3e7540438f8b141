// Consul's state tables: the records the cluster state is made of and their memdb schema.
//
// Records use Consul's struct field names (Node, ServiceID, CreateIndex, ModifyIndex...) because
// they are Consul's data model: the HTTP API renders them, snapshots carry them, and readers
// who know Consul recognise them. Records are immutable once stored (memdb requirement): every
// change builds a new record.
//
// The `index` table keeps, for every other table, the highest Raft index that changed it; that is
// what blocking queries return as X-Consul-Index (Consul agent/consul/state/schema.go
// indexTableSchema, maxIndexTxn).
//
// Reference: Consul agent/consul/state/{catalog_schema.go,kvs.go,session.go,coordinate.go},
// agent/structs/structs.go.

import { compoundIndex, conditionalIndex, multiStringIndex, stringIndex, type DbSchema, type ReadTxn, type TableSchema, type WriteTxn } from './memdb.js';

// ---------------------------------------------------------------------------------------------
// Records

export type HealthStatus = 'passing' | 'warning' | 'critical' | 'maintenance';

/** A catalog node (structs.Node). */
export interface NodeRecord {
  readonly ID: string;
  readonly Node: string;
  readonly Address: string;
  readonly Datacenter: string;
  readonly TaggedAddresses: Readonly<Record<string, string>>;
  readonly Meta: Readonly<Record<string, string>>;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export interface ServiceAddressRecord {
  readonly Address: string;
  readonly Port: number;
}

/** A service instance on a node (structs.ServiceNode's service half; the node is joined on read). */
export interface ServiceRecord {
  readonly Node: string;
  readonly ID: string;
  readonly Service: string;
  readonly Kind: string;
  readonly Tags: readonly string[];
  readonly Address: string;
  readonly TaggedAddresses: Readonly<Record<string, ServiceAddressRecord>>;
  readonly Meta: Readonly<Record<string, string>>;
  readonly Port: number;
  readonly SocketPath: string;
  readonly Weights: { readonly Passing: number; readonly Warning: number };
  readonly EnableTagOverride: boolean;
  /** Mesh settings, kept opaque until the mesh features exist. */
  readonly Proxy?: unknown;
  readonly Connect?: unknown;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** What an HTTP/TCP/... check was defined with, as the catalog shows it (structs.HealthCheckDefinition). */
export interface CheckDefinitionRecord {
  readonly HTTP?: string;
  readonly TLSServerName?: string;
  readonly TLSSkipVerify?: boolean;
  readonly Header?: Readonly<Record<string, readonly string[]>>;
  readonly Method?: string;
  readonly Body?: string;
  readonly TCP?: string;
  readonly UDP?: string;
  readonly GRPC?: string;
  readonly Interval?: string;
  readonly Timeout?: string;
  readonly DeregisterCriticalServiceAfter?: string;
}

/** A health check (structs.HealthCheck). Node checks have ServiceID "". */
export interface CheckRecord {
  readonly Node: string;
  readonly CheckID: string;
  readonly Name: string;
  readonly Status: Exclude<HealthStatus, 'maintenance'>;
  readonly Notes: string;
  readonly Output: string;
  readonly ServiceID: string;
  readonly ServiceName: string;
  readonly ServiceTags: readonly string[];
  readonly Type: string;
  readonly Interval: string;
  readonly Timeout: string;
  readonly ExposedPort: number;
  readonly Definition: CheckDefinitionRecord;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** A key/value entry (structs.DirEntry). Flags is a uint64 kept exact as a bigint. */
export interface KvRecord {
  readonly Key: string;
  readonly Flags: bigint;
  /** null for an entry with no value (PUT with an empty body stores null in Consul). */
  readonly Value: Uint8Array | null;
  /** The session holding the lock, or "". */
  readonly Session: string;
  readonly LockIndex: number;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** A deleted key, kept so blocking queries on a prefix see the deletion's index (Consul tombstones). */
export interface TombstoneRecord {
  readonly Key: string;
  readonly Index: number;
}

export type SessionBehavior = 'release' | 'delete';

/** A session (structs.Session). LockDelay is in nanoseconds; TTL is a Go duration string or "". */
export interface SessionRecord {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  readonly NodeChecks: readonly string[];
  readonly ServiceChecks: readonly { readonly ID: string; readonly Namespace: string }[];
  readonly LockDelay: number;
  readonly Behavior: SessionBehavior;
  readonly TTL: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** Links a session to a check it depends on, so a critical check finds its sessions. */
export interface SessionCheckRecord {
  readonly Node: string;
  readonly CheckID: string;
  readonly Session: string;
}

export interface Coordinate {
  readonly Vec: readonly number[];
  readonly Error: number;
  readonly Adjustment: number;
  readonly Height: number;
}

/** A node's network coordinate (Vivaldi), per network segment. */
export interface CoordinateRecord {
  readonly Node: string;
  readonly Segment: string;
  readonly Coord: Coordinate;
}

/**
 * Autopilot's settings as the servers share them through Raft (structs.AutopilotConfig); the
 * table holds at most one. Durations in nanoseconds, as Go's time.Duration.
 */
export interface AutopilotConfigRecord {
  readonly CleanupDeadServers: boolean;
  readonly LastContactThreshold: number;
  readonly MaxTrailingLogs: number;
  readonly MinQuorum: number;
  readonly ServerStabilizationTime: number;
  readonly RedundancyZoneTag: string;
  readonly DisableUpgradeMigration: boolean;
  readonly UpgradeVersionTag: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** The highest Raft index that changed a table. */
export interface IndexRecord {
  readonly Key: string;
  readonly Value: number;
}

// ---------------------------------------------------------------------------------------------
// Tables

/** Table names, as Consul names them (they appear in snapshots and the index table). */
export const TABLES = {
  nodes: 'nodes',
  services: 'services',
  checks: 'checks',
  kvs: 'kvs',
  tombstones: 'tombstones',
  sessions: 'sessions',
  sessionChecks: 'session_checks',
  coordinates: 'coordinates',
  autopilot: 'autopilot-config',
  index: 'index',
} as const;

export type TableName = (typeof TABLES)[keyof typeof TABLES];

const nodesTable: TableSchema<NodeRecord> = {
  name: TABLES.nodes,
  indexes: [
    stringIndex('id', (n) => n.Node, { isUnique: true, isLowercase: true }),
    stringIndex('uuid', (n) => n.ID, { isUnique: true, isLowercase: true, allowMissing: true }),
    multiStringIndex('meta', (n) => Object.entries(n.Meta).map(([key, value]) => `${key}\x00${value}`)),
  ],
};

const servicesTable: TableSchema<ServiceRecord> = {
  name: TABLES.services,
  indexes: [
    compoundIndex('id', [(s) => s.Node, (s) => s.ID], { isUnique: true, isLowercase: true }),
    stringIndex('node', (s) => s.Node, { isLowercase: true }),
    stringIndex('service', (s) => s.Service, { isLowercase: true }),
    stringIndex('kind', (s) => s.Kind || 'typical', { isLowercase: true }),
  ],
};

const checksTable: TableSchema<CheckRecord> = {
  name: TABLES.checks,
  indexes: [
    compoundIndex('id', [(c) => c.Node, (c) => c.CheckID], { isUnique: true, isLowercase: true }),
    stringIndex('status', (c) => c.Status, { isLowercase: true }),
    stringIndex('service', (c) => c.ServiceName, { isLowercase: true, allowMissing: true }),
    stringIndex('node', (c) => c.Node, { isLowercase: true }),
    // (node, serviceID) with serviceID "" for node-level checks: one index serves both lookups.
    compoundIndex('node_service', [(c) => c.Node, (c) => c.ServiceID], { isLowercase: true }),
    conditionalIndex('is_service_check', (c) => c.ServiceID !== ''),
  ],
};

const kvsTable: TableSchema<KvRecord> = {
  name: TABLES.kvs,
  indexes: [stringIndex('id', (e) => e.Key, { isUnique: true }), stringIndex('session', (e) => e.Session, { isLowercase: true, allowMissing: true })],
};

const tombstonesTable: TableSchema<TombstoneRecord> = {
  name: TABLES.tombstones,
  indexes: [stringIndex('id', (t) => t.Key, { isUnique: true })],
};

const sessionsTable: TableSchema<SessionRecord> = {
  name: TABLES.sessions,
  indexes: [stringIndex('id', (s) => s.ID, { isUnique: true, isLowercase: true }), stringIndex('node', (s) => s.Node, { isLowercase: true })],
};

const sessionChecksTable: TableSchema<SessionCheckRecord> = {
  name: TABLES.sessionChecks,
  indexes: [
    compoundIndex('id', [(l) => l.Node, (l) => l.CheckID, (l) => l.Session], { isUnique: true, isLowercase: true }),
    compoundIndex('node_check', [(l) => l.Node, (l) => l.CheckID], { isLowercase: true }),
    stringIndex('session', (l) => l.Session, { isLowercase: true }),
  ],
};

const coordinatesTable: TableSchema<CoordinateRecord> = {
  name: TABLES.coordinates,
  indexes: [compoundIndex('id', [(c) => c.Node, (c) => c.Segment], { isUnique: true, isLowercase: true }), stringIndex('node', (c) => c.Node, { isLowercase: true })],
};

/** One row: every record has the same key. */
const autopilotTable: TableSchema<AutopilotConfigRecord> = {
  name: TABLES.autopilot,
  indexes: [stringIndex('id', () => 'config', { isUnique: true })],
};

const indexTable: TableSchema<IndexRecord> = {
  name: TABLES.index,
  indexes: [stringIndex('id', (i) => i.Key, { isUnique: true })],
};

/** The whole state store schema. */
export const STATE_SCHEMA: DbSchema = {
  tables: [nodesTable, servicesTable, checksTable, kvsTable, tombstonesTable, sessionsTable, sessionChecksTable, coordinatesTable, autopilotTable, indexTable],
};

// ---------------------------------------------------------------------------------------------
// Query results

/** What a read returns: the value and the index to report as X-Consul-Index. */
export interface QueryResult<T> {
  readonly index: number;
  readonly value: T;
}

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * A state operation refused for a reason the client caused (unknown node, CAS mismatch...).
 * `message` is Consul's text, which the HTTP layer returns as is. Codes are append-only.
 */
export class StateError extends Error {
  override readonly name = 'StateError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// The index table

/**
 * The highest Raft index recorded for a table, 0 if none. Read without a watch, as Consul reads
 * it: a query watches the data it returns, not every write to the table.
 */
export function tableIndex(txn: ReadTxn, table: TableName): number {
  return txn.peek<IndexRecord>(TABLES.index, 'id', table)?.Value ?? 0;
}

/** The highest index over several tables (Consul's maxIndexTxn). */
export function maxTableIndex(txn: ReadTxn, ...tables: TableName[]): number {
  let max = 0;
  for (const table of tables) max = Math.max(max, tableIndex(txn, table));
  return max;
}

/** Records that `table` changed at Raft index `index`; the recorded value never goes down. */
export function bumpTableIndex(txn: WriteTxn, table: TableName, index: number): void {
  if (index > tableIndex(txn, table)) txn.insert<IndexRecord>(TABLES.index, { Key: table, Value: index });
}
