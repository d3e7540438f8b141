// The DNS interface: Consul's names (`web.service.consul`, `node1.node.dc1.consul`,
// `_web._tcp.service.consul`, `7f000001.addr.consul`, reverse PTR, SOA, NS) answered over UDP
// and TCP on client_addr:ports.dns (8600), with recursion to `recursors` for other names.
//
// Layers: DnsResolver turns one decoded query into one reply message (Consul's agent/dns.go:
// handleQuery, dispatch, handlePtr, the record makers and the trimming); the shell at the bottom
// (listenDns) owns the sockets: datagrams, length-prefixed TCP streams, miekg/dns's server-level
// checks (ignore responses, NOTIMP for other opcodes, FORMERR for bad counts and undecodable
// messages). The wire codec is lib/dnswire.ts; catalog reads come through DnsCatalog
// (lib/dnscatalog.ts on a server agent); recursion is lib/dnsrecursor.ts.
//
// Behaviours kept from Consul on purpose, because resolvers and load balancers see them:
// - An instance is dropped if any of its checks or its node's checks is critical (maintenance
//   is critical); warning is kept unless `only_passing`. Instances are shuffled on every answer.
// - Unknown names, services, nodes and datacenters, and services with no healthy instance, are
//   NXDOMAIN with the SOA in Authority; a known service with no record of the asked type is
//   NOERROR with an empty Answer and the SOA (RFC 2308 NODATA). A node query of another type
//   (SRV on a node) is NOERROR, empty, without SOA, as Consul answers it.
// - Plain UDP answers carry at most min(udp_answer_limit, 8) records, then are trimmed to fit 512
//   bytes measured uncompressed; EDNS0 raises the size to the advertised buffer. TC is set only
//   with `enable_truncate`. When trimming happens, Additional is rebuilt from the SRV targets
//   that remain (Consul's syncExtra), which also drops the OPT and node-meta TXT records there.
// - The reply's OPT echoes the request's UDP size and its client-subnet option (scope 0); other
//   options (cookies) are not echoed. Names keep the question's case; the SOA and the NS names
//   use the configured (or alternative) domain.
// - Recursion (RA=1) only when recursors are configured; out-of-zone names without recursors are
//   REFUSED (miekg's ServeMux with no handler).
//
// Not here: prepared queries (`.query` names answer NXDOMAIN: there are none to execute), mesh
// names (`.connect`/`.ingress` find no mesh instances and answer NXDOMAIN, `.virtual` has no
// virtual IPs and answers an empty NOERROR), peering, WAN address translation (only one
// datacenter is reachable), ACL tokens (ACLs are not enforced yet), the agent cache.
//
// References: Consul agent/dns.go and dns_ce.go, internal/dnsutil; RFC 1035 §4.2, RFC 2782,
// RFC 2308 §2.2, RFC 6891, RFC 7766 (TCP), RFC 7871 (client subnet); miekg/dns server.go
// (defaultMsgAcceptFunc, maxTCPQueries) and serve_mux.go.

import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP, createServer, type Server as TcpServer, type Socket } from 'node:net';
import type { CheckServiceNode, ServiceNode } from './catalog.js';
import type { DnsConfig } from './config.js';
import {
  decodeQuery,
  DnsWireError,
  encodeMessage,
  formatIpv6,
  ipv6Bytes,
  queryMessage,
  nameWireLength,
  OPCODE,
  RCODE,
  replyTo,
  RR_CLASS,
  RR_TYPE,
  type DnsHeader,
  type DnsMessage,
  type DnsQuestion,
  type RecordData,
  type ResourceRecord,
} from './dnswire.js';
import type { Recursor } from './dnsrecursor.js';
import type { Logger } from './log.js';
import type { Rng } from './rng.js';
import type { NodeRecord } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Exported types

/** Why a catalog read failed: ERR_NO_PATH (unknown datacenter) answers NXDOMAIN, ERR_RPC SERVFAIL. */
export type DnsLookupErrorCode = 'ERR_NO_PATH' | 'ERR_RPC';

export class DnsLookupError extends Error {
  constructor(
    readonly code: DnsLookupErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DnsLookupError';
  }
}

export interface DnsReadRequest {
  readonly datacenter: string;
  readonly allowStale: boolean;
  readonly maxStaleMs: number;
}

/** A value now, or later: the catalog answers repeated lookups from memory without a promise. */
export type MaybePromise<T> = T | Promise<T>;

/** The catalog reads the DNS interface makes (Consul's RPCs of the same names). Failures (thrown or rejected) are DnsLookupErrors. */
export interface DnsCatalog {
  /** Health.ServiceNodes: every instance of `service` (having `tag`, unless ''), node checks first. */
  serviceNodes(request: DnsReadRequest & { readonly service: string; readonly tag: string }): MaybePromise<readonly CheckServiceNode[]>;
  /** Catalog.NodeServices' node: by name, else by ID prefix; undefined if unknown. */
  node(request: DnsReadRequest & { readonly node: string }): Promise<NodeRecord | undefined>;
  /** Catalog.ListNodes. */
  nodes(request: DnsReadRequest): Promise<readonly NodeRecord[]>;
  /** Catalog.ServiceNodes filtered by ServiceAddress, over every service. */
  servicesAtAddress(request: DnsReadRequest & { readonly address: string }): Promise<readonly ServiceNode[]>;
}

export interface DnsResolverOptions {
  readonly config: DnsConfig;
  /** Lower case, fully qualified ("consul."). */
  readonly domain: string;
  /** Lower case, fully qualified, or '' when not set. */
  readonly altDomain: string;
  readonly datacenter: string;
  readonly catalog: DnsCatalog;
  /** Present when recursors are configured. */
  readonly recursor: Recursor | undefined;
  readonly rng: Rng;
  /** Milliseconds since the epoch (the SOA serial is the Unix time). */
  readonly nowMs: () => number;
  readonly logger: Logger;
}

export type DnsTransport = 'udp' | 'tcp';

/** What the resolver made of one datagram or TCP message: bytes to send back, or nothing (ignored). */
export type DnsReply = Uint8Array | undefined;

// ---------------------------------------------------------------------------------------------
// Limits

/** Query names remembered by parsedName before the memory is emptied. */
export const PARSED_NAMES_MAX = 4_096;
/** Consul's maxUDPAnswerLimit: udp_answer_limit is capped to this many answers on plain UDP. */
export const UDP_ANSWERS_MAX = 8;
/** RFC 1035's UDP payload without EDNS0 (Consul's defaultMaxUDPSize). */
export const UDP_PAYLOAD_BYTES_DEFAULT = 512;
/** Consul's maxUDPDatagramSize: a larger EDNS0 buffer is lowered to this. */
export const UDP_PAYLOAD_BYTES_MAX = 65_535 - 68;
/** Consul's TCP answer budget (64 KiB less the header overhead it keeps). */
export const TCP_REPLY_BYTES_MAX = 65_523;
/** Answers kept on TCP before measuring (4,096; 1,024 for SRV, which cannot fit more in 64 KiB). */
export const TCP_ANSWERS_MAX = 4_096;
export const TCP_SRV_ANSWERS_MAX = 1_024;
/** Consul's maxRecurseRecords: records kept from resolving an external name without EDNS0. */
export const CNAME_RECORDS_MAX = 5;
/** Consul's maxRecursionLevelDefault: how deep CNAMEs into our own domain are followed. */
export const CNAME_DEPTH_MAX = 3;
/** NS records in an SOA or NS answer. */
export const NAMESERVERS_MAX = 3;
/** miekg/dns's maxTCPQueries: a TCP connection is closed after this many queries. */
export const TCP_QUERIES_PER_CONNECTION_MAX = 128;
/** miekg/dns's default read timeout (a started message must arrive within it). */
export const TCP_READ_TIMEOUT_MS = 2_000;
/** miekg/dns's default idle timeout between two queries on one TCP connection. */
export const TCP_IDLE_TIMEOUT_MS = 8_000;
/** Open TCP connections per listener; more are closed at once. */
export const TCP_CONNECTIONS_MAX = 1_024;

// ---------------------------------------------------------------------------------------------
// Exported API

/** Answers decoded queries as Consul's DNS server does. Never throws: failures become SERVFAIL. */
export class DnsResolver {
  private readonly options: DnsResolverOptions;
  /** The healthy instances of each catalog answer (a copy is shuffled per query). */
  private readonly healthyOf = new WeakMap<readonly CheckServiceNode[], HealthyInstances>();
  /** SRV target names per response domain and datacenter, per node record (records are replaced, not changed, on writes). */
  private readonly nodeTargets = new Map<string, WeakMap<NodeRecord, string>>();
  /** parsedName's memory (null: a name that is not a Consul lookup). */
  private readonly parsedNames = new Map<string, ParsedName | null>();
  /** Zones we answer for, longest first, so that the most specific one wins (miekg's ServeMux). */
  private readonly zones: readonly string[];

