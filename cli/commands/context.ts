import { Command } from 'commander';
import { CliIO } from '../io';

/** What a command module gets: the IO and a place to leave its exit code. */
export interface CommandContext {
  io: CliIO;
  exitCode: number;
  /** Extra advice appended to the error line of a failed command, by error code. */
  hint?: (code: string) => string | undefined;
}

export type DefineCommand = (program: Command, ctx: CommandContext) => void;
