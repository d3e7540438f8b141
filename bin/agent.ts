#!/usr/bin/env node
// The consul-ts agent command: `node bin/agent.js [consul agent flags]`.
//
// Composition root: loads the configuration, sets up logging, prints Consul's start-up banner,
// starts the agent, and shuts it down on SIGINT or SIGTERM, leaving gracefully first when the
// configuration says so (a second signal forces the exit). Exit codes follow `consul agent`: 0
// after a graceful leave or PUT /v1/agent/leave, 1 after a stop without leave, for bad
// configuration, or a failed start.

import { Agent } from '../lib/agent.js';
import { ConfigError, HelpRequested, loadConfig, type RuntimeConfig } from '../lib/config.js';
import { boundHeapGrowth } from '../lib/heap.js';
import { createLogger, GatedSink, type Logger } from '../lib/log.js';
import { CONSUL_VERSION, RELEASE_DATE, REVISION } from '../lib/version.js';

/** How long a finished agent waits for stray handles before exiting anyway. */
const EXIT_GRACE_MS = 2_000;
/** How long a graceful leave may take before the agent exits anyway (Consul: 15 s). */
const GRACEFUL_LEAVE_TIMEOUT_MS = 15_000;

async function main(argv: readonly string[]): Promise<number> {
  boundHeapGrowth();
  let loaded;
  try {
    loaded = loadConfig(argv);
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(error.message);
      return 0;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`==> ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const { config, warnings } = loaded;
  const sink = new GatedSink(process.stdout);
  const logger = createLogger({ level: config.logLevel, json: config.logJson, nowMs: Date.now, sink });
  const agentLogger = logger.named('agent');
  let agent: Agent;
  try {
    agent = await Agent.start({ config, logger, reloadConfig: () => loadConfig(argv).config });
  } catch (error) {
    sink.open();
    agentLogger.error('Error starting agent', { error: error instanceof Error ? error.message : String(error) });
    agentLogger.info('Exit code', { code: 1 });
    return 1;
  }
  // Consul hides the banner when logging JSON, so log collectors see only JSON lines.
  if (!config.logJson) process.stdout.write(banner(config, agent.nodeId));
  for (const warning of warnings) agentLogger.warn(warning);
  sink.open();
  agentLogger.info('Consul agent running!');
  const code = await waitForShutdownSignal(agent, agentLogger);
  agentLogger.info('Exit code', { code });
  return code;
}

/**
 * Resolves with the exit code once the agent is down, as Consul's command does: SIGINT (unless
 * skip_leave_on_interrupt, the default for servers) and SIGTERM (with leave_on_terminate, the
 * default for clients) leave gracefully first and exit 0; any other SIGINT or SIGTERM stops at
 * once and exits 1 ("Graceful shutdown disabled"); a second signal forces the exit; a shutdown
 * the agent asked for (PUT /v1/agent/leave) exits 0. SIGHUP reloads the configuration.
 */
function waitForShutdownSignal(agent: Agent, logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    let isShuttingDown = false;
    const finish = (code: number): void => {
      agent.shutdown().then(
        () => resolve(code),
        (error: unknown) => {
          logger.error('shutdown failed', { error: error instanceof Error ? error.message : String(error) });
          resolve(1);
        },
      );
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      if (isShuttingDown) {
        // A second signal means the operator will not wait for a graceful stop.
        logger.info('Caught second signal, Exiting', { signal: signalName(signal) });
        process.exit(1);
      }
      isShuttingDown = true;
      logger.info('Caught', { signal: signalName(signal) });
      const isGraceful = (signal === 'SIGINT' && !agent.config.skipLeaveOnInt) || (signal === 'SIGTERM' && agent.config.leaveOnTerm);
      if (!isGraceful) {
        logger.info('Graceful shutdown disabled. Exiting');
        finish(1);
        return;
      }
      logger.info('Gracefully shutting down agent...');
      const timeout = setTimeout(() => {
        logger.info('Timeout on graceful leave. Exiting');
        finish(1);
      }, GRACEFUL_LEAVE_TIMEOUT_MS);
      agent.leave().then(
        () => {
          clearTimeout(timeout);
          logger.info('Graceful exit completed');
          finish(0);
        },
        (error: unknown) => logger.error('Error on leave', { error: error instanceof Error ? error.message : String(error) }),
      );
    };
    process.on('SIGHUP', () => {
      logger.info('Caught', { signal: 'hangup' });
      agent.reload().then(
        () => logger.info('Reloaded configuration'),
        (error: unknown) => logger.error('Reload config failed', { error: error instanceof Error ? error.message : String(error) }),
      );
    });
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    void agent.whenShutdownRequested.then(() => {
      if (isShuttingDown) return;
      isShuttingDown = true;
      finish(0);
    });
  });
}

/** Go's names for the signals, as Consul logs them. */
function signalName(signal: NodeJS.Signals): string {
  return signal === 'SIGINT' ? 'interrupt' : signal === 'SIGTERM' ? 'terminated' : signal;
}

/** Consul's banner, label for label (command/agent/agent.go). */
function banner(config: RuntimeConfig, nodeId: string): string {
  const { ports } = config;
  const buildDate = RELEASE_DATE.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000 UTC');
  const lines = [
    '==> Starting Consul agent...',
    `              Version: '${CONSUL_VERSION}'`,
    `             Revision: '${REVISION}'`,
    `           Build Date: '${buildDate}'`,
    `              Node ID: '${nodeId}'`,
    `            Node name: '${config.nodeName}'`,
    `           Datacenter: '${config.datacenter}' (Segment: '${config.serverMode ? '<all>' : ''}')`,
    `               Server: ${config.serverMode} (Bootstrap: ${config.bootstrap})`,
    `          Client Addr: [${config.clientAddrs.join(' ')}] (HTTP: ${ports.http}, HTTPS: ${ports.https}, gRPC: ${ports.grpc}, gRPC-TLS: ${ports.grpcTls}, DNS: ${ports.dns})`,
    `         Cluster Addr: ${config.advertiseAddrLan} (LAN: ${ports.serfLan}, WAN: ${ports.serfWan})`,
    `    Gossip Encryption: ${config.encryptKey !== ''}`,
    `     Auto-Encrypt-TLS: false`,
    `         ACLs Enabled: ${config.aclEnabled}`,
    `            HTTPS TLS: Verify Incoming: false, Verify Outgoing: false, Min Version: TLSv1_2`,
    `             gRPC TLS: Verify Incoming: false, Min Version: TLSv1_2`,
    `     Internal RPC TLS: Verify Incoming: false, Verify Outgoing: false (Verify Hostname: false), Min Version: TLSv1_2`,
    '',
    '==> Log data will now stream in as it occurs:',
    '',
  ];
  return lines.join('\n') + '\n';
}

main(process.argv.slice(2)).then(
  (code) => {
    // Let stdout drain before leaving; the unref'd timer only fires if something still holds
    // the event loop open after shutdown.
    process.exitCode = code;
    setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
  },
  (error: unknown) => {
    process.stderr.write(`==> ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
