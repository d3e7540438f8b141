// Raft cluster membership: the configuration format, the one-server-at-a-time changes, and which
// configuration is in force.
//
// As in hashicorp/raft (configuration.go), a configuration is the list of servers with their
// suffrage, stored in the log as a LOG_TYPE.configuration entry whose data is msgpack
// `{Servers: [{Address, ID, Suffrage}]}` in go-msgpack's dialect, so the log reads like a Go
// server's. A server uses the latest configuration in its log as soon as it is appended,
// committed or not (Ongaro's thesis section 4.1); if that entry is later truncated away, the
// previous one is back in force. Changes add, promote, demote or remove one server at a time,
// so any two consecutive configurations share a majority, and the leader allows at most one
// uncommitted change (checked in raft.ts).
//
// Not here: proposing or replicating entries (raft.ts); the entry's byte format, which the
// transport also carries (raftwire.ts encodeConfiguration/decodeConfiguration).
//
// Invariants: server IDs and addresses are unique and non-empty; a configuration built by a
// change has at least one voter.
//
// References: Ongaro's thesis chapter 4; hashicorp/raft configuration.go (nextConfiguration,
// checkConfiguration, EncodeConfiguration).

import assert from 'node:assert/strict';
import { RAFT_CONFIGURATION_SERVERS_MAX } from './raftwire.js';
import type { RaftServer } from './snapshot.js';

// ---------------------------------------------------------------------------------------------
// Types

/** hashicorp/raft ServerSuffrage. Wire and disk enum: append only. */
export const SUFFRAGE = { voter: 0, nonvoter: 1, staging: 2 } as const;

/** A configuration and the index of the log entry (or snapshot) it came from. */
export interface Configuration {
  readonly index: number;
  readonly servers: readonly RaftServer[];
}

/**
 * One membership change (hashicorp/raft AddVoter, AddNonvoter, DemoteVoter, RemoveServer, plus
 * promote for a non-voter or staging server). `prevIndex`, when non-zero, must equal the index
 * of the latest configuration, as in hashicorp/raft.
 */
export type ConfigurationChange =
  | { readonly op: 'addVoter'; readonly id: string; readonly address: string; readonly prevIndex?: number }
  | { readonly op: 'addNonvoter'; readonly id: string; readonly address: string; readonly prevIndex?: number }
  | { readonly op: 'promote'; readonly id: string; readonly prevIndex?: number }
  | { readonly op: 'demoteVoter'; readonly id: string; readonly prevIndex?: number }
  | { readonly op: 'removeServer'; readonly id: string; readonly prevIndex?: number };

// ---------------------------------------------------------------------------------------------
// API

/** IDs of the voters in a configuration, in configuration order. */
export function voterIds(servers: readonly RaftServer[]): string[] {
  return servers.filter((s) => s.suffrage === SUFFRAGE.voter).map((s) => s.id);
}

export function isVoter(servers: readonly RaftServer[], id: string): boolean {
  return servers.some((s) => s.id === id && s.suffrage === SUFFRAGE.voter);
}

/** Why a configuration is unacceptable, or undefined (hashicorp checkConfiguration). */
export function checkConfiguration(servers: readonly RaftServer[]): string | undefined {
  if (servers.length > RAFT_CONFIGURATION_SERVERS_MAX) return `more than ${RAFT_CONFIGURATION_SERVERS_MAX} servers`;
  const ids = new Set<string>();
  const addresses = new Set<string>();
  for (const server of servers) {
    if (server.id === '') return 'empty ID in configuration';
    if (server.address === '') return `empty address in configuration: ${server.id}`;
    if (ids.has(server.id)) return `found duplicate ID in configuration: ${server.id}`;
    if (addresses.has(server.address)) return `found duplicate address in configuration: ${server.address}`;
    ids.add(server.id);
    addresses.add(server.address);
  }
  if (voterIds(servers).length === 0) return 'need at least one voter in configuration';
  return undefined;
}

/**
 * hashicorp ReadConfigJSON after the JSON decode: an operator's peers.json,
 * `[{"id", "address", "non_voter"}]`, as the servers of a configuration. Throws with a decoder-like
 * text for the wrong shape and with checkConfiguration's for a configuration Raft would refuse.
 */
