#!/usr/bin/env node
// The consul-ts agent command: `node bin/agent.js [consul agent flags]`.
//
// Composition root: loads the configuration, sets up logging, prints Consul's start-up banner,
// starts the agent, and shuts it down cleanly on SIGINT or SIGTERM (a second signal forces the
// exit). Exit codes follow `consul agent`: 0 after a clean shutdown, 1 for bad configuration or
// a failed start.

import { Agent } from '../lib/agent.js';
import { ConfigError, HelpRequested, loadConfig, type RuntimeConfig } from '../lib/config.js';
import { createLogger, GatedSink, type Logger } from '../lib/log.js';
import { CONSUL_VERSION, RELEASE_DATE, REVISION } from '../lib/version.js';

/** How long a finished agent waits for stray handles before exiting anyway. */
const EXIT_GRACE_MS = 2_000;

async function main(argv: readonly string[]): Promise<number> {
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
    agent = await Agent.start({ config, logger });
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

/** Resolves with the exit code once a signal has shut the agent down. */
function waitForShutdownSignal(agent: Agent, logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    let isShuttingDown = false;
    let isDone = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (isDone) return;
      if (isShuttingDown) {
        // A second signal means the operator will not wait for a graceful stop.
        logger.warn('Caught second signal, forcing exit', { signal });
        process.exit(1);
      }
      isShuttingDown = true;
      logger.info('Caught', { signal: signal === 'SIGINT' ? 'interrupt' : 'terminated' });
      logger.info('Gracefully shutting down agent...');
      agent.shutdown().then(
        () => {
          isDone = true;
          resolve(0);
        },
        (error: unknown) => {
          isDone = true;
          logger.error('shutdown failed', { error: error instanceof Error ? error.message : String(error) });
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
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