  constructor(options: DnsResolverOptions) {
    assert.ok(options.domain.endsWith('.') && options.domain === options.domain.toLowerCase(), 'domain is lower case and fully qualified');
    this.options = options;
    this.zones = [options.domain, ...(options.altDomain === '' ? [] : [options.altDomain])].sort((a, b) => b.length - a.length);
  }

  /**
   * One wire message in, one wire message out (or undefined: the message is not answered, as
   * miekg ignores responses and runts).
   */
  answerBytes(bytes: Uint8Array, transport: DnsTransport): MaybePromise<DnsReply> {
    const early = screenMessage(bytes);
    if (early !== 'accept') return early;
    let query: ReturnType<typeof decodeQuery>;
    try {
      query = decodeQuery(bytes);
    } catch (error) {
      if (!(error instanceof DnsWireError)) throw error;
      return formatErrorReply(bytes, RCODE.FORMERR);
    }
    const question = query.questions[0];
    assert.ok(question !== undefined, 'screenMessage admitted exactly one question');
    const { header } = query;
    // Answers from memory are computed without a promise; only catalog reads, hostname
    // resolution and recursion wait.
    try {
      const reply = this.answer(header, question, query.opt, transport, bytes);
      if (reply instanceof Promise) return reply.then((message) => this.encodeReply(header, question, message), (error: unknown) => this.failedReply(header, question, error));
      return this.encodeReply(header, question, reply);
    } catch (error) {
      return this.failedReply(header, question, error);
    }
  }

  private encodeReply(header: DnsHeader, question: DnsQuestion, reply: DnsMessage | Uint8Array): Uint8Array {
    if (reply instanceof Uint8Array) return reply;
    try {
      return encodeMessage(reply, { compress: !this.options.config.disableCompression });
    } catch (error) {
      // A catalog name that cannot be a DNS name (a label over 63 bytes) fails the whole answer.
      return this.failedReply(header, question, error);
    }
  }

  /** SERVFAIL for a query we failed to answer (logged: it is our fault or the catalog's, not the client's). */
  private failedReply(header: DnsHeader, question: DnsQuestion, error: unknown): Uint8Array {
    this.options.logger.error('failed to answer DNS query', { question: question.name, type: question.type, error: String(error) });
    const reply = replyTo({ header, questions: [question] });
    reply.header.rcode = RCODE.SERVFAIL;
    return encodeMessage(reply, { compress: false });
  }

  /** The reply to one question (already screened and decoded); raw bytes when relayed from a recursor. */
  answer(header: DnsHeader, question: DnsQuestion, opt: ResourceRecord | undefined, transport: DnsTransport, raw: Uint8Array): MaybePromise<DnsMessage | Uint8Array> {
    const name = question.name.toLowerCase();
    const zone = this.zones.find((candidate) => isWithin(name, candidate));
    if (zone !== undefined) return this.handleQuery(header, question, opt, transport);
    if (isWithin(name, 'arpa.')) return this.handlePtr(header, question, opt, transport, raw);
    if (this.options.recursor !== undefined) return this.recurse(header, question, opt, transport, raw);
    // miekg's ServeMux has no handler for the name: REFUSED, without EDNS.
    const refused = replyTo({ header, questions: [question] });
    refused.header.rcode = RCODE.REFUSED;
    return refused;
  }

  // -- Names in our domain ---------------------------------------------------------------------

  private handleQuery(header: DnsHeader, question: DnsQuestion, opt: ResourceRecord | undefined, transport: DnsTransport): MaybePromise<DnsMessage> {
    const { config } = this.options;
    const reply = this.newReply(header, question);
    const finish = (): DnsMessage => {
      appendEdns(opt, reply);
      const isTrimmed = transport === 'udp' ? trimUdp(reply, opt, config.udpAnswerLimit, !config.disableCompression) : trimTcp(reply, question.type, !config.disableCompression);
      if (isTrimmed && config.enableTruncate) reply.header.isTruncated = true;
      return reply;
    };
    switch (question.type) {
      case RR_TYPE.SOA:
        return this.nameservers(question.name).then(({ ns, glue }) => {
          reply.answers.push(this.soaRecord(question.name));
          reply.authorities.push(...ns);
          reply.additionals.push(...glue);
          return finish();
        });
      case RR_TYPE.NS:
        return this.nameservers(question.name).then(({ ns, glue }) => {
          reply.answers.push(...ns);
          reply.additionals.push(...glue);
          return finish();
        });
      case RR_TYPE.AXFR:
        reply.header.rcode = RCODE.NOTIMP;
        return finish();
      default: {
        // Plain UDP keeps at most min(udp_answer_limit, 8) answers: build one more than that (so
        // trimming still sees that there were more), not one per instance.
        const answersMax = transport === 'udp' && opt === undefined ? Math.min(UDP_ANSWERS_MAX, config.udpAnswerLimit) + 1 : Infinity;
        return andThen(this.dispatch(question, opt !== undefined, CNAME_DEPTH_MAX, answersMax, reply), (outcome) => {
          reply.header.rcode = rcodeOf(outcome);
          if (outcome === 'nxdomain' || outcome === 'nodata') reply.authorities.push(this.soaRecord(question.name));
          return finish();
        });
      }
    }
  }

  /**
   * Consul's dispatch: scans the labels right to left for the kind of lookup and answers it into
   * `reply`. Returns what the rcode should say.
   */
  private dispatch(question: DnsQuestion, hasEdns: boolean, depth: number, answersMax: number, reply: DnsMessage): MaybePromise<Outcome> {
    const parsed = this.parsedName(question);
    if (parsed === undefined) return this.invalid(question);
    const { kind, parts, suffixes } = parsed;
    switch (kind) {
      case 'service': {
        if (parts.length < 1) return this.invalid(question);
        const locality = parseLocality(suffixes);
        if (locality === undefined || locality.peer !== '') return this.invalid(question);
        const datacenter = locality.datacenter || this.options.datacenter;
        const first = parts[0] ?? '';
        const second = parts[1] ?? '';
        const isRfc2782 = parts.length === 2 && first.startsWith('_') && second.startsWith('_');
        const service = isRfc2782 ? first.slice(1) : (parts[parts.length - 1] ?? '');
        const tag = isRfc2782 ? (second === '_tcp' ? '' : second.slice(1)) : parts.slice(0, -1).join('.');
        return this.serviceLookup({ datacenter, service, tag }, question, { hasEdns, depth, answersMax }, reply);
      }
      case 'connect':
      case 'ingress':
        // No mesh: no connect-capable instance or ingress gateway exists to answer with.
        return parts.length < 1 || parseLocality(suffixes) === undefined ? this.invalid(question) : 'nxdomain';
      case 'virtual':
        return parts.length < 1 || parseLocality(suffixes) === undefined ? this.invalid(question) : 'ok';
      case 'node': {
        if (parts.length < 1) return this.invalid(question);
        const locality = parseLocality(suffixes);
        if (locality === undefined || locality.peer !== '') return this.invalid(question);
        return this.nodeLookup(locality.datacenter || this.options.datacenter, parts.join('.'), question, depth, reply);
      }
      case 'query':
        // There is no prepared query to execute: Consul's ErrQueryNotFound, NXDOMAIN.
        return parts.length < 1 || suffixes.length > 1 ? this.invalid(question) : 'nxdomain';
      case 'addr':
        return this.addrLookup(parts, question, reply);
    }
  }

  private invalid(question: DnsQuestion): Outcome {
    this.options.logger.warn('QName invalid', { qname: question.name });
    return 'nxdomain';
  }

  private serviceLookup(lookup: ServiceLookup, question: DnsQuestion, shape: AnswerShape, reply: DnsMessage): MaybePromise<Outcome> {
    let found: MaybePromise<HealthyInstances>;
    try {
      found = this.healthyInstances(lookup);
    } catch (error) {
      return lookupFailure(error);
    }
    if (found instanceof Promise) return found.then((healthy) => this.serviceAnswer(lookup, healthy, question, shape, reply), lookupFailure);
    return this.serviceAnswer(lookup, found, question, shape, reply);
  }

