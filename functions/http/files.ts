/**
 * HTTP API of file-level restore: list a backup's volumes or a directory, and download one regular file
 * straight from the vault as a stream (docs/FILES.md). Thin: validate the query, open the backup's files
 * (core BackupFiles), answer; the backup is closed when the answer — or the stream — ends.
 */
import { app, HttpRequest, HttpResponse, InvocationContext } from '@azure/functions';
import { BackupFiles, formatBytes, MAX_LIST_LIMIT, MAX_VOLUME_PATH_BYTES, PagewiseError, redact, replayedVolumes, validateBackupId, volumeSummary } from '../../core';
import { problemFromError, ProblemError } from '../problems';
import { readSettings, readUserKey } from '../settings';
import { contentDisposition } from './contentDisposition';
import { assertKnownQuery } from './responses';

/** A volume path is at most MAX_VOLUME_PATH_BYTES (core parseVolumePath, which says so); a query value far longer is refused before any vault call. */
const MAX_PATH_CHARS = MAX_VOLUME_PATH_BYTES + 16;
/** ext names are at most 255 bytes: a longer cursor names nothing. */
const MAX_AFTER_CHARS = 1024;

app.http('listBackupFiles', {
  route: 'backups/{id}/files',
  methods: ['GET'],
  authLevel: 'function',
  handler: answer(async (request) => {
    assertKnownQuery(request, ['path', 'limit', 'after']);
    const backupId = validateBackupId(request.params.id ?? '');
    const path = queryText(request, 'path', MAX_PATH_CHARS);
    const after = queryText(request, 'after', MAX_AFTER_CHARS);
    const limit = queryLimit(request);
    if (path === undefined && (after !== undefined || limit !== undefined)) throw new ProblemError(400, 'BadQuery', 'limit and after apply to a directory listing: give path too');
    const session = await openFiles(backupId);
    const { files } = session;
    try {
      if (path === undefined) {
        return json({ backupId, volumes: files.volumes().map(volumeSummary), journalReplayed: replayedVolumes(files), stats: files.stats() });
      }
      const listing = await files.list(path, { ...(limit !== undefined ? { limit } : {}), ...(after !== undefined ? { after } : {}) });
      return json({
        backupId,
        volume: listing.volume,
        path: listing.path,
        entries: listing.entries,
        ...(listing.next !== undefined ? { next: listing.next } : {}),
        journalReplayed: replayedVolumes(files),
        stats: files.stats(),
      });
    } finally {
      await session.close();
    }
  }),
});

app.http('downloadBackupFile', {
  route: 'backups/{id}/files/content',
  methods: ['GET'],
  authLevel: 'function',
  handler: answer(async (request, context) => {
    assertKnownQuery(request, ['path']);
    const backupId = validateBackupId(request.params.id ?? '');
    const path = queryText(request, 'path', MAX_PATH_CHARS);
    if (path === undefined) throw new ProblemError(400, 'BadQuery', 'path is required: the file to download, e.g. ?path=p1:/etc/fstab');
    const session = await openFiles(backupId);
    const { files } = session;
    let streaming = false;
    try {
      const entry = await files.stat(path);
      if (entry.type !== 'file') {
        throw new ProblemError(400, 'NotAFile', `${entry.volume}:${entry.path} is a ${entry.type}; only a regular file can be downloaded (list a directory with /files?path=)`);
      }
      // The first chunk is read before answering: a file unreadable from its start (a corrupt block, a vault
      // gone) gets a problem response, not a 200 cut short.
      const abort = new AbortController();
      const chunks = files.read(path, { abortSignal: abort.signal });
      const first = await chunks.next();
      const response = new HttpResponse({
        status: 200,
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Length': String(entry.size),
          'Content-Disposition': contentDisposition(entry.name),
          'X-Content-Type-Options': 'nosniff',
          'Cache-Control': 'no-store',
        },
        body: fileStream(session, chunks, first, abort, (outcome) => context.log(`download ${backupId} ${entry.volume}:${entry.path}: ${outcome}`)),
      });
      streaming = true;
      return response;
    } finally {
      if (!streaming) await session.close();
    }
  }),
});

type Handler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponse>;