export function peersFromJson(value: unknown): RaftServer[] {
  if (!Array.isArray(value)) throw new Error('json: cannot unmarshal peers.json into Go value of type []raft.configEntry: not an array');
  const servers = value.map((entry: unknown): RaftServer => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new Error('json: cannot unmarshal peers.json entry into Go value of type raft.configEntry: not an object');
    const { id, address, non_voter: nonVoter } = entry as Record<string, unknown>;
    if ((id !== undefined && typeof id !== 'string') || (address !== undefined && typeof address !== 'string') || (nonVoter !== undefined && typeof nonVoter !== 'boolean')) {
      throw new Error('json: cannot unmarshal peers.json entry: id and address must be strings, non_voter a boolean');
    }
    return { suffrage: nonVoter === true ? SUFFRAGE.nonvoter : SUFFRAGE.voter, id: id ?? '', address: address ?? '' };
  });
  const problem = checkConfiguration(servers);
  if (problem !== undefined) throw new Error(problem);
  return servers;
}

/**
 * The configuration after one change (hashicorp nextConfiguration), or a reason it is refused.
 * Adding a server that exists updates its address and suffrage; removing an absent one is an error.
 */
export function nextConfiguration(current: readonly RaftServer[], change: ConfigurationChange): { servers: RaftServer[] } | { reason: string } {
  const servers = current.slice();
  const at = servers.findIndex((s) => s.id === change.id);
  const existing = servers[at];
  switch (change.op) {
    case 'addVoter': {
      const server: RaftServer = { suffrage: SUFFRAGE.voter, id: change.id, address: change.address };
      if (existing === undefined) servers.push(server);
      else servers[at] = server;
      break;
    }
    case 'addNonvoter': {
      if (existing === undefined) servers.push({ suffrage: SUFFRAGE.nonvoter, id: change.id, address: change.address });
      else servers[at] = { ...existing, address: change.address };
      break;
    }
    case 'promote':
      if (existing === undefined) return { reason: `unknown server ${change.id}` };
      servers[at] = { ...existing, suffrage: SUFFRAGE.voter };
      break;
    case 'demoteVoter':
      if (existing === undefined) return { reason: `unknown server ${change.id}` };
      servers[at] = { ...existing, suffrage: SUFFRAGE.nonvoter };
      break;
    case 'removeServer':
      if (existing === undefined) return { reason: `unknown server ${change.id}` };
      servers.splice(at, 1);
      break;
    default: {
      const never: never = change;
      throw new Error(`unknown configuration change ${String(never)}`);
    }
  }
  const problem = checkConfiguration(servers);
  return problem === undefined ? { servers } : { reason: problem };
}

/**
 * The configurations a server's log holds: the committed one and any appended after it.
 * Invariant: pending indexes are increasing and above committed.index; at most one pending
 * entry per leader term exists, since each leader allows one uncommitted change.
 */
export class Configurations {
  private committedConfiguration: Configuration;
  private pending: Configuration[] = [];

  constructor(base: Configuration) {
    this.committedConfiguration = base;
  }

  /** The configuration in force: the latest in the log. */
  get latest(): Configuration {
    return this.pending[this.pending.length - 1] ?? this.committedConfiguration;
  }

  get committed(): Configuration {
    return this.committedConfiguration;
  }

  /** A configuration entry was appended at `index`. */
  appended(index: number, servers: readonly RaftServer[]): void {
    assert(index > this.latest.index, `configuration at ${index} not after ${this.latest.index}`);
    this.pending.push({ index, servers });
  }

  /** Entries from `index` on were removed; returns whether the configuration in force changed. */
  truncatedFrom(index: number): boolean {
    const before = this.pending.length;
    while (this.pending.length > 0 && this.pending[this.pending.length - 1]!.index >= index) this.pending.pop();
    assert(this.committedConfiguration.index < index, 'truncating a committed configuration');
    return this.pending.length !== before;
  }

  /** commitIndex moved to `index`. */
  committedTo(index: number): void {
    while (this.pending.length > 0 && this.pending[0]!.index <= index) this.committedConfiguration = this.pending.shift()!;
  }

  /** The log was replaced by a snapshot carrying `configuration`. */
  restore(configuration: Configuration): void {
    this.committedConfiguration = configuration;
    this.pending = [];
  }
}