  private serviceAnswer(lookup: ServiceLookup, healthy: HealthyInstances, question: DnsQuestion, shape: AnswerShape, reply: DnsMessage): MaybePromise<Outcome> {
    const instances = healthy.instances.slice();
    if (instances.length === 0) return 'nxdomain';
    const ttl = serviceTtlSeconds(this.options.config, lookup.service);
    // Hostname addresses are resolved first (Consul resolves them for every instance), so that
    // building the records is synchronous: with IP addresses only, the usual case, nothing waits.
    const hostnames = healthy.hasHostnames ? hostnamesToResolve(instances, question) : NO_HOSTNAMES;
    const build = (resolved: ReadonlyMap<string, readonly ResourceRecord[]>): Outcome => {
      const responseDomain = this.responseDomain(question.name);
      const nodeTarget = (node: NodeRecord): string => this.nodeTarget(node, lookup.datacenter, responseDomain);
      const context: RecordContext = { lookup, question, ttl, resolved, hasEdns: shape.hasEdns, responseDomain, nodeTarget };
      if (question.type === RR_TYPE.SRV) this.addServiceSrvRecords(context, instances, healthy.hasRepeatedEndpoints, shape.answersMax, reply);
      else this.addServiceNodeRecords(context, instances, shape.answersMax, reply);
      return reply.answers.length === 0 ? 'nodata' : 'ok';
    };
    return hostnames.size === 0 ? build(NOTHING_RESOLVED) : this.resolveAll(hostnames, shape.depth).then(build);
  }

  private async resolveAll(hostnames: ReadonlySet<string>, depth: number): Promise<Map<string, ResourceRecord[]>> {
    const resolved = new Map<string, ResourceRecord[]>();
    for (const hostname of hostnames) resolved.set(hostname, await this.resolveCname(hostname, depth));
    return resolved;
  }

  /**
   * lookupServiceNodes: the instances with no critical check (and, with only_passing, all
   * passing). Synchronous when the catalog answers from memory, the common case under load.
   */
  private healthyInstances(lookup: ServiceLookup): MaybePromise<HealthyInstances> {
    const { config } = this.options;
    const request = { datacenter: lookup.datacenter, allowStale: config.allowStale, maxStaleMs: config.maxStaleMs, service: lookup.service, tag: lookup.tag };
    const read = this.options.catalog.serviceNodes(request);
    return read instanceof Promise ? read.then((instances) => this.healthyOfRead(instances)) : this.healthyOfRead(read);
  }

  private healthyOfRead(instances: readonly CheckServiceNode[]): HealthyInstances {
    // The catalog hands back the same array until the state changes: filter it once.
    let healthy = this.healthyOf.get(instances);
    if (healthy === undefined) {
      const kept = instances.filter((instance) => isHealthy(instance, this.options.config.onlyPassing));
      healthy = { instances: kept, hasHostnames: kept.some(hasHostnameAddress), hasRepeatedEndpoints: new Set(kept.map(endpointKey)).size < kept.length };
      this.healthyOf.set(instances, healthy);
    }
    return healthy;
  }

  /**
   * addServiceNodeRecordsToMessage, over the instances in random order (drawn one at a time, so
   * a capped answer shuffles only what it uses).
   */
  private addServiceNodeRecords(context: RecordContext, instances: CheckServiceNode[], answersMax: number, reply: DnsMessage): void {
    const seen = new Set<string>();
    let cnameAnswer: ResourceRecord[] | undefined;
    let count = 0;
    for (let i = 0; i < instances.length && reply.answers.length < answersMax; i++) {
      const { answers } = instanceRecords(context, drawRandom(instances, i, this.options.rng));
      const head = answers[0];
      if (head === undefined) continue;
      // A node can run one service several times on the same address: one record each. Heads
      // share owner and TTL here, and A/AAAA addresses, CNAME targets (ending in a dot) never
      // collide, so the record's data names it (Consul compares the whole RR text).
      const key = headKey(head);
      if (seen.has(key)) continue;
      seen.add(key);
      if (head.type === RR_TYPE.CNAME) {
        cnameAnswer ??= answers;
        continue;
      }
      for (const answer of answers) reply.answers.push(answer);
      count++;
      if (count === this.options.config.aRecordLimit) return;
    }
    if (reply.answers.length === 0 && cnameAnswer !== undefined) reply.answers.push(...cnameAnswer);
  }

  /** addServiceSRVRecordsToMessage: one SRV per distinct node:address:port, targets' records in Additional. */
  private addServiceSrvRecords(context: RecordContext, instances: CheckServiceNode[], hasRepeatedEndpoints: boolean, answersMax: number, reply: DnsMessage): void {
    const seen = hasRepeatedEndpoints ? new Set<string>() : undefined;
    for (let i = 0; i < instances.length && reply.answers.length < answersMax; i++) {
      const instance = drawRandom(instances, i, this.options.rng);
      if (seen !== undefined) {
        const key = endpointKey(instance);
        if (seen.has(key)) continue;
        seen.add(key);
      }
      const { answers, extra } = instanceRecords(context, instance);
      for (const answer of answers) reply.answers.push(answer);
      for (const record of extra) reply.additionals.push(record);
      if (this.options.config.enableAdditionalNodeMetaTxt && hasAnyKey(instance.Node.Meta)) {
        reply.additionals.push(...nodeMetaTxt(nodeFqdn(instance.Node.Node, context.lookup.datacenter, context.responseDomain), instance.Node, context.ttl));
      }
    }
  }

  /**
   * resolveCNAME: a name in our domain is answered by dispatching an ANY query for it (at most
   * CNAME_DEPTH_MAX deep, so two services naming each other cannot loop); any other name is
   * asked of the recursors as an A query. Failures give no records.
   */
  private async resolveCname(name: string, depth: number): Promise<ResourceRecord[]> {
    const lower = name.toLowerCase();
    if (this.zones.some((zone) => lower.endsWith(`.${zone}`))) {
      if (depth < 1) {
        this.options.logger.error("Infinite recursion detected for name, won't perform any CNAME resolution.", { name });
        return [];
      }
      const question = { name, type: RR_TYPE.ANY, class: RR_CLASS.IN };
      const inner = queryMessage(0, question);
      await this.dispatch(question, false, depth - 1, Infinity, inner);
      return inner.answers;
    }
    const { recursor } = this.options;
    if (recursor === undefined) return [];
    const answer = await recursor.lookup(name, RR_TYPE.A);
    return answer?.answers ?? [];
  }

  private async nodeLookup(datacenter: string, node: string, question: DnsQuestion, depth: number, reply: DnsMessage): Promise<Outcome> {
    const type = question.type;
    if (type !== RR_TYPE.ANY && type !== RR_TYPE.A && type !== RR_TYPE.AAAA && type !== RR_TYPE.TXT) return 'ok';
    let found: NodeRecord | undefined;
    try {
      found = await this.options.catalog.node({ ...this.readRequest(datacenter), node });
    } catch (error) {
      return lookupFailure(error);
    }
    if (found === undefined) return 'nxdomain';
    const ttl = secondsOf(this.options.config.nodeTtlMs);
    if (type !== RR_TYPE.TXT) reply.answers.push(...(await this.nodeRecords(found, type, question.name, ttl, depth)));
    if (this.options.config.enableAdditionalNodeMetaTxt || type === RR_TYPE.TXT || type === RR_TYPE.ANY) {
      const target = type === RR_TYPE.TXT || type === RR_TYPE.ANY ? reply.answers : reply.additionals;
      target.push(...nodeMetaTxt(question.name, found, ttl));
    }
    return 'ok';
  }

  /** makeRecordFromNode: the node's address as A/AAAA, or a CNAME (and what it resolves to) for a hostname. */
  private async nodeRecords(node: NodeRecord, type: number, name: string, ttl: number, depth: number): Promise<ResourceRecord[]> {
    const address = translateAddress(node, acceptFor(type));
    const ip = parseIp(address);
    if (ip === undefined) {
      const target = fqdn(node.Address);
      const cname: ResourceRecord = { name, type: RR_TYPE.CNAME, class: RR_CLASS.IN, ttl, data: { kind: 'cname', target } };
      return [cname, ...(await this.resolveCname(target, depth))];
    }
    const record = addressRecord(type, ip, ttl, name);
    return record === undefined ? [] : [record];
  }

