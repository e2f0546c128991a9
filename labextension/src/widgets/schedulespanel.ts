/**
 * The "Schedules" tab of the sidebar: each schedule with when it runs, its next run, its last
 * run's state, and buttons to pause or resume it and to run it now.
 */
import { Widget } from '@lumino/widgets';

import { SwmApiError } from '../api';
import { ISchedule, ScheduleModel, lastRunText, runFailed, whenText } from '../schedules';
import { el } from './dom';

function timeText(epoch: number | null | undefined): string {
  if (!epoch) {
    return '—';
  }
  const d = new Date(epoch * 1000);
  const same = d.toDateString() === new Date().toDateString();
  return same ? d.toLocaleTimeString() : d.toLocaleString();
}

export interface ISchedulesPanelOptions {
  model: ScheduleModel;
  /** Open the job of a run. */
  openJob: (id: string) => void;
}

export class SchedulesPanel extends Widget {
  private _model: ScheduleModel;
  private _openJob: (id: string) => void;
  private _list: HTMLElement;
  private _message: HTMLElement;
  private _pending = false;

  constructor(opts: ISchedulesPanelOptions) {
    super();
    this._model = opts.model;
    this._openJob = opts.openJob;
    this.addClass('swm-SchedulesPanel');
    const bar = el('div', 'swm-SchedulesPanel-bar');
    const refresh = el('button', 'jp-mod-styled swm-Refresh', 'Refresh');
    refresh.addEventListener('click', () => void this._model.load());
    bar.append(
      refresh,
      el('span', 'swm-SchedulesPanel-hint', 'Add with swm schedule add or %swm schedule add')
    );
    this._message = el('div', 'swm-SchedulesPanel-message');
    this._list = el('div', 'swm-SchedulesPanel-list');
    this.node.append(bar, this._message, this._list);
    this._model.changed.connect(() => this._schedule());
    this._render();
  }

  protected onAfterShow(): void {
    void this._model.load();
  }

  /** Render at most once a frame, however many events arrive. */
  private _schedule(): void {
    if (this._pending) {
      return;
    }
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      this._render();
    });
  }

  private async _act(button: HTMLButtonElement, work: () => Promise<void>): Promise<void> {
    button.disabled = true;
    try {
      await work();
      this._message.textContent = '';
    } catch (err) {
      this._message.textContent = err instanceof SwmApiError ? err.describe() : String(err);
    } finally {
      button.disabled = false;
    }
  }

  private _row(s: ISchedule): HTMLElement {
    const model = this._model;
    const run = s.last_run;
    const row = el('div', `swm-ScheduleRow${s.paused ? ' swm-mod-paused' : ''}`);
    row.dataset.schedule = s.id;
    row.dataset.paused = String(s.paused);
    const head = el('div', 'swm-ScheduleRow-head');
    head.append(
      el('strong', 'swm-ScheduleRow-name', s.name),
      el('span', 'swm-ScheduleRow-when', whenText(s))
    );
    const next = el(
      'div',
      'swm-ScheduleRow-next',
      `Next: ${s.paused ? 'paused' : timeText(s.next_due)}`
    );
    const last = el('div', 'swm-ScheduleRow-last');
    last.append(el('span', '', 'Last: '));
    const state = el(
      'span',
      `swm-ScheduleRow-state${run && runFailed(run) ? ' swm-mod-failed' : ''}`,
      lastRunText(run)
    );
    state.dataset.state = run
      ? run.status === 'launched'
        ? (run.state ?? 'queued')
        : run.status
      : '';
    last.appendChild(state);
    if (run?.job_id) {
      const open = el('a', 'swm-ScheduleRow-open', ` (${timeText(run.due_time)})`);
      open.href = '#';
      open.title = 'Open the run';
      open.addEventListener('click', ev => {
        ev.preventDefault();
        this._openJob(run.job_id as string);
      });
      last.appendChild(open);
    }
    const actions = el('div', 'swm-ScheduleRow-actions');
    const toggle = el(
      'button',
      'jp-mod-styled swm-ScheduleRow-toggle',
      s.paused ? 'Resume' : 'Pause'
    );
    toggle.addEventListener('click', () =>
      this._act(toggle, async () => {
        model.put(await (s.paused ? model.client.resume(s.id) : model.client.pause(s.id)));
      })
    );
    const runNow = el('button', 'jp-mod-styled swm-ScheduleRow-run', 'Run now');
    runNow.addEventListener('click', () =>
      this._act(runNow, async () => {
        const started = await model.client.runNow(s.id);
        model.applyEvent({
          type: 'schedule_run',
          schedule: { id: s.id, name: s.name, owner: s.owner },
          run: started,
          ended: false,
          notify: false
        } as { type: string });
      })
    );
    actions.append(toggle, runNow);
    row.append(head, next, last, actions);
    return row;
  }

  private _render(): void {
    const list = this._model.schedules;
    if (this._model.error) {
      this._message.textContent = this._model.error;
    }
    this._list.textContent = '';
    if (!list.length) {
      this._list.appendChild(el('div', 'swm-SchedulesPanel-empty', 'No schedules yet.'));
      return;
    }
    for (const s of list) {
      this._list.appendChild(this._row(s));
    }
  }
}
