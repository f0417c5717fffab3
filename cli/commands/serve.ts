/** `pagewise serve [--port N]`: the HTTP API on 127.0.0.1, backed by the local durable runtime; timers fire on their schedules. */
import { PagewiseError } from '../../core';
import { readSettings, readUserKey } from '../../functions/settings';
import { taskHubConnectionString } from '../engines';
import { parseCount } from '../options';
import { printJson, printLines } from '../output';
import { DefineCommand } from './context';

export const defineServe: DefineCommand = (program, ctx) => {
  program
    .command('serve')
    .description('serve the Pagewise HTTP API on 127.0.0.1 through the local durable runtime (Ctrl-C stops)')
    .option('--port <n>', 'port (default: a free one)')
    .option('--json', 'print { url, port } as one JSON object once listening')
    .action(async (opts: { port?: string; json?: boolean }) => {
      const { io } = ctx;
      const port = parseCount(opts.port, '--port');
      if (port !== undefined && port > 65535) throw new PagewiseError('BadInput', `--port ${port} is not a TCP port`);
      // Bad app settings stop the start here, naming the setting, rather than failing every request.
      readSettings(io.env);
      readUserKey(io.env);
      const signal = io.interruptSignal?.();
      const connectionString = taskHubConnectionString(io.env);
      const { startLocalServer } = await import('../../runtime/serve');
      const server = await startLocalServer({ taskHub: { connectionString }, appSettings: io.env, ...(port ? { port } : {}) });
      const timers = server.timers.map((t) => ({ name: t.name, schedule: t.schedule, next: t.next?.toISOString(), problem: t.problem }));
      if (opts.json) printJson(io, { url: server.url, port: server.port, timers });
      else {
        printLines(io, [
          `pagewise API listening on ${server.url} (Ctrl-C stops)`,
          ...timers.map((t) => (t.next ? `timer ${t.name}: "${t.schedule}" (UTC), next at ${t.next}` : `timer ${t.name}: ${t.problem}`)),
        ]);
      }
      try {
        await new Promise<void>((resolve) => {
          if (!signal || signal.aborted) return resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
      } finally {
        await server.close();
      }
    });
};
