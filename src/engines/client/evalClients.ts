/**
 * The inference processes of evaluation tasks: one per running task, so two tasks never share a loaded
 * model (a second task with another model would otherwise swap the first one's model mid-run) and a task
 * ending stops only its own process. No vscode import: tests drive it directly.
 */
import { EngineClient, type EngineClientOptions } from './engineClient';

export interface LeasedClient {
  client: EngineClient;
  /** Stops this task's process; other tasks' processes are untouched. */
  release(): Promise<void>;
}

export class EvalClientPool {
  private readonly clients = new Set<EngineClient>();

  constructor(private readonly options: (label: string) => EngineClientOptions) {}

  acquire(label: string): LeasedClient {
    const client = new EngineClient(this.options(label));
    this.clients.add(client);
    let released = false;
    return {
      client,
      release: async () => {
        if (released) return;
        released = true;
        this.clients.delete(client);
        await client.dispose();
      },
    };
  }

  get size(): number {
    return this.clients.size;
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.clients].map((c) => c.dispose()));
    this.clients.clear();
  }
}
