import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import pino, { type Logger } from 'pino';
import { PROJECT_ROOT } from '../criu/binary.js';
import { CriuClient } from '../criu/client.js';
import { LimitAdmission } from '../engine/admission.js';
import { Admission, hostBudgets } from '../scheduler/admission.js';
import { createEngine } from '../engine/engine.js';
import { JobJournal } from '../engine/job-journal.js';
import { recoverInterrupted } from '../engine/recover.js';
import { Jobs, type Job } from '../engine/jobs.js';
import { FerryError } from '../util/errors.js';
import { createAgentApp, DEFAULT_BODY_LIMIT } from './app.js';
import type { AgentConfig } from './config.js';
import { checkListenSafety, type ListenAddress } from './listen.js';
import { IncomingMigrations, recoverIncoming } from '../migrate/incoming.js';
import { IncomingReplicas, recoverRounds } from '../migrate/replicas.js';
import { runMigration } from '../migrate/job.js';
import { destinationAddressOps } from '../migrate/addresses.js';
import type { MigrateBody } from '../migrate/protocol.js';
import type { Peer } from './peers.js';
import { jobRunner } from '../scenarios/job-runner.js';
import { Schedules } from '../scenarios/schedules.js';
import { pageTunnelListener } from '../migrate/postcopy/tunnel.js';
import { bearerMatches } from './auth.js';

export interface AgentServerOptions {
  listen: ListenAddress;
  store: string;
  token?: string;
  /** Where the JSON log lines go (default: stderr). */
  logFile?: string;
  bodyLimit?: number;
  /** From `--config FILE` (config.ts): the scheduler's budgets, how many jobs start at once. */
  config?: AgentConfig;
  /** The dashboard's name for this agent, and the other agents it lists (FERRY_AGENT_NAME, FERRY_PEERS). */
  name?: string;
  peers?: readonly Peer[];
}

export interface RunningAgent {
  url: string;
  log: Logger;
  /** Cancels unfinished jobs (checkpoints stop at their safe point), waits for them, closes the socket. */
  close(reason?: NodeJS.Signals): Promise<void>;
}

/** Starts the agent on a socket: the engine on `store`, jobs admitted one per core. */
export async function startAgent(o: AgentServerOptions): Promise<RunningAgent> {
  checkListenSafety(o.listen, o.token !== undefined);
  const log = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: o.logFile ?? 2, sync: true, mkdir: true }));
  const engine = createEngine({ store: o.store });
  let criu: CriuClient | undefined;
  const criuText = async (): Promise<string | null> => (await (criu ??= new CriuClient()).version()).text;
  // What an earlier agent left: checkpoints it was killed in the middle of are finished or undone
  // (and announced in the log) before anything else runs; its unfinished jobs read as interrupted.
  await engine.store.ensure();
  for (const r of await recoverInterrupted(engine.store)) log.warn({ snapshot: r.snapshot, action: r.action }, `interrupted checkpoint ${r.action}: ${r.reason}`);
  // Jobs start up to a few per core; the freeze scheduler then lets one checkpoint freeze its tree
  // at a time (its measured default: src/bench/concurrency.ts), the others wait at pre-dump unfrozen.
  const address = destinationAddressOps(engine.store.workloadsDir);
  const migrations = new IncomingMigrations({ engine, criuVersion: () => criuText(), address });
  for (const r of await recoverIncoming(engine, address)) log.warn({ migration: r.id, removed: r.removed }, 'an unfinished incoming migration of an earlier agent was undone');
  const replicas = new IncomingReplicas(engine, migrations);
  const rounds = await recoverRounds(engine);
  if (rounds.length) log.warn({ removed: rounds }, 'pre-copy rounds of an earlier agent\'s migrations were removed');
  const scheduler = new Admission(hostBudgets(o.config?.scheduler));
  const jobs = new Jobs({
    migrate: (req, interrupt) => runMigration(engine, req.migrate as unknown as MigrateBody, interrupt),
    engine, admission: new LimitAdmission(o.config?.maxRunningJobs ?? 4 * availableParallelism()), scheduler,
    journal: new JobJournal<Job>(join(engine.store.root, 'jobs')),
  });
  // Periodic snapshots (ferry schedule): persisted in the store, started once the agent listens.
  const schedules = new Schedules({ engine, run: jobRunner(jobs) });
  const pkg = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  const agent = createAgentApp({
    migrations, replicas, schedules,
    engine, jobs, log, version: pkg.version, bodyLimit: o.bodyLimit ?? DEFAULT_BODY_LIMIT,
    ...(o.token !== undefined ? { token: o.token } : {}),
    criuVersion: criuText,
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.peers !== undefined ? { peers: o.peers } : {}),
  });
  const server = createAdaptorServer({ fetch: agent.app.fetch }) as Server;
  // Post-copy's page stream: an upgraded connection, authenticated like every call.
  server.on('upgrade', pageTunnelListener({
    authorized: (h) => o.token === undefined || bearerMatches(h, o.token),
    accept: (id, socket) => migrations.acceptPageStream(id, socket),
  }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new FerryError('ERR_LISTEN', `agent: cannot listen on ${o.listen.host}:${o.listen.port}: ${err.code ?? err.message}`, {
      hint: err.code === 'EADDRINUSE' ? 'another process uses the port: pick another with --listen ADDR:PORT' : 'give an address of this host with --listen ADDR:PORT',
    })));
    server.listen(o.listen.port, o.listen.host, resolve);
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : o.listen.port;
  const url = `http://${o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host}:${port}`;
  log.info({ url, store: o.store, auth: o.token !== undefined, budgets: scheduler.budgets }, 'agent listening');
  schedules.selfUrl = url;
  const loaded = await schedules.load();
  if (loaded.loaded.length) log.info({ schedules: loaded.loaded }, 'schedules of an earlier agent resumed');
  for (const u of loaded.unreadable) log.warn(u, 'a schedule record cannot be read: left in place');
  let closing: Promise<void> | undefined;
  return {
    url, log,
    close(reason = 'SIGTERM') {
      closing ??= (async () => {
        log.info({ reason }, 'agent stopping: cancelling unfinished jobs');
        server.close();
        await schedules.close();
        await jobs.close(reason);
        await migrations.close();
        server.closeAllConnections();
        agent.dispose();
        log.info('agent stopped');
      })();
      return closing;
    },
  };
}