  private addrLookup(parts: readonly string[], question: DnsQuestion, reply: DnsMessage): Outcome {
    const hex = parts[0] ?? '';
    if (parts.length !== 1 || !/^[0-9a-f]*$/.test(hex) || hex.length % 2 !== 0 || (hex.length !== 8 && hex.length !== 32)) return this.invalid(question);
    const bytes = Uint8Array.from(hex.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
    const ttl = secondsOf(this.options.config.nodeTtlMs);
    const isV4 = bytes.length === 4;
    const record: ResourceRecord = {
      name: question.name,
      type: isV4 ? RR_TYPE.A : RR_TYPE.AAAA,
      class: RR_CLASS.IN,
      ttl,
      data: isV4 ? { kind: 'a', address: bytes.join('.') } : { kind: 'aaaa', address: formatIpv6(bytes) },
    };
    const isAsked = question.type === record.type || question.type === RR_TYPE.ANY;
    (isAsked ? reply.answers : reply.additionals).push(record);
    return 'ok';
  }

  // -- SOA, NS ---------------------------------------------------------------------------------

  private soaRecord(questionName: string): ResourceRecord {
    const { soa } = this.options.config;
    // Consul picks the alternative domain only for names strictly below it.
    const domain = this.options.altDomain !== '' && questionName.endsWith(`.${this.options.altDomain}`) ? this.options.altDomain : this.options.domain;
    return {
      name: domain,
      type: RR_TYPE.SOA,
      class: RR_CLASS.IN,
      ttl: soa.minTtl,
      data: {
        kind: 'soa',
        mname: `ns.${domain}`,
        rname: `hostmaster.${domain}`,
        serial: Math.floor(this.options.nowMs() / 1000) >>> 0,
        refresh: soa.refresh,
        retry: soa.retry,
        expire: soa.expire,
        minimum: soa.minTtl,
      },
    };
  }

  /** getNameserversAndNodeRecord: up to three random healthy servers as NS, their addresses as glue. */
  private async nameservers(questionName: string): Promise<{ ns: ResourceRecord[]; glue: ResourceRecord[] }> {
    const ns: ResourceRecord[] = [];
    const glue: ResourceRecord[] = [];
    let servers: CheckServiceNode[];
    try {
      servers = (await this.healthyInstances({ datacenter: this.options.datacenter, service: CONSUL_SERVICE_NAME, tag: '' })).instances.slice();
    } catch (error) {
      this.options.logger.warn('Unable to get list of servers', { error: String(error) });
      return { ns, glue };
    }
    if (servers.length === 0) this.options.logger.warn('no servers found');
    shuffle(servers, this.options.rng);
    const responseDomain = this.responseDomain(questionName);
    const ttl = secondsOf(this.options.config.nodeTtlMs);
    for (const server of servers) {
      const name = server.Node.Node;
      if (INVALID_DNS_NAME.test(name)) {
        this.options.logger.warn('Skipping invalid node for NS records', { node: name });
        continue;
      }
      const target = fqdn(`${name}.node.${server.Node.Datacenter}.${responseDomain}`.toLowerCase());
      ns.push({ name: responseDomain, type: RR_TYPE.NS, class: RR_CLASS.IN, ttl, data: { kind: 'ns', target } });
      glue.push(...(await this.nodeRecords(server.Node, RR_TYPE.ANY, target, ttl, CNAME_DEPTH_MAX)));
      if (ns.length >= NAMESERVERS_MAX) break;
    }
    return { ns, glue };
  }

  // -- Reverse lookups -------------------------------------------------------------------------

  /**
   * handlePtr: any name under arpa. A node whose address reverses to the name answers first,
   * else a service instance at that address; else recursion, else NXDOMAIN. Names are in the
   * primary domain. Not trimmed, as in Consul.
   */
  private async handlePtr(header: DnsHeader, question: DnsQuestion, opt: ResourceRecord | undefined, transport: DnsTransport, raw: Uint8Array): Promise<DnsMessage | Uint8Array> {
    const { domain, datacenter } = this.options;
    const reply = this.newReply(header, question);
    if (question.type === RR_TYPE.SOA) reply.authorities.push(this.soaRecord(question.name));
    const name = question.name.toLowerCase();
    const ptr = (target: string): ResourceRecord => ({ name: question.name, type: RR_TYPE.PTR, class: RR_CLASS.IN, ttl: 0, data: { kind: 'ptr', target } });
    const request = this.readRequest(datacenter);
    const nodes = await this.options.catalog.nodes(request).catch(() => [] as readonly NodeRecord[]);
    const node = nodes.find((candidate) => reverseName(candidate.Address) === name);
    if (node !== undefined) reply.answers.push(ptr(nodeFqdn(node.Node, node.Datacenter, domain)));
    if (reply.answers.length === 0) {
      const address = ipOfReverseName(name);
      if (address !== undefined) {
        const services = await this.options.catalog.servicesAtAddress({ ...request, address }).catch(() => [] as readonly ServiceNode[]);
        const match = services[0];
        if (match !== undefined) reply.answers.push(ptr(`${match.Service.Service}.service.${match.Node.Datacenter}.${domain}`));
      }
    }
    if (reply.answers.length === 0) {
      if (this.options.recursor !== undefined) return this.recurse(header, question, opt, transport, raw);
      reply.header.rcode = RCODE.NXDOMAIN;
      reply.authorities.push(this.soaRecord(question.name));
    }
    appendEdns(opt, reply);
    return reply;
  }

  // -- Recursion -------------------------------------------------------------------------------

  /** handleRecurse: the query as received goes to each recursor in turn; the first good reply is relayed. */
  private async recurse(header: DnsHeader, question: DnsQuestion, opt: ResourceRecord | undefined, transport: DnsTransport, raw: Uint8Array): Promise<DnsMessage | Uint8Array> {
    const recursor = this.options.recursor;
    assert.ok(recursor !== undefined, 'recurse is only called with recursors');
    const relayed = await recursor.forward(raw, transport);
    if (relayed !== undefined) return relayed;
    this.options.logger.error('all resolvers failed for question from client', { question: question.name });
    const failed = replyTo({ header, questions: [question] });
    failed.header.rcode = RCODE.SERVFAIL;
    failed.header.isRecursionAvailable = true;
    appendEdns(opt, failed);
    return failed;
  }

  // -- Helpers that need the configuration -----------------------------------------------------

  private newReply(header: DnsHeader, question: DnsQuestion): DnsMessage {
    const reply = replyTo({ header, questions: [question] });
    reply.header.isAuthoritative = true;
    reply.header.isRecursionAvailable = this.options.recursor !== undefined;
    return reply;
  }

  private readRequest(datacenter: string): DnsReadRequest {
    const { config } = this.options;
    return { datacenter, allowStale: config.allowStale, maxStaleMs: config.maxStaleMs };
  }

  /** getResponseDomain: the longest suffix of the question that is one of our domains, in the question's case. */
  private responseDomain(questionName: string): string {
    const lower = questionName.toLowerCase();
    for (const zone of this.zones) {
      if (lower === zone) return questionName;
      const cut = questionName.length - zone.length;
      // The zone must start a label: after a dot that is not itself escaped ("a\.consul.").
      if (lower.endsWith(zone) && questionName[cut - 1] === '.' && questionName[cut - 2] !== '\\') return questionName.slice(cut);
    }
    return this.options.domain;
  }

  private nodeTarget(node: NodeRecord, datacenter: string, responseDomain: string): string {
    const scope = datacenter === this.options.datacenter ? responseDomain : `${datacenter}\x00${responseDomain}`;
    let targets = this.nodeTargets.get(scope);
    if (targets === undefined) {
      if (this.nodeTargets.size >= PARSED_NAMES_MAX) this.nodeTargets.clear();
      targets = new WeakMap();
      this.nodeTargets.set(scope, targets);
    }
    let target = targets.get(node);
    if (target === undefined) {
      target = nodeFqdn(node.Node, datacenter, responseDomain);
      targets.set(node, target);
    }
    return target;
  }

  /** The question's name split into kind, parts and suffixes; remembered, as resolvers ask the same names again and again. */
  private parsedName(question: DnsQuestion): ParsedName | undefined {
    const isSrv = question.type === RR_TYPE.SRV;
    const key = isSrv ? `S${question.name}` : question.name;
    let parsed = this.parsedNames.get(key);
    if (parsed === undefined) {
      parsed = parseQueryName(splitLabels(this.trimDomain(question.name.toLowerCase())), question.type) ?? null;
      if (this.parsedNames.size >= PARSED_NAMES_MAX) this.parsedNames.clear();
      this.parsedNames.set(key, parsed);
    }
    return parsed ?? undefined;
  }

  /** trimDomain: the lower-cased name without our domain (the longer of the two, when both match). */
  private trimDomain(name: string): string {
    const [longer, shorter] = this.options.altDomain.length > this.options.domain.length ? [this.options.altDomain, this.options.domain] : [this.options.domain, this.options.altDomain || '.'];
    if (name.endsWith(`.${longer.replace(/^\.+/, '')}`)) return name.slice(0, -longer.length);
    return name.endsWith(shorter) ? name.slice(0, -shorter.length) : name;
  }
}

/** A running DNS listener pair (UDP and TCP on one address). */
export interface DnsListener {
  readonly udpPort: number;
  readonly tcpPort: number;
  close(): Promise<void>;
}

/** Binds UDP and TCP on host:port (port 0 picks one, the TCP listener then takes the UDP port). */
export async function listenDns(host: string, port: number, resolver: DnsResolver, logger: Logger): Promise<DnsListener> {
  const udp = await bindUdp(host, port, resolver, logger);
  let tcp: TcpServer;
  try {
    tcp = await bindTcp(host, udp.address().port, resolver, logger);
  } catch (error) {
    udp.close();
    throw error;
  }
  const address = tcp.address();
  assert.ok(address !== null && typeof address === 'object', 'a bound TCP server has an address');
  const connections = tcpConnections.get(tcp) ?? new Set<Socket>();
  return {
    udpPort: udp.address().port,
    tcpPort: address.port,
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      for (const socket of connections) socket.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Private helpers: message screening and EDNS

type Outcome = 'ok' | 'nodata' | 'nxdomain' | 'servfail';

interface ServiceLookup {
  readonly datacenter: string;
  readonly service: string;
  readonly tag: string;
}

/** What a service answer is built for: the query's EDNS0, CNAME depth left, and how many answers can be used. */
interface AnswerShape {
  readonly hasEdns: boolean;
  readonly depth: number;
  readonly answersMax: number;
}

interface RecordPair {
  readonly answers: ResourceRecord[];
  readonly extra: ResourceRecord[];
}

const NO_RECORDS: RecordPair = Object.freeze({ answers: [], extra: [] }) as unknown as RecordPair;
const CONSUL_SERVICE_NAME = 'consul';
/** dnsutil.InvalidNameRe: node names that cannot be a DNS label are skipped as nameservers. */
const INVALID_DNS_NAME = /[^A-Za-z0-9-]+/;
const HEADER_BYTES = 12;
/** EDNS0 client subnet option code (RFC 7871). */
const EDNS_CLIENT_SUBNET = 8;

/**
 * miekg/dns's defaultMsgAcceptFunc on the raw header: responses and runts are ignored, opcodes
 * other than QUERY and NOTIFY get NOTIMP, and a message that is not one question (with at most
 * one answer, one authority and two additional records) gets FORMERR.
 */
function screenMessage(bytes: Uint8Array): 'accept' | DnsReply {
  if (bytes.length < HEADER_BYTES) return undefined;
  const flags = ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0);
  if ((flags & 0x8000) !== 0) return undefined;
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== OPCODE.QUERY && opcode !== OPCODE.NOTIFY) return formatErrorReply(bytes, RCODE.NOTIMP);
  if (readU16(bytes, 4) !== 1 || readU16(bytes, 6) > 1 || readU16(bytes, 8) > 1 || readU16(bytes, 10) > 2) return formatErrorReply(bytes, RCODE.FORMERR);
  return 'accept';
}

function readU16(bytes: Uint8Array, at: number): number {
  return ((bytes[at] ?? 0) << 8) | (bytes[at + 1] ?? 0);
}

/** The reply to a message we refuse to read: its ID, QR, the opcode for NOTIMP (QUERY otherwise), the rcode, no sections. */
function formatErrorReply(bytes: Uint8Array, rcode: number): Uint8Array {
  const id = ((bytes[0] ?? 0) << 8) | (bytes[1] ?? 0);
  const flags = ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0);
  const opcode = rcode === RCODE.NOTIMP ? (flags >> 11) & 0xf : OPCODE.QUERY;
  const reply = queryMessage(id, { name: '.', type: 0, class: 0 });
  reply.questions = [];
  reply.header = { ...reply.header, isResponse: true, opcode, isRecursionDesired: (flags & 0x0100) !== 0, isCheckingDisabled: (flags & 0x0010) !== 0, rcode };
  return encodeMessage(reply, { compress: false });
}

