import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** What a running activity's last heartbeat says (src/stores/types.ts Progress). */
export interface Heartbeat {
  stage?: string;
  item?: string;
  bytes?: number;
  totalBytes?: number;
  /** pgBackRest's own progress (PITR activities). */
  percent?: number;
}

/**
 * The crash tests' temporal.heartbeatTimeoutSeconds: a killed worker's activity is
 * retried after 10 s without a heartbeat instead of the default 30 s. The path is
 * the same (Temporal times the activity out and schedules its next attempt).
 */
export const CRASH_HEARTBEAT_TIMEOUT = { heartbeatTimeoutSeconds: 10 };

/** Starts the built `lifeboat worker` with a config (and the worker's own options); resolves once it polls. */
export function startWorkerProcess(configFile: string, workerArgs: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(__dirname, '../../bin/lifeboat'), '--config', configFile, 'worker', ...workerArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      if (err.includes('lifeboat worker on task queue')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}: ${err}`)));
  });
}

/** Waits until `workflowId` has a running activity of `type` whose last heartbeat satisfies `ok`. */
export async function waitForActivity(client: Client, workflowId: string, type: string, ok: (hb: Heartbeat) => boolean): Promise<Heartbeat> {
  const seen = new Set<string>();
  for (let i = 0; i < 1200; i++) {
    try {
      const d = await client.workflow.getHandle(workflowId).describe();
      for (const pa of d.raw.pendingActivities ?? []) {
        if (pa.activityType?.name !== type) continue;
        const payload = pa.heartbeatDetails?.payloads?.[0];
        const hb = (payload ? defaultPayloadConverter.fromPayload(payload) : {}) as Heartbeat;
        seen.add(JSON.stringify(hb));
        if (ok(hb)) return hb;
      }
    } catch {
      // the child workflow may not exist yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${type} activity of ${workflowId} reached the kill point; heartbeats seen: ${[...seen].join(' ') || 'none'}`);
}

/**
 * The crash tests' worker: a real `lifeboat worker` process, killed with
 * SIGKILL at a chosen point and replaced by a new one, and the test's client
 * of Temporal. The config file is read when needed (the tests make it in beforeAll).
 */
export class CrashWorker {
  private child?: ChildProcess;
  private connection?: Connection;
  /** The client open() connected. */
  client!: Client;

  constructor(private readonly configFile: () => string) {}

  /** Connects the client and starts the first worker. */
  async open(temporal: { address: string; namespace: string }): Promise<void> {
    this.connection = await Connection.connect({ address: temporal.address });
    this.client = new Client({ connection: this.connection, namespace: temporal.namespace });
    await this.start();
  }

  /** Kills the worker and closes the client. */
  async close(): Promise<void> {
    await this.kill();
    await this.connection?.close();
  }

  async start(): Promise<void> {
    this.child = await startWorkerProcess(this.configFile());
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  }

  /**
   * Kills the worker once `type` of `workflowId` heartbeats what `ok` wants;
   * `meanwhile` runs while no worker is alive; then a new worker starts.
   */
  async crashAt(workflowId: string, type: string, ok: (hb: Heartbeat) => boolean, meanwhile: () => Promise<void> = async () => undefined): Promise<Heartbeat> {
    const hb = await waitForActivity(this.client, workflowId, type, ok);
    await this.kill();
    process.stderr.write(`killed the worker during ${type} at ${JSON.stringify(hb)}\n`);
    await meanwhile();
    await this.start();
    return hb;
  }
}