/**
 * Whatever a handler throws becomes a problem response. Needed the more with HTTP streams on: a handler
 * that throws there sends no response at all (azure-functions-nodejs-library#324).
 */
function answer(handler: Handler): Handler {
  return (request, context) =>
    handler(request, context).catch((err: unknown) => {
      // An error that is not the caller's nor a known failure becomes a 500 naming its invocation: its cause goes to the log.
      return problemFromError(err, { context });
    });
}

/**
 * Backups open at once in this app instance. Each holds a piece cache of up to 64 MiB and a download holds
 * its backup until the client has read the file: the bound keeps a caller with the function key (or many
 * slow clients) from holding the instance's memory. Past it: 503, retry later.
 */
export const MAX_OPEN_FILE_SESSIONS = 8;
let openSessions = 0;

/** A backup's files opened under the session bound; `close` (once) closes them and frees the place. */
interface FileSession {
  files: BackupFiles;
  close(): Promise<void>;
}

async function openFiles(backupId: string): Promise<FileSession> {
  if (openSessions >= MAX_OPEN_FILE_SESSIONS) {
    throw new ProblemError(503, 'TooManyFileSessions', `${MAX_OPEN_FILE_SESSIONS} backups are being read at once in this instance; retry when a download has finished`);
  }
  openSessions++;
  let files: BackupFiles;
  try {
    files = await BackupFiles.open({ vault: readSettings().vault, backupId, userKey: readUserKey() });
  } catch (err) {
    openSessions--;
    throw err;
  }
  let closed = false;
  return {
    files,
    async close() {
      if (closed) return;
      closed = true;
      openSessions--;
      await files.close();
    },
  };
}

/**
 * A file's bytes as a web stream pulled by the server as the client reads (one chunk ahead at most),
 * starting with the chunk already read. Its end, a read failure, or the client going away (cancel: the
 * read is aborted) closes the backup; a failure midway errors the stream, so the server cuts the
 * connection short of Content-Length.
 */
export function fileStream(
  session: FileSession,
  chunks: AsyncGenerator<Buffer>,
  first: IteratorResult<Buffer>,
  abort: AbortController,
  done: (outcome: string) => void,
): ReadableStream<Uint8Array> {
  let pending: IteratorResult<Buffer> | undefined = first;
  let sent = 0;
  let closed = false;
  const finish = async (outcome: string) => {
    if (closed) return;
    closed = true;
    const stats = session.files.stats();
    await session.close().catch(() => undefined);
    done(`${outcome}; ${formatBytes(sent)} sent, ${formatBytes(stats.bytesFetched)} fetched from the vault in ${stats.requests} requests`);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = pending ?? (await chunks.next());
          pending = undefined;
          if (next.done) {
            controller.close();
            await finish('complete');
            return;
          }
          sent += next.value.length;
          controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.length));
        } catch (err) {
          controller.error(err);
          await finish(`failed: ${redact(err instanceof Error ? err.message : String(err))}`);
        }
      },
      async cancel() {
        abort.abort(new PagewiseError('Aborted', 'the client closed the connection'));
        await chunks.return(undefined).catch(() => undefined);
        await finish('cancelled by the client');
      },
    },
    { highWaterMark: 0 },
  );
}

function queryText(request: HttpRequest, name: string, maxChars: number): string | undefined {
  const values = request.query.getAll(name);
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new ProblemError(400, 'BadQuery', `${name} is given ${values.length} times; give it once`);
  const value = values[0];
  if (value.length > maxChars) throw new ProblemError(400, 'BadQuery', `${name} is ${value.length} characters; at most ${maxChars} are accepted`);
  if (value === '') throw new ProblemError(400, 'BadQuery', `${name} is empty`);
  return value;
}

function queryLimit(request: HttpRequest): number | undefined {
  const text = queryText(request, 'limit', 16);
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(value >= 1 && value <= MAX_LIST_LIMIT)) throw new ProblemError(400, 'BadQuery', `limit ${JSON.stringify(text)} must be a whole number from 1 to ${MAX_LIST_LIMIT}`);
  return value;
}

function json(body: object): HttpResponse {
  return new HttpResponse({ status: 200, jsonBody: body });
}