/** setEDNS: the reply advertises the request's UDP size and echoes its client-subnet option, scope 0 (global). */
function appendEdns(opt: ResourceRecord | undefined, reply: DnsMessage): void {
  if (opt === undefined || opt.data.kind !== 'opt') return;
  const options = [];
  const subnet = opt.data.options.find((option) => option.code === EDNS_CLIENT_SUBNET);
  if (subnet !== undefined && subnet.data.length >= 4) {
    const data = Uint8Array.from(subnet.data);
    data[3] = 0;
    options.push({ code: EDNS_CLIENT_SUBNET, data });
  }
  reply.additionals.push({ name: '.', type: RR_TYPE.OPT, class: opt.class, ttl: 0, data: { kind: 'opt', options } });
}

/** Runs `next` on a value now, or when it arrives. */
function andThen<T, U>(value: MaybePromise<T>, next: (value: T) => MaybePromise<U>): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

function rcodeOf(outcome: Outcome): number {
  switch (outcome) {
    case 'ok':
    case 'nodata':
      return RCODE.NOERROR;
    case 'nxdomain':
      return RCODE.NXDOMAIN;
    case 'servfail':
      return RCODE.SERVFAIL;
  }
}

function lookupFailure(error: unknown): Outcome {
  return error instanceof DnsLookupError && error.code === 'ERR_NO_PATH' ? 'nxdomain' : 'servfail';
}

// ---------------------------------------------------------------------------------------------
// Private helpers: names

/** Splits presentation text on unescaped dots (miekg's SplitDomainName); the root has no labels. */
function splitLabels(name: string): string[] {
  const labels: string[] = [];
  let start = 0;
  for (let i = 0; i < name.length; i++) {
    const char = name.charCodeAt(i);
    if (char === 0x5c) {
      i++;
      continue;
    }
    if (char !== 0x2e) continue;
    if (i > start) labels.push(name.slice(start, i));
    start = i + 1;
  }
  if (start < name.length) labels.push(name.slice(start));
  return labels;
}

/** Whether `name` is `zone` or below it (both lower case, fully qualified). */
function isWithin(name: string, zone: string): boolean {
  return zone === '.' || name === zone || name.endsWith(`.${zone}`);
}

function fqdn(name: string): string {
  return name.endsWith('.') ? name : `${name}.`;
}

type QueryKind = 'service' | 'connect' | 'virtual' | 'ingress' | 'node' | 'query' | 'addr';
const QUERY_KINDS: ReadonlySet<string> = new Set<QueryKind>(['service', 'connect', 'virtual', 'ingress', 'node', 'query', 'addr']);

/** The rightmost kind label splits the name; an SRV question may leave out `.service` (RFC 2782 form). */
/** A query name taken apart: the lookup kind, the labels before it and the labels after it. */
interface ParsedName {
  readonly kind: QueryKind;
  readonly parts: readonly string[];
  readonly suffixes: readonly string[];
}

function parseQueryName(labels: readonly string[], type: number): ParsedName | undefined {
  for (let i = labels.length - 1; i >= 0; i--) {
    const label = labels[i] ?? '';
    if (QUERY_KINDS.has(label)) return { kind: label as QueryKind, parts: labels.slice(0, i), suffixes: labels.slice(i + 1) };
    if (type === RR_TYPE.SRV && label.startsWith('_')) return { kind: 'service', parts: labels.slice(0, i + 1), suffixes: labels.slice(i + 1) };
  }
  return undefined;
}

/** dns_ce.go parseLocality: nothing, `<dc>`, `<dc>.dc` or `<peer>.peer` (and pairs of the last two). */
function parseLocality(labels: readonly string[]): { datacenter: string; peer: string } | undefined {
  if (labels.length === 0) return { datacenter: '', peer: '' };
  if (labels.length === 1) return { datacenter: labels[0] ?? '', peer: '' };
  if (labels.length !== 2 && labels.length !== 4) return undefined;
  let datacenter = '';
  let peer = '';
  for (let i = 0; i < labels.length; i += 2) {
    const value = labels[i] ?? '';
    const kind = labels[i + 1];
    if (kind === 'dc') datacenter = value;
    else if (kind === 'peer') peer = value;
    else return undefined;
  }
  if (datacenter !== '' && peer !== '') return undefined;
  return { datacenter, peer };
}

function nodeFqdn(node: string, datacenter: string, domain: string): string {
  return `${node}.node.${datacenter}.${domain}`;
}

/** dns.ReverseAddr: the in-addr.arpa / ip6.arpa name of an IP address, or '' for anything else. */
function reverseName(address: string): string {
  const ip = parseIp(address);
  if (ip === undefined) return '';
  if (ip.bytes.length === 4) return `${[...ip.bytes].reverse().join('.')}.in-addr.arpa.`;
  const nibbles: string[] = [];
  for (let i = ip.bytes.length - 1; i >= 0; i--) {
    const byte = ip.bytes[i] ?? 0;
    nibbles.push((byte & 0xf).toString(16), (byte >> 4).toString(16));
  }
  return `${nibbles.join('.')}.ip6.arpa.`;
}

