/**
 * Fires the app's timer triggers on their schedules, as the Functions host does in Azure: each
 * schedule is NCRONTAB (six fields, seconds first), evaluated in UTC; `%NAME%` stands for the app
 * setting NAME (Pagewise's is `%PAGEWISE_BACKUP_SCHEDULE%`). A trigger whose setting is missing or
 * malformed is not scheduled, with one log line saying why; the others still run. Missed runs while
 * the process was down are not made up (the host's `isPastDue` catch-up is not emulated).
 */
import { Timer } from '@azure/functions';
import { Cron } from 'croner';
import { redact } from '../core';
import { LocalFunctionHost } from './localHost';
import { functionsByTrigger } from './registry';

export interface TimerSchedule {
  name: string;
  /** The NCRONTAB expression after `%SETTING%` substitution, or undefined when it could not be scheduled. */
  schedule?: string;
  /** The next firing, or why there is none. */
  next?: Date;
  problem?: string;
}

export interface TimerSchedules {
  schedules: TimerSchedule[];
  stop(): void;
}

/** Resolves `%NAME%` from the app settings; throws naming the setting when it is not set. */
export function resolveSchedule(raw: string, settings: Record<string, string | undefined>): string {
  return raw.replace(/%([A-Za-z0-9_]+)%/g, (_m, name: string) => {
    const value = settings[name]?.trim();
    if (!value) throw new Error(`app setting ${name} is not set`);
    return value;
  });
}

export function startTimerSchedules(
  host: LocalFunctionHost,
  settings: Record<string, string | undefined>,
  log: (line: string) => void,
): TimerSchedules {
  const jobs: Cron[] = [];
  const schedules: TimerSchedule[] = [];
  for (const fn of functionsByTrigger('timerTrigger')) {
    const name = fn.metadata.name;
    let expression: string | undefined;
    try {
      expression = resolveSchedule(String(fn.trigger.schedule ?? ''), settings);
      let last: Date | undefined;
      const job = new Cron(expression, { timezone: 'UTC', protect: true }, async (self: Cron) => {
        const now = new Date();
        const next = self.nextRun() ?? now;
        const timer: Timer = { isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: (last ?? now).toISOString(), next: next.toISOString(), lastUpdated: now.toISOString() } };
        last = now;
        try {
          await host.invokeTimer(name, timer);
        } catch (err) {
          log(`timer ${name} failed: ${redact(String(err))}`);
        }
      });
      jobs.push(job);
      schedules.push({ name, schedule: expression, next: job.nextRun() ?? undefined });
    } catch (err) {
      const problem = `not scheduled: ${redact((err as Error).message)}`;
      schedules.push({ name, ...(expression ? { schedule: expression } : {}), problem });
      log(`timer ${name} ${problem}`);
    }
  }
  return {
    schedules,
    stop() {
      for (const job of jobs) job.stop();
    },
  };
}
