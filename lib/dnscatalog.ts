// What the DNS interface reads from the catalog, answered from this server's state store.
//
// lib/dns.ts asks four RPC-shaped questions (Health.ServiceNodes, Catalog.NodeServices,
// Catalog.ListNodes, Catalog.ServiceNodes by address); this module answers them on a server
// agent through the same query path as the HTTP API (lib/query.ts blockingQuery, never
// blocking), so DNS gets the same consistency rules: with `allow_stale` (the default) any
// server answers from its own state, and a result older than `max_stale` is read again without
// stale (which Consul sends to the leader, and a follower answers locally until forwarding
// exists, issue 9). A client agent has no state store: until RPC forwarding exists (issue 9) it answers
// every read with Consul's "No known Consul servers", which DNS turns into SERVFAIL.
//
// Service lookups are what resolvers send thousands of times a second, and they repeat: the
// instances of one service are kept per (datacenter, service, tag) and reused until the next
// commit to the state store (MemDb.sequence), so a burst of identical lookups costs one catalog
// read. Any commit empties the cache, which keeps the rule simple and always correct. Only stale
// reads are remembered, and only served while this server is within max_stale of the leader:
// otherwise the read goes through the query path and its max_stale rule.
//
// References: Consul agent/dns.go (lookupServiceNodes, lookupNode, handlePtr), agent/consul/
// health_endpoint.go (ServiceNodes), catalog_endpoint.go (NodeServices, ListNodes, ServiceNodes).

import * as catalog from './catalog.js';
import type { EndpointDeps } from './endpoints.js';
import type { DnsCatalog, DnsReadRequest } from './dns.js';
import { DnsLookupError } from './dns.js';
import { HttpError } from './http.js';
import type { ReadTxn } from './memdb.js';
import { blockingQuery, NO_PATH_TO_DATACENTER_TEXT, type QueryOptions } from './query.js';
import type { NodeRecord, QueryResult, ServiceRecord } from './schema.js';
import { TABLES } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Limits

/** Distinct service lookups remembered between two commits (a resolver storm of random names cannot grow it further). */
export const DNS_SERVICE_CACHE_ENTRIES_MAX = 1_024;

// ---------------------------------------------------------------------------------------------
// Exported API

/** The catalog as a server agent's DNS interface sees it: its own state store. */
export function localDnsCatalog(deps: EndpointDeps): DnsCatalog {
  const cache = new Map<string, readonly catalog.CheckServiceNode[]>();
  let cachedSequence = -1;
  const read = <T>(request: DnsReadRequest, run: (txn: ReadTxn) => QueryResult<T>): Promise<T> => {
    if (request.datacenter !== deps.config.datacenter) return Promise.reject(new DnsLookupError('ERR_NO_PATH', NO_PATH_TO_DATACENTER_TEXT));
    const options: QueryOptions = {
      minQueryIndex: 0,
      maxQueryTimeMs: deps.query.defaultQueryTimeMs,
      consistency: request.allowStale ? 'stale' : 'default',
      maxStaleMs: request.allowStale ? request.maxStaleMs : 0,
      filter: '',
      token: '',
    };
    return blockingQuery(deps.query, options, NEVER_ABORTED, run).then(
      (reply) => reply.value,
      (error: unknown) => Promise.reject(toLookupError(error)),
    );
  };
  /** A remembered answer is as good as a new stale read while this server is within max_stale of the leader. */
  const isFreshEnough = (request: DnsReadRequest): boolean => {
    if (!request.allowStale) return false;
    const { server } = deps.query;
    return server.isLeader || (server.lastContactMs !== undefined && server.lastContactMs <= request.maxStaleMs);
  };
  return {
    serviceNodes(request) {
      const sequence = deps.query.state.db.sequence;
      if (sequence !== cachedSequence) {
        cache.clear();
        cachedSequence = sequence;
      }
      const key = `${request.datacenter}\x00${request.service}\x00${request.tag}`;
      const cached = isFreshEnough(request) ? cache.get(key) : undefined;
      if (cached !== undefined) return cached;
      const tags = request.tag === '' ? {} : { tags: [request.tag] };
      return read(request, (txn) => catalog.checkServiceNodes(txn, request.service, tags)).then((instances) => {
        if (request.allowStale && deps.query.state.db.sequence === sequence && cache.size < DNS_SERVICE_CACHE_ENTRIES_MAX) cache.set(key, instances);
        return instances;
      });
    },
    node(request) {
      return read(request, (txn) => {
        const found = catalog.nodeServices(txn, request.node);
        return { index: found.index, value: found.value?.Node };
      });
    },
    nodes(request) {
      return read(request, (txn) => catalog.nodes(txn));
    },
    servicesAtAddress(request) {
      return read(request, (txn) => servicesAtAddress(txn, request.address));
    },
  };
}

/** A client agent's catalog before RPC forwarding exists: every read fails as Consul's does with no servers. */
export function unreachableDnsCatalog(reason: string): DnsCatalog {
  const fail = (): Promise<never> => Promise.reject(new DnsLookupError('ERR_RPC', reason));
  return { serviceNodes: fail, node: fail, nodes: fail, servicesAtAddress: fail };
}

// ---------------------------------------------------------------------------------------------
// Private helpers

const NEVER_ABORTED = new AbortController().signal;

/** Catalog.ServiceNodes with a ServiceAddress filter: every instance, of any service, at `address`. */
function servicesAtAddress(txn: ReadTxn, address: string): QueryResult<catalog.ServiceNode[]> {
  const value: catalog.ServiceNode[] = [];
  for (const service of txn.all<ServiceRecord>(TABLES.services)) {
    if (service.Address !== address) continue;
    const node = txn.first<NodeRecord>(TABLES.nodes, 'id', service.Node);
    if (node !== undefined) value.push({ Node: node, Service: service });
  }
  return { index: 1, value };
}

function toLookupError(error: unknown): DnsLookupError {
  if (error instanceof DnsLookupError) return error;
  if (error instanceof HttpError && error.message === NO_PATH_TO_DATACENTER_TEXT) return new DnsLookupError('ERR_NO_PATH', error.message);
  return new DnsLookupError('ERR_RPC', error instanceof Error ? error.message : String(error));
}