/** dnsutil.IPFromARPA: the address text (Go's net.IP String form) a full reverse name stands for. */
function ipOfReverseName(name: string): string | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa\.$/.exec(name);
  if (v4) {
    const octets = v4.slice(1, 5).reverse().map(Number);
    return octets.every((octet) => octet <= 255) ? octets.join('.') : undefined;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa\.$/.exec(name);
  if (!v6) return undefined;
  const nibbles = (v6[1] ?? '').split('.').filter((nibble) => nibble !== '').reverse();
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = Number.parseInt(`${nibbles[2 * i]}${nibbles[2 * i + 1]}`, 16);
  return formatIpv6(bytes);
}

// ---------------------------------------------------------------------------------------------
// Private helpers: addresses and records

/** Where an instance's records point (makeNodeServiceRecords' cases). */
type AddressPlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'node'; readonly ip: ParsedIp }
  | { readonly kind: 'ip'; readonly ip: ParsedIp }
  | { readonly kind: 'hostname'; readonly name: string };

const NO_ADDRESS: AddressPlan = { kind: 'none' };

/** makeNodeServiceRecords' choice: the service address if it has one, else the node's; an IP, or a hostname to resolve. */
function addressPlan(instance: CheckServiceNode, question: DnsQuestion): AddressPlan {
  const accept = acceptFor(question.type);
  const serviceAddress = translateServiceAddress(instance.Service, accept);
  const nodeAddress = translateAddress(instance.Node, accept);
  if (serviceAddress === '' && nodeAddress === '') return NO_ADDRESS;
  const nodeIp = parseIp(nodeAddress);
  if (serviceAddress === '' && nodeIp !== undefined) {
    // A translated (tagged) node address is named by its IP, not by the node.
    return instance.Node.Address !== nodeAddress ? { kind: 'ip', ip: nodeIp } : { kind: 'node', ip: nodeIp };
  }
  if (serviceAddress === '') return { kind: 'hostname', name: fqdn(nodeAddress) };
  const serviceIp = parseIp(serviceAddress);
  if (serviceIp !== undefined) return { kind: 'ip', ip: serviceIp };
  // A service whose address is the very name asked for would answer itself: use the node's IP.
  if (fqdn(serviceAddress) === question.name && nodeIp !== undefined) return { kind: 'node', ip: nodeIp };
  return { kind: 'hostname', name: fqdn(serviceAddress) };
}

/** The healthy instances of one catalog answer, and whether any address among them is not an IP. */
interface HealthyInstances {
  readonly instances: readonly CheckServiceNode[];
  readonly hasHostnames: boolean;
  /** Whether two instances share node, address and port (SRV answers keep one of each). */
  readonly hasRepeatedEndpoints: boolean;
}

/** addServiceSRVRecordsToMessage's de-duplication key: node, translated address, port. */
function endpointKey(instance: CheckServiceNode): string {
  return `${instance.Node.Node}:${translateServiceAddress(instance.Service, ACCEPT_ANY)}:${instance.Service.Port}`;
}

const NO_HOSTNAMES: ReadonlySet<string> = new Set();

function hasHostnameAddress(instance: CheckServiceNode): boolean {
  const { Node: node, Service: service } = instance;
  const addresses = [node.Address, service.Address, ...Object.values(node.TaggedAddresses), ...Object.values(service.TaggedAddresses).map((tagged) => tagged.Address)];
  return addresses.some((address) => address !== '' && parseIp(address) === undefined);
}

/** Whether an object has an own enumerable key, without building the key list. */
function hasAnyKey(object: Readonly<Record<string, string>>): boolean {
  for (const key in object) if (Object.hasOwn(object, key)) return true;
  return false;
}

function hostnamesToResolve(instances: readonly CheckServiceNode[], question: DnsQuestion): Set<string> {
  const hostnames = new Set<string>();
  for (const instance of instances) {
    const plan = addressPlan(instance, question);
    if (plan.kind === 'hostname') hostnames.add(plan.name);
  }
  return hostnames;
}

/** What building one service answer needs besides the instance. */
interface RecordContext {
  readonly lookup: ServiceLookup;
  readonly question: DnsQuestion;
  readonly ttl: number;
  /** resolveCNAME's records for each hostname address among the instances. */
  readonly resolved: ReadonlyMap<string, readonly ResourceRecord[]>;
  readonly hasEdns: boolean;
  readonly responseDomain: string;
  /** `<node>.node.<dc>.<response domain>`, the SRV target for a node. */
  nodeTarget(node: NodeRecord): string;
}

const NOTHING_RESOLVED: ReadonlyMap<string, readonly ResourceRecord[]> = new Map();

/** makeNodeServiceRecords: the records for one instance (answers, and Additional for SRV). */
function instanceRecords(context: RecordContext, instance: CheckServiceNode): RecordPair {
  const { question, ttl, lookup } = context;
  const plan = addressPlan(instance, question);
  switch (plan.kind) {
    case 'none':
      return NO_RECORDS;
    case 'hostname':
      return hostnameRecords(context, instance, plan.name);
    case 'node':
    case 'ip': {
      // makeRecordFromServiceNode / makeRecordFromIP: an SRV targets the node's name or
      // `<hex ip>.addr.<dc>.<domain>`, with the address in Additional.
      if (question.type !== RR_TYPE.SRV) {
        const address = addressRecord(question.type, plan.ip, ttl, question.name);
        return address === undefined ? NO_RECORDS : { answers: [address], extra: [] };
      }
      const target = plan.kind === 'node' ? context.nodeTarget(instance.Node) : `${hexOfIp(plan.ip)}.addr.${lookup.datacenter}.${context.responseDomain}`;
      const address = addressRecord(question.type, plan.ip, ttl, target);
      assert.ok(address !== undefined, 'an SRV answer takes addresses of either family');
      return { answers: [srvRecord(question.name, ttl, instance, target)], extra: [address] };
    }
  }
}

/** makeRecordFromFQDN: a hostname address is a CNAME (or the SRV target) followed by what it resolved to. */
function hostnameRecords(context: RecordContext, instance: CheckServiceNode, hostname: string): RecordPair {
  const { question, ttl } = context;
  const additional: ResourceRecord[] = [];
  for (const record of context.resolved.get(hostname) ?? []) {
    if (record.type !== RR_TYPE.CNAME && record.type !== RR_TYPE.A && record.type !== RR_TYPE.AAAA) continue;
    additional.push({ ...record, ttl });
    if (additional.length === CNAME_RECORDS_MAX && !context.hasEdns) break;
  }
  if (question.type === RR_TYPE.SRV) return { answers: [srvRecord(question.name, ttl, instance, hostname)], extra: additional };
  const cname: ResourceRecord = { name: question.name, type: RR_TYPE.CNAME, class: RR_CLASS.IN, ttl, data: { kind: 'cname', target: hostname } };
  return { answers: [cname, ...additional], extra: [] };
}

/** dnsutil.TranslateAddressAccept bits. */
const ACCEPT_DOMAIN = 1;
const ACCEPT_V4 = 2;
const ACCEPT_V6 = 4;
const ACCEPT_ANY = ACCEPT_DOMAIN | ACCEPT_V4 | ACCEPT_V6;

function acceptFor(type: number): number {
  if (type === RR_TYPE.A) return ACCEPT_DOMAIN | ACCEPT_V4;
  if (type === RR_TYPE.AAAA) return ACCEPT_DOMAIN | ACCEPT_V6;
  return ACCEPT_ANY;
}

/** TranslateAddress in the local datacenter: the tagged lan_ipv6/lan_ipv4 address the type wants, else the node address. */
function translateAddress(node: NodeRecord, accept: number): string {
  return translateAccept(accept, node.Address, node.TaggedAddresses['lan_ipv4'] ?? '', node.TaggedAddresses['lan_ipv6'] ?? '');
}

function translateServiceAddress(service: CheckServiceNode['Service'], accept: number): string {
  const tagged = service.TaggedAddresses;
  return translateAccept(accept, service.Address, tagged['lan_ipv4']?.Address ?? '', tagged['lan_ipv6']?.Address ?? '');
}

/**
 * translateAddressAccept: a tagged lan_ipv6 or lan_ipv4 address the question can use, else the
 * plain address. Consul tests `accept & AcceptAny` there, and AcceptAny is every bit, so the plain
 * address wins whatever the question (an AAAA question about an IPv4 node then gets no record).
 */
