/** Small display helpers shared by the widgets (no JupyterLab imports). */
import { SwmApiError } from './api';
import { isFailed } from './types';
import type { IJobSummary } from './types';

/** How times are written (the `timeFormat` setting). */
export type TimeFormat = 'local' | 'iso' | 'relative';

let timeFormat: TimeFormat = 'local';

/** Set how `formatTime` writes times (from the settings). */
export function setTimeFormat(format: TimeFormat): void {
  timeFormat = format;
}

/**
 * A time as the setting says: `local` (the time today, the date before), `iso`
 * (`YYYY-MM-DD HH:MM:SS`, local time) or `relative` (`5 min ago`).
 */
export function formatTime(
  epoch: number | null | undefined,
  format: TimeFormat = timeFormat,
  now = Date.now() / 1000
): string {
  if (!epoch) {
    return '';
  }
  const d = new Date(epoch * 1000);
  const time = d.toLocaleTimeString([], { hour12: false });
  const pad = (n: number): string => String(n).padStart(2, '0');
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  if (format === 'iso') {
    return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  if (format === 'relative') {
    const ago = Math.max(0, now - epoch);
    return ago < 60 ? 'just now' : `${formatDuration(ago).split(' ')[0]} ago`;
  }
  return d.toDateString() === new Date(now * 1000).toDateString() ? time : `${date} ${time}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${s % 60}s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** Run time of a job: end (or now) minus start; empty before it starts. */
export function runTime(job: IJobSummary, now = Date.now() / 1000): string {
  if (!job.start_time) {
    return '';
  }
  return formatDuration((job.end_time ?? now) - job.start_time);
}

export function formatBytes(n: number): string {
  if (n < 1024) {
    return `${n} B`;
  }
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The text to show for any error: the server's message when it is an API error. */
export function errorText(err: unknown): string {
  if (err instanceof SwmApiError) {
    return err.describe();
  }
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}

/** A short label for a job: its name and the first characters of its id. */
export function jobLabel(job: { id: string; name: string }): string {
  return `${job.name} (${job.id.slice(0, 8)})`;
}

/** How a job that ended is announced: the notification's text and kind. */
export function endedNotice(job: IJobSummary): {
  message: string;
  type: 'success' | 'warning' | 'error';
} {
  const failed = isFailed(job);
  const type = failed ? 'error' : job.state === 'canceled' ? 'warning' : 'success';
  const how =
    job.state === 'canceled'
      ? 'was canceled'
      : !failed
        ? 'finished'
        : job.exit_code
          ? `failed with exit code ${job.exit_code}`
          : `failed${job.state_details ? `: ${job.state_details}` : ''}`;
  return { message: `Job ${jobLabel(job)} ${how}`, type };
}
