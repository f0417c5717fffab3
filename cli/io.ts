/**
 * Where the CLI reads its environment and writes its output. `main()` uses the real process; tests and
 * the demo can call `run()` with a capturing IO and get stdout, stderr and the exit code back without
 * spawning a process.
 */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /**
   * Raw bytes to stdout (`pagewise cat`), resolved once the stream can take more: a large file flows at
   * the pace of the reader of the pipe, never piling up in memory. Optional: an IO without it cannot cat.
   */
  stdoutBytes?(chunk: Buffer): Promise<void>;
  /** stdout is an interactive terminal (bytes written there are read by it: escape sequences act). */
  stdoutIsTerminal?: boolean;
  /** Environment (connection strings, PAGEWISE_DEBUG). */
  env: Record<string, string | undefined>;
  /** Stream for the progress bar; set only when stderr is an interactive terminal. */
  progressStream?: NodeJS.WriteStream;
  /**
   * A command that can stop cleanly (backup) asks for a signal that Ctrl-C aborts; without this,
   * Ctrl-C ends the process at once.
   */
  interruptSignal?(): AbortSignal;
  /** Why the command was stopped (an Aborted error: "interrupted", "terminated"), once a signal came. */
  interruption?(): unknown;
}

export function processIO(interruptSignal?: () => AbortSignal, interruption?: () => unknown): CliIO {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    stdoutBytes: (chunk) => writeWithBackpressure(process.stdout, chunk),
    stdoutIsTerminal: process.stdout.isTTY === true,
    env: process.env,
    progressStream: process.stderr.isTTY ? process.stderr : undefined,
    interruptSignal,
    interruption,
  };
}

/**
 * Resolves when `stream` has taken the chunk and can take more ('drain'); rejects if it fails or closes
 * first (EPIPE: the reader of a pipe went away, as `pagewise cat … | head` does).
 */
export function writeWithBackpressure(stream: NodeJS.WritableStream & { writableNeedDrain?: boolean }, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (err?: unknown) => {
      stream.off('drain', onDrain);
      stream.off('error', settle);
      stream.off('close', onClose);
      if (!err) return resolve();
      // A broken stream may emit again (a later write, the exit flush): without a listener that would crash the process.
      stream.on('error', () => undefined);
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onDrain = () => settle();
    const onClose = () => settle(new Error('stdout was closed'));
    stream.on('error', settle);
    stream.on('close', onClose);
    if (stream.write(chunk)) settle();
    else stream.on('drain', onDrain);
  });
}

/** An IO that records everything (for tests and in-process callers). */
export interface CapturedIO extends CliIO {
  readonly out: string[];
  readonly err: string[];
  /** What stdoutBytes wrote, chunk by chunk. */
  readonly bytes: Buffer[];
  stdoutText(): string;
  stdoutBuffer(): Buffer;
  stderrText(): string;
}

export function captureIO(env: Record<string, string | undefined> = {}): CapturedIO {
  const out: string[] = [];
  const err: string[] = [];
  const bytes: Buffer[] = [];
  return {
    out,
    err,
    bytes,
    stdout: (text) => void out.push(text),
    stdoutBytes: async (chunk) => void bytes.push(Buffer.from(chunk)),
    stderr: (text) => void err.push(text),
    env,
    stdoutText: () => out.join(''),
    stdoutBuffer: () => Buffer.concat(bytes),
    stderrText: () => err.join(''),
  };
}
