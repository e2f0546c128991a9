/**
 * Schedules in the front end, with no JupyterLab import: the REST calls of `/schedules`
 * (`ScheduleClient`) and the list the "Schedules" tab shows (`ScheduleModel`), kept in step by
 * one REST load and then the `schedule` and `schedule_run` events of the websocket.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { RequestFn, SwmApiError } from './api';

export interface IScheduleRun {
  schedule_id?: string;
  due_time: number;
  status: 'launched' | 'skipped' | 'missed' | 'failed' | string;
  job_id?: string | null;
  details?: string;
  manual?: boolean;
  state?: string | null;
  exit_code?: number | null;
  failed?: boolean;
}

export interface ISchedule {
  id: string;
  name: string;
  owner: string;
  cron: string | null;
  timezone: string;
  every: number | string | null;
  paused: boolean;
  next_due: number | null;
  last_due: number;
  max_concurrent: number;
  overlap: string;
  catch_up: string;
  keep_last: number | null;
  notify_on: string;
  active_runs?: number;
  last_run?: IScheduleRun;
  webhook_status?: Record<string, unknown>;
  job: Record<string, unknown>;
}

/** A `schedule` event: a schedule was created, updated, paused, resumed or deleted. */
export interface IScheduleEvent {
  type: 'schedule';
  id?: number;
  action: string;
  schedule: ISchedule;
}

/** A `schedule_run` event: a due time was handled, or a run ended (`ended`). */
export interface IScheduleRunEvent {
  type: 'schedule_run';
  id?: number;
  schedule: { id: string; name: string; owner: string; next_due?: number | null };
  run: IScheduleRun;
  ended: boolean;
  notify: boolean;
}

export type ScheduleServerEvent = IScheduleEvent | IScheduleRunEvent;

/** The REST calls of schedules (errors are `SwmApiError`s with the server's message). */
export class ScheduleClient {
  constructor(private readonly _request: RequestFn) {}

  private async _json<T>(path: string, init: RequestInit = {}): Promise<T> {
    let response: Response;
    try {
      response = await this._request(path, init);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new SwmApiError(`Cannot reach the Jupyter server: ${reason}`, 0);
    }
    if (!response.ok) {
      throw await SwmApiError.fromResponse(response);
    }
    return (await response.json()) as T;
  }

  async list(): Promise<ISchedule[]> {
    return (await this._json<{ schedules: ISchedule[] }>('schedules')).schedules;
  }

  pause(id: string): Promise<ISchedule> {
    return this._json<ISchedule>(`schedules/${encodeURIComponent(id)}/pause`, { method: 'POST' });
  }

  resume(id: string): Promise<ISchedule> {
    return this._json<ISchedule>(`schedules/${encodeURIComponent(id)}/resume`, {
      method: 'POST'
    });
  }

  runNow(id: string): Promise<IScheduleRun> {
    return this._json<IScheduleRun>(`schedules/${encodeURIComponent(id)}/run`, { method: 'POST' });
  }
}

/** Whether a run ended badly (what a notification warns about). */
export function runFailed(run: IScheduleRun): boolean {
  if (run.failed !== undefined) {
    return run.failed;
  }
  if (run.status === 'failed') {
    return true;
  }
  return (
    run.status === 'launched' &&
    !!run.state &&
    (run.state === 'error' ||
      run.state === 'canceled' ||
      (run.state === 'finished' && (run.exit_code ?? 0) !== 0))
  );
}

/** The last run in a few words: "finished 0", "running", "skipped", "—". */
export function lastRunText(run: IScheduleRun | undefined): string {
  if (!run) {
    return '—';
  }
  if (run.status !== 'launched') {
    return run.status;
  }
  const state = run.state ?? 'queued';
  return run.exit_code !== null && run.exit_code !== undefined
    ? `${state} ${run.exit_code}`
    : state;
}

/** When a schedule is due, in words: "every 10m", "cron 0 9 * * * (Europe/Berlin)". */
export function whenText(s: ISchedule): string {
  if (s.cron) {
    return `cron ${s.cron} (${s.timezone || 'UTC'})`;
  }
  return typeof s.every === 'number' ? `every ${s.every}s` : `every ${s.every ?? '?'}`;
}

/** The text of a browser notification for a run event, or null when it asks for none. */
export function runNotice(
  event: IScheduleRunEvent
): { message: string; type: 'error' | 'success' | 'warning' } | null {
  if (!event.notify) {
    return null;
  }
  const run = event.run;
  const name = event.schedule.name;
  if (run.status === 'skipped') {
    return {
      message: `Schedule ${name}: a run was skipped (previous run still active)`,
      type: 'warning'
    };
  }
  if (runFailed(run)) {
    const how =
      run.status === 'failed'
        ? `could not start: ${run.details ?? ''}`
        : `failed (${run.state}${run.exit_code !== null && run.exit_code !== undefined ? `, exit ${run.exit_code}` : ''})`;
    return { message: `Schedule ${name}: run ${how}`, type: 'error' };
  }
  return { message: `Schedule ${name}: run ${run.state ?? run.status}`, type: 'success' };
}

/** The schedules of this user, loaded once and then updated from events. */
export class ScheduleModel {
  private _schedules = new Map<string, ISchedule>();
  private _changed = new Signal<this, void>(this);
  private _error = '';

  constructor(readonly client: ScheduleClient) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The schedules by name. */
  get schedules(): ISchedule[] {
    return [...this._schedules.values()].sort(
      (a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id)
    );
  }

  /** The last load's error ('' if none). */
  get error(): string {
    return this._error;
  }

  async load(): Promise<void> {
    try {
      const list = await this.client.list();
      this._schedules = new Map(list.map(s => [s.id, s]));
      this._error = '';
    } catch (err) {
      this._error = err instanceof SwmApiError ? err.describe() : String(err);
    }
    this._changed.emit();
  }

  /** Take a changed schedule (an action's answer). */
  put(schedule: ISchedule): void {
    const old = this._schedules.get(schedule.id);
    this._schedules.set(schedule.id, { ...schedule, last_run: schedule.last_run ?? old?.last_run });
    this._changed.emit();
  }

  /** Apply a `schedule` or `schedule_run` event; returns whether it was one. */
  applyEvent(event: { type: string }): boolean {
    if (event.type === 'schedule') {
      const e = event as IScheduleEvent;
      if (e.action === 'deleted') {
        this._schedules.delete(e.schedule.id);
        this._changed.emit();
      } else {
        this.put(e.schedule);
      }
      return true;
    }
    if (event.type === 'schedule_run') {
      const e = event as IScheduleRunEvent;
      const s = this._schedules.get(e.schedule.id);
      if (s) {
        const last = s.last_run;
        if (!last || e.run.due_time >= last.due_time) {
          s.last_run = { ...last, ...e.run };
        }
        if (e.schedule.next_due !== undefined && !e.run.manual) {
          s.next_due = s.paused ? null : e.schedule.next_due;
        }
        this._changed.emit();
      }
      return true;
    }
    return false;
  }
}
