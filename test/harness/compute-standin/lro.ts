/**
 * Long-running operations as Compute answers them: the first reply carries `Azure-AsyncOperation` (the
 * status URL) and `Location` (the result URL, `monitor=true`); the status reads InProgress for the first
 * poll(s), then Succeeded with `properties.output` (or Failed with an error); the result URL answers 202
 * until then and 200 with the result after. The resource change itself happens at the first request.
 */
import { randomUUID } from 'node:crypto';
import type { Reply } from './arm-http';

interface Operation {
  id: string;
  started: string;
  pendingPolls: number;
  /** The operation's output (e.g. a grant's { accessSAS }); the result URL's body. */
  output?: unknown;
  error?: { code: string; message: string };
}

export class Operations {
  private readonly ops = new Map<string, Operation>();

  constructor(private readonly endpoint: string, private readonly subscriptionId: string, private readonly inProgressPolls = 1) {}

  /** Starts an operation and returns the headers of the first reply. */
  start(location: string, apiVersion: string, outcome: { output?: unknown; error?: { code: string; message: string } } = {}): Record<string, string> {
    const id = randomUUID();
    this.ops.set(id, { id, started: new Date().toISOString(), pendingPolls: this.inProgressPolls, ...outcome });
    const base = `${this.endpoint}/subscriptions/${this.subscriptionId}/providers/Microsoft.Compute/locations/${encodeURIComponent(location)}/operations/${id}`;
    return {
      'azure-asyncoperation': `${base}?api-version=${apiVersion}`,
      location: `${base}?monitor=true&api-version=${apiVersion}`,
    };
  }

  /** GET of an operation URL: its status, or (monitor=true) its result. */
  poll(id: string, monitor: boolean): Reply | undefined {
    const op = this.ops.get(id);
    if (!op) return undefined;
    const running = op.pendingPolls > 0;
    if (monitor) return running ? { status: 202 } : { status: 200, body: op.output ?? {} };
    if (running) {
      op.pendingPolls--;
      return { status: 200, body: { startTime: op.started, status: 'InProgress', name: op.id } };
    }
    const done = { startTime: op.started, endTime: new Date().toISOString(), name: op.id };
    if (op.error) return { status: 200, body: { ...done, status: 'Failed', error: op.error } };
    return { status: 200, body: { ...done, status: 'Succeeded', ...(op.output !== undefined ? { properties: { output: op.output } } : {}) } };
  }
}
