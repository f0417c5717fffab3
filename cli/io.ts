/**
 * Where the CLI reads its environment and writes its output. `main()` uses the real process; tests and
 * the demo can call `run()` with a capturing IO and get stdout, stderr and the exit code back without
 * spawning a process.
 */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
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
    env: process.env,
    progressStream: process.stderr.isTTY ? process.stderr : undefined,
    interruptSignal,
    interruption,
  };
}

/** An IO that records everything (for tests and in-process callers). */
export interface CapturedIO extends CliIO {
  readonly out: string[];
  readonly err: string[];
  stdoutText(): string;
  stderrText(): string;
}

export function captureIO(env: Record<string, string | undefined> = {}): CapturedIO {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: (text) => void out.push(text),
    stderr: (text) => void err.push(text),
    env,
    stdoutText: () => out.join(''),
    stderrText: () => err.join(''),
  };
}
