/** `pagewise serve [--port N] [--keys-dir D]`: the HTTP API on 127.0.0.1, keyed, backed by the local durable runtime; timers fire on their schedules. */
import * as os from 'node:os';
import { PagewiseError, sweepStaleScratchDirs } from '../../core';
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
    .option('--keys-dir <dir>', 'directory of the keys file (default ~/.pagewise/serve, kept 0700)')
    .option('--json', 'print { url, port, keysFile } as one JSON object once listening')
    .action(async (opts: { port?: string; keysDir?: string; json?: boolean }) => {
      const { io } = ctx;
      const port = parseCount(opts.port, '--port');
      if (port !== undefined && port > 65535) throw new PagewiseError('BadInput', `--port ${port} is not a TCP port`);
      // Bad app settings stop the start here, naming the setting, rather than failing every request.
      readSettings(io.env);
      readUserKey(io.env);
      const signal = io.interruptSignal?.();
      const connectionString = taskHubConnectionString(io.env);
      // What a killed serve left (plaintext pages of the disks it was backing up) goes now, not at the next backup.
      await sweepStaleScratchDirs(io.env.PAGEWISE_SCRATCH_DIR?.trim() || os.tmpdir());
      const { startLocalServer } = await import('../../runtime/serve');
      const server = await startLocalServer({ taskHub: { connectionString }, appSettings: io.env, ...(port ? { port } : {}), ...(opts.keysDir ? { keysDir: opts.keysDir } : {}) });
      const timers = server.timers.map((t) => ({ name: t.name, schedule: t.schedule, next: t.next?.toISOString(), problem: t.problem }));
      const queues = server.queues;
      if (opts.json) printJson(io, { url: server.url, port: server.port, keysFile: server.keysFile, signInUrl: server.signInUrl, timers, queues });
      else {
        printLines(io, [
          `pagewise API listening on ${server.url} (Ctrl-C stops)`,
          // The path only: the keys stay in the 0600 file (terminals and service logs are read by others).
          `keys (x-functions-key header or ?code=) and the role sign-in tokens in ${server.keysFile}, removed at exit`,
          // Single use: this line ends up in terminals and logs, so once it has opened a session it opens nothing.
          `portal: open ${server.signInUrl} once to sign in as admin (works one time; then sign in with a token from the keys file)`,
          ...timers.map((t) => (t.next ? `timer ${t.name}: "${t.schedule}" (UTC), next at ${t.next}` : `timer ${t.name}: ${t.problem}`)),
          ...queues.map((q) => (q.problem ? `queue ${q.name}: ${q.problem}` : `queue ${q.name}: polling "${q.queueName}"`)),
        ]);
      }
      // A runtime that lost its task hub (lease broken or taken over) has stopped: so does serve, saying why.
      let lost: Error | undefined;
      try {
        await new Promise<void>((resolve) => {
          void server.app.lease.lost.then((reason) => {
            lost = reason;
            resolve();
          });
          if (!signal || signal.aborted) return resolve();
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
      } finally {
        // Stopped by a signal: running activities are aborted (their scratch removed), not waited for.
        await server.close(signal?.aborted ? { abortReason: signal.reason } : {});
      }
      if (signal?.aborted) throw signal.reason;
      if (lost) throw lost;
    });
};