function translateAccept(accept: number, fallback: string, v4: string, v6: string): string {
  if ((accept & ACCEPT_V6) !== 0 && v6 !== '') return v6;
  if ((accept & ACCEPT_V4) !== 0 && v4 !== '') return v4;
  return fallback;
}

interface ParsedIp {
  /** 4 bytes for IPv4 (and IPv4-mapped IPv6, as Go's To4 sees it), else 16. */
  readonly bytes: Uint8Array;
  readonly text: string;
}

/** Parsed addresses, reused across answers: a service lookup parses every instance's address. */
const parsedIps = new Map<string, ParsedIp | null>();
/** Entries kept in parsedIps before it is emptied (the catalog's distinct addresses usually fit). */
const PARSED_IPS_MAX = 16_384;

function parseIp(text: string): ParsedIp | undefined {
  const cached = parsedIps.get(text);
  if (cached !== undefined) return cached ?? undefined;
  const parsed = parseIpUncached(text);
  if (parsedIps.size >= PARSED_IPS_MAX) parsedIps.clear();
  parsedIps.set(text, parsed ?? null);
  return parsed;
}

function parseIpUncached(text: string): ParsedIp | undefined {
  const family = isIP(text);
  if (family === 4) return { bytes: Uint8Array.from(text.split('.'), Number), text };
  if (family !== 6) return undefined;
  const bytes = ipv6Bytes(text);
  if (bytes === undefined) return undefined;
  const isMapped = bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isMapped) {
    const v4 = bytes.subarray(12);
    return { bytes: Uint8Array.from(v4), text: v4.join('.') };
  }
  return { bytes, text: formatIpv6(bytes) };
}

