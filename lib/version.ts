// Version identity: which Consul release this agent behaves as, and which consul-ts build it is.
//
// Clients and tools read the Consul version (agent/self Config.Version, the `build` gossip tag,
// node meta `consul-version`) to decide which API features to use, so we report the Consul
// release whose behaviour we implement. The consul-ts version goes in the Revision, which
// Consul fills with a git commit and no client interprets.

/** The Consul release whose HTTP, DNS and gossip behaviour this agent follows. */
export const CONSUL_VERSION = '1.21.0';

/** This implementation's own version; a test keeps it equal to package.json. */
export const CONSUL_TS_VERSION = '0.1.0';

/** What Consul calls the Revision (a commit id there). */
export const REVISION = `consul-ts-${CONSUL_TS_VERSION}`;

/** The release date of CONSUL_TS_VERSION, shown as Consul shows its build date. */
export const RELEASE_DATE = new Date('2026-11-22T00:00:00Z');