function hexOfIp(ip: ParsedIp): string {
  return Array.from(ip.bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** makeARecord: A for IPv4 and AAAA for IPv6, only when the question's type can hold it. */
function addressRecord(type: number, ip: ParsedIp, ttl: number, name: string): ResourceRecord | undefined {
  const isLoose = type === RR_TYPE.SRV || type === RR_TYPE.ANY || type === RR_TYPE.NS || type === RR_TYPE.TXT;
  if (ip.bytes.length === 4) {
    if (!isLoose && type !== RR_TYPE.A) return undefined;
    return { name, type: RR_TYPE.A, class: RR_CLASS.IN, ttl, data: { kind: 'a', address: ip.text } };
  }
  if (!isLoose && type !== RR_TYPE.AAAA) return undefined;
  return { name, type: RR_TYPE.AAAA, class: RR_CLASS.IN, ttl, data: { kind: 'aaaa', address: ip.text } };
}

function srvRecord(name: string, ttl: number, instance: CheckServiceNode, target: string): ResourceRecord {
  return { name, type: RR_TYPE.SRV, class: RR_CLASS.IN, ttl, data: { kind: 'srv', priority: 1, weight: srvWeight(instance), port: instance.Service.Port, target } };
}

/** findWeight: Weights.Passing or Weights.Warning by the instance's aggregate health; 1 for an unknown status. */
function srvWeight(instance: CheckServiceNode): number {
  let isWarning = false;
  for (const check of instance.Checks) {
    if (check.ServiceName !== instance.Service.Service && check.ServiceName !== '') continue;
    if (check.CheckID === NODE_MAINTENANCE || check.CheckID.startsWith(SERVICE_MAINTENANCE_PREFIX) || check.Status === 'critical') return 0;
    if (check.Status === 'warning') isWarning = true;
    else if (check.Status !== 'passing') return 1;
  }
  return (isWarning ? instance.Service.Weights.Warning : instance.Service.Weights.Passing) & 0xffff;
}

const NODE_MAINTENANCE = '_node_maintenance';
const SERVICE_MAINTENANCE_PREFIX = '_service_maintenance:';

/** CheckServiceNodes.Filter: no critical check; with only_passing, every check passing. */
function isHealthy(instance: CheckServiceNode, onlyPassing: boolean): boolean {
  for (const check of instance.Checks) {
    if (check.Status === 'critical' || (onlyPassing && check.Status !== 'passing')) return false;
  }
  return true;
}

/** Node meta as RFC 1464 TXT records; keys starting `rfc1035-` give the bare value. */
function nodeMetaTxt(name: string, node: NodeRecord, ttl: number): ResourceRecord[] {
  return Object.entries(node.Meta).map(([key, value]) => ({
    name,
    type: RR_TYPE.TXT,
    class: RR_CLASS.IN,
    ttl,
    data: { kind: 'txt', strings: [key.toLowerCase().startsWith('rfc1035-') ? value : rfc1464(key, value)] },
  }));
}

/** encodeKVasRFC1464: backquote-escape backquotes and `=` in the key, its leading and trailing spaces, and backquotes in the value. */
function rfc1464(key: string, value: string): string {
  let escaped = key.replaceAll('`', '``').replaceAll('=', '`=');
  escaped = escaped.replace(/^ +/, (spaces) => '` '.repeat(spaces.length));
  escaped = escaped.replace(/ +$/, (spaces) => '` '.repeat(spaces.length));
  return `${escaped}=${value.replaceAll('`', '``')}`;
}

/** The TTL of a service: an exact service_ttl entry, else the longest matching `prefix*` entry, else 0. */
function serviceTtlSeconds(config: DnsConfig, service: string): number {
  const exact = config.serviceTtlMs[service];
  if (exact !== undefined && !service.endsWith('*')) return secondsOf(exact);
  let best = -1;
  let ttlMs = 0;
  for (const [key, value] of Object.entries(config.serviceTtlMs)) {
    if (!key.endsWith('*')) continue;
    const prefix = key.slice(0, -1);
    if (service.startsWith(prefix) && prefix.length > best) {
      best = prefix.length;
      ttlMs = value;
    }
  }
  return secondsOf(ttlMs);
}

function secondsOf(ms: number): number {
  return Math.min(Math.floor(ms / 1000), 0xffffffff);
}

/** The identity of an answer's first record among the heads of one service answer (see addServiceNodeRecords). */
function headKey(record: ResourceRecord): string {
  const { data } = record;
  switch (data.kind) {
    case 'a':
    case 'aaaa':
      return data.address;
    case 'cname':
      return data.target;
    default:
      return `${record.type}\x00${JSON.stringify(data)}`;
  }
}

/** Fisher-Yates one step at a time: swaps a random one of items[i..] into place i and returns it. */
function drawRandom<T>(items: T[], i: number, rng: Rng): T {
  const j = i + Math.floor(rng() * (items.length - i));
  const item = items[j] as T;
  items[j] = items[i] as T;
  items[i] = item;
  return item;
}

function shuffle<T>(items: T[], rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const item = items[i] as T;
    items[i] = items[j] as T;
    items[j] = item;
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers: trimming (Consul's trimUDPResponse, trimTCPResponse, syncExtra)

/** trimUDPResponse. Returns whether answers were dropped. */
function trimUdp(reply: DnsMessage, opt: ResourceRecord | undefined, udpAnswerLimit: number, compress: boolean): boolean {
  const answerCount = reply.answers.length;
  const hasExtra = reply.additionals.length > 0;
  let sizeMax = UDP_PAYLOAD_BYTES_DEFAULT;
  if (opt !== undefined && opt.class > sizeMax) sizeMax = opt.class;
  sizeMax = Math.min(sizeMax, UDP_PAYLOAD_BYTES_MAX);
  const index = hasExtra ? new ExtraIndex(reply.additionals) : undefined;
  const answersMax = Math.min(UDP_ANSWERS_MAX, udpAnswerLimit);
  let isCompressedForSize = compress;
  if (sizeMax === UDP_PAYLOAD_BYTES_DEFAULT && answerCount > answersMax) {
    // Sized uncompressed, so a downstream server that expands the names still fits in 512.
    isCompressedForSize = false;
    reply.answers = reply.answers.slice(0, answersMax);
    if (index) syncExtra(index, reply);
  }
  shrinkToFit(reply, sizeMax - 8, sizeMax, index, isCompressedForSize);
  return reply.answers.length < answerCount;
}

/** trimTCPResponse. Returns whether the size loop dropped answers. */
function trimTcp(reply: DnsMessage, type: number, compress: boolean): boolean {
  const answersMax = type === RR_TYPE.SRV ? TCP_SRV_ANSWERS_MAX : TCP_ANSWERS_MAX;
  if (reply.answers.length > answersMax) reply.answers = reply.answers.slice(0, answersMax);
  const index = reply.additionals.length > 0 ? new ExtraIndex(reply.additionals) : undefined;
  return shrinkToFit(reply, TCP_REPLY_BYTES_MAX, TCP_REPLY_BYTES_MAX, index, compress);
}

/** The shared size loop: drop NS first, then answers (binary search when far over), keeping Additional in step. */
function shrinkToFit(reply: DnsMessage, limit: number, searchLimit: number, index: ExtraIndex | undefined, compress: boolean): boolean {
  let isTrimmed = false;
  let length = messageLength(reply, compress);
  while (reply.answers.length > 1 && length > limit) {
    isTrimmed = true;
    if (reply.authorities.length !== 0) {
      reply.authorities = [];
      length = messageLength(reply, compress);
    }
    if (length - searchLimit > 100) reply.answers = reply.answers.slice(0, binaryTruncate(reply, searchLimit, index, compress));
    else reply.answers = reply.answers.slice(0, -1);
    if (index) syncExtra(index, reply);
    length = messageLength(reply, compress);
  }
  return isTrimmed;
}

/** dnsBinaryTruncate: the number of answers that fits `sizeMax`, found by bisection. */
function binaryTruncate(reply: DnsMessage, sizeMax: number, index: ExtraIndex | undefined, compress: boolean): number {
  const all = reply.answers;
  let low = 0;
  let high = all.length + 1;
  while (high - low > 1) {
    const middle = low + Math.floor((high - low) / 2);
    reply.answers = all.slice(0, middle);
    if (index) syncExtra(index, reply);
    const length = messageLength(reply, compress);
    if (length <= sizeMax) {
      if (sizeMax - length < 10) {
        reply.answers = all;
        return middle;
      }
      low = middle;
    } else {
      high = middle;
    }
  }
  reply.answers = all;
  return low;
}

/** Additional sections up to this size are searched in place rather than indexed. */
const EXTRA_SCAN_MAX = 32;

/** indexRRs: the first additional record of each (lower-cased) owner name, built only if trimming needs it. */
class ExtraIndex {
  private byName: Map<string, ResourceRecord> | undefined;

  constructor(private readonly records: readonly ResourceRecord[]) {}

  get(name: string): ResourceRecord | undefined {
    if (this.records.length <= EXTRA_SCAN_MAX) {
      for (const record of this.records) if (record.name === name || record.name.toLowerCase() === name) return record;
      return undefined;
    }
    if (this.byName === undefined) {
      this.byName = new Map();
      for (const record of this.records) {
        const key = record.name.toLowerCase();
        if (!this.byName.has(key)) this.byName.set(key, record);
      }
    }
    return this.byName.get(name);
  }
}

/** syncExtra: Additional becomes exactly the records for the SRV targets left in Answer, following CNAMEs. */
function syncExtra(index: ExtraIndex, reply: DnsMessage): void {
  const extra: ResourceRecord[] = [];
  const resolved = new Set<string>();
  for (const answer of reply.answers) {
    if (answer.data.kind !== 'srv') continue;
    let target: string | undefined = answer.data.target.toLowerCase();
    while (target !== undefined && !resolved.has(target)) {
      resolved.add(target);
      const record = index.get(target);
      target = undefined;
      if (record === undefined) break;
      extra.push(record);
      if (record.data.kind === 'cname') target = record.data.target.toLowerCase();
    }
  }
  reply.additionals = extra;
}

/** Wire length of the reply: arithmetic when uncompressed, an encode when compressed. */
function messageLength(reply: DnsMessage, compress: boolean): number {
  if (compress) return encodeMessage(reply, { compress: true }).length;
  let length = HEADER_BYTES;
  for (const question of reply.questions) length += nameLength(question.name) + 4;
  for (const section of [reply.answers, reply.authorities, reply.additionals]) {
    for (const record of section) length += nameLength(record.name) + 10 + rdataLength(record.data);
  }
  return length;
}

/** Wire lengths of names measured before: answers repeat their owners and targets. */
const nameLengths = new Map<string, number>();
/** Names remembered in nameLengths before it is emptied. */
const NAME_LENGTHS_MAX = 4_096;

function nameLength(name: string): number {
  let length = nameLengths.get(name);
  if (length === undefined) {
    length = nameWireLength(name);
    if (nameLengths.size >= NAME_LENGTHS_MAX) nameLengths.clear();
    nameLengths.set(name, length);
  }
  return length;
}

function rdataLength(data: RecordData): number {
  switch (data.kind) {
    case 'a':
      return 4;
    case 'aaaa':
      return 16;
    case 'cname':
    case 'ns':
    case 'ptr':
      return nameLength(data.target);
    case 'srv':
      return 6 + nameLength(data.target);
    case 'txt':
      return data.strings.reduce((sum, text) => {
        const bytes = Buffer.byteLength(text);
        return sum + bytes + Math.max(1, Math.ceil(bytes / 255));
      }, 0);
    case 'soa':
      return nameLength(data.mname) + nameLength(data.rname) + 20;
    case 'opt':
      return data.options.reduce((sum, option) => sum + 4 + option.data.length, 0);
    case 'raw':
      return data.bytes.length;
  }
}

// ---------------------------------------------------------------------------------------------
// Private helpers: sockets

const tcpConnections = new WeakMap<TcpServer, Set<Socket>>();
/** Bytes read ahead of the query being answered on one TCP connection. */
const TCP_BUFFERED_BYTES_MAX = 2 * (2 + 65_535);

function bindUdp(host: string, port: number, resolver: DnsResolver, logger: Logger): Promise<UdpSocket> {
  const socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', reuseAddr: false });
  socket.on('message', (message, remote) => {
    const send = (reply: DnsReply): void => {
      if (reply !== undefined) socket.send(reply, remote.port, remote.address);
    };
    const fail = (error: unknown): void => logger.error('DNS query failed', { error: String(error), client: `${remote.address}:${remote.port}` });
    try {
      const reply = resolver.answerBytes(message, 'udp');
      if (reply instanceof Promise) reply.then(send, fail);
      else send(reply);
    } catch (error) {
      fail(error);
    }
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      socket.on('error', (error) => logger.warn('DNS UDP socket error', { error: error.message }));
      resolve(socket);
    });
  });
}

function bindTcp(host: string, port: number, resolver: DnsResolver, logger: Logger): Promise<TcpServer> {
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    if (connections.size >= TCP_CONNECTIONS_MAX) {
      socket.destroy();
      return;
    }
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    serveTcpConnection(socket, resolver, logger);
  });
  tcpConnections.set(server, connections);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * One TCP connection (RFC 7766): two-byte length, message, repeated. Queries are answered one
 * after another, in order; a partial message must complete within TCP_READ_TIMEOUT_MS, the
 * connection may idle TCP_IDLE_TIMEOUT_MS between queries, and closes after
 * TCP_QUERIES_PER_CONNECTION_MAX queries, as miekg/dns's server does.
 */
function serveTcpConnection(socket: Socket, resolver: DnsResolver, logger: Logger): void {
  let buffered: Buffer = Buffer.alloc(0);
  let served = 0;
  let isBusy = false;
  socket.setNoDelay(true);
  socket.setTimeout(TCP_IDLE_TIMEOUT_MS, () => socket.destroy());
  const pump = (): void => {
    if (isBusy || socket.destroyed) return;
    if (buffered.length < 2) return;
    const length = buffered.readUInt16BE(0);
    if (buffered.length < 2 + length) {
      socket.setTimeout(TCP_READ_TIMEOUT_MS);
      return;
    }
    const message = Uint8Array.prototype.slice.call(buffered, 2, 2 + length);
    buffered = buffered.subarray(2 + length);
    isBusy = true;
    served++;
    Promise.resolve(message).then((query) => resolver.answerBytes(query, 'tcp')).then(
      (reply) => {
        isBusy = false;
        if (socket.destroyed) return;
        if (reply !== undefined) {
          const frame = Buffer.allocUnsafe(2 + reply.length);
          frame.writeUInt16BE(reply.length, 0);
          frame.set(reply, 2);
          socket.write(frame);
        }
        if (served >= TCP_QUERIES_PER_CONNECTION_MAX) {
          socket.end();
          return;
        }
        socket.setTimeout(TCP_IDLE_TIMEOUT_MS);
        if (buffered.length <= TCP_BUFFERED_BYTES_MAX) socket.resume();
        pump();
      },
      (error: unknown) => {
        logger.error('DNS query failed', { error: String(error), network: 'tcp' });
        socket.destroy();
      },
    );
  };
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    // A client that sends faster than we answer waits: at most two full messages are held.
    if (buffered.length > TCP_BUFFERED_BYTES_MAX) socket.pause();
    pump();
  });
  socket.on('error', () => socket.destroy());
}
