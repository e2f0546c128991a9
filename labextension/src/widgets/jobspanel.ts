/**
 * The job list of the Sky Port sidebar: search, state and site filters, grouping, a
 * windowed list of rows (JupyterLab's WindowedList), selection as in JupyterLab's file browser
 * (click opens; Ctrl/Shift-click and the keyboard select; only shown jobs stay selected) and
 * actions on the selection, confirmed when they touch several jobs. It renders from the JobStore
 * at most once per animation frame, whatever the rate of websocket events.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget, PanelLayout } from '@lumino/widgets';

import { errorText, formatTime, runTime } from '../format';
import { GroupBy, IJobFilter, IStoreChange, Row, SortKey } from '../store';
import { JobSync } from '../sync';
import { JobAction, JobStateName, STATES, STATE_CODES, badgeOf, isFailed } from '../types';
import { confirmAction } from './confirm';
import { el, fillSiteSelect } from './dom';
import { FrameScheduler } from './frame';
import { RowList } from './rowlist';

export const ROW_HEIGHT = 28;

/** Shortest time between two renders of the list (ms). */
const MIN_RENDER_INTERVAL = 100;

const ACTIONS: { action: JobAction; label: string; title: string }[] = [
  { action: 'cancel', label: 'Cancel', title: 'Cancel the selected jobs' },
  { action: 'hold', label: 'Hold', title: 'Hold the selected queued jobs' },
  { action: 'release', label: 'Release', title: 'Release the selected held jobs' },
  { action: 'requeue', label: 'Requeue', title: 'Requeue the selected ended jobs' }
];

/** How often the elapsed time of running jobs is redrawn (ms). */
const TICK = 1000;

const STATE_FILTERS: { value: string; label: string; states: JobStateName[]; failed?: boolean }[] =
  [
    { value: '', label: 'All states', states: [] },
    {
      value: 'active',
      label: 'Active',
      states: ['queued', 'held', 'waiting', 'transferring', 'running']
    },
    { value: 'ended', label: 'Ended', states: ['finished', 'error', 'canceled'] },
    { value: 'failed', label: 'failed', states: ['finished', 'error'], failed: true },
    ...STATES.map(s => ({ value: s, label: s, states: [s] as JobStateName[] }))
  ];

export interface IJobsPanelOptions {
  sync: JobSync;
  openJob: (id: string) => void;
  submit: () => void;
  /** Open the jobs table in the main area. */
  openTable?: () => void;
}

export class JobsPanel extends Widget {
  readonly list: RowList<Row>;
  private _sync: JobSync;
  private _opts: IJobsPanelOptions;
  private _filter: IJobFilter = {};
  private _sort: SortKey = '-submit_time';
  private _groupBy: GroupBy = 'none';
  private _collapsed = new Set<string>();
  private _selected = new Set<string>();
  private _anchor: number | null = null;
  /** The row the keyboard is on (an index into the list's items). */
  private _focus: number | null = null;
  private _ticker = 0;
  private _contextJob: string | null = null;
  /** Renders at most once a frame and once every MIN_RENDER_INTERVAL ms. */
  private _renderer = new FrameScheduler(() => this._renderNow(), {
    minInterval: MIN_RENDER_INTERVAL
  });
  private _search: HTMLInputElement;
  private _stateSelect: HTMLSelectElement;
  private _siteSelect: HTMLSelectElement;
  private _groupSelect: HTMLSelectElement;
  private _summary: HTMLElement;
  private _status: HTMLElement;
  private _message: HTMLElement;
  private _actionButtons = new Map<JobAction, HTMLButtonElement>();
  private _selectionLabel: HTMLElement;
  private _clearButton: HTMLButtonElement;

  constructor(opts: IJobsPanelOptions) {
    super();
    this._opts = opts;
    this._sync = opts.sync;
    this.addClass('swm-JobsPanel');
    const layout = new PanelLayout();
    this.layout = layout;

    const header = new Widget({ node: el('div', 'swm-JobsPanel-header') });
    const top = el('div', 'swm-JobsPanel-top');
    this._status = el('span', 'swm-ConnStatus');
    const submit = el('button', 'jp-mod-styled jp-mod-accept swm-SubmitButton', 'Submit…');
    submit.title = 'Submit the current or selected file to Sky Port';
    submit.addEventListener('click', () => opts.submit());
    const table = el('button', 'jp-mod-styled swm-OpenTable', 'Table');
    table.title = 'Open all jobs in a table (main area)';
    table.hidden = !opts.openTable;
    table.addEventListener('click', () => opts.openTable?.());
    const buttons = el('span', 'swm-JobsPanel-buttons');
    buttons.append(table, submit);
    top.append(this._status, buttons);

    this._search = el('input', 'jp-mod-styled swm-Search');
    this._search.type = 'search';
    this._search.placeholder = 'Search name, id, site…';
    this._search.setAttribute('aria-label', 'Search jobs');
    this._search.addEventListener('input', () => {
      this._filter = { ...this._filter, text: this._search.value };
      this._schedule();
    });

    const filters = el('div', 'swm-JobsPanel-filters');
    this._stateSelect = el('select', 'jp-mod-styled swm-StateFilter');
    this._stateSelect.setAttribute('aria-label', 'Filter by state');
    for (const f of STATE_FILTERS) {
      const o = el('option', '', f.label);
      o.value = f.value;
      this._stateSelect.appendChild(o);
    }
    this._stateSelect.addEventListener('change', () => {
      const f = STATE_FILTERS.find(x => x.value === this._stateSelect.value);
      this._filter = { ...this._filter, states: f?.states ?? [], failed: !!f?.failed };
      this._schedule();
    });
    this._siteSelect = el('select', 'jp-mod-styled swm-SiteFilter');
    this._siteSelect.setAttribute('aria-label', 'Filter by site');
    this._siteSelect.addEventListener('change', () => {
      this._filter = { ...this._filter, site: this._siteSelect.value };
      this._schedule();
    });
    this._groupSelect = el('select', 'jp-mod-styled swm-GroupBy');
    this._groupSelect.setAttribute('aria-label', 'Group jobs');
    for (const [v, label] of [
      ['none', 'No groups'],
      ['state', 'By state'],
      ['site', 'By site']
    ]) {
      const o = el('option', '', label);
      o.value = v;
      this._groupSelect.appendChild(o);
    }
    this._groupSelect.addEventListener('change', () => {
      this._groupBy = this._groupSelect.value as GroupBy;
      this._schedule();
    });
    filters.append(this._stateSelect, this._siteSelect, this._groupSelect);

    this._summary = el('div', 'swm-JobsPanel-summary');
    const actions = el('div', 'swm-JobsPanel-actions');
    this._selectionLabel = el('span', 'swm-Selection', '');
    this._clearButton = el('button', 'swm-ClearSelection', 'clear');
    this._clearButton.title = 'Clear the selection';
    this._clearButton.hidden = true;
    this._clearButton.addEventListener('click', () => this.clearSelection());
    actions.append(this._selectionLabel, this._clearButton);
    for (const a of ACTIONS) {
      const b = el('button', 'jp-mod-styled swm-ActionButton', a.label);
      b.title = a.title;
      b.dataset.action = a.action;
      b.disabled = true;
      b.addEventListener('click', () => void this.runAction(a.action));
      this._actionButtons.set(a.action, b);
      actions.appendChild(b);
    }
    this._message = el('div', 'swm-JobsPanel-message');
    header.node.append(top, this._search, filters, this._summary, actions, this._message);
    layout.addWidget(header);

    this.list = new RowList<Row>({
      rowHeight: ROW_HEIGHT,
      key: row => (row.kind === 'group' ? `group:${row.key}` : `job:${row.job.id}`),
      createRow: () => this._createRow(),
      renderRow: (node, row, index) => this._renderRow(node, row, index)
    });
    this.list.addClass('swm-JobList');
    this.list.node.tabIndex = 0;
    this.list.node.setAttribute('role', 'grid');
    this.list.node.setAttribute('aria-label', 'Sky Port jobs');
    this.list.node.addEventListener('keydown', ev => this._onKeyDown(ev));
    layout.addWidget(this.list);
    // Running jobs' elapsed times move on without any event.
    this._ticker = window.setInterval(() => this._tick(), TICK);

    this._sync.store.changed.connect(this._onStoreChanged, this);
    this._sync.statusChanged.connect(() => this._renderStatus(), this);
    this._sync.loadedChanged.connect(() => this._schedule(), this);
    this._renderStatus();
    this._schedule();
  }

  /** Selected job ids (those still in the store). */
  get selected(): string[] {
    return [...this._selected].filter(id => this._sync.store.has(id));
  }

  setGroupBy(groupBy: GroupBy): void {
    this._groupBy = groupBy;
    this._groupSelect.value = groupBy;
    this._schedule();
  }

  setSort(sort: SortKey): void {
    this._sort = sort;
    this._schedule();
  }

  /** Move the elapsed time of the running jobs in view on (their rows' time only). */
  private _tick(): void {
    if (!this.isVisible || this._sync.store.counts().running === 0) {
      return;
    }
    const now = Date.now() / 1000;
    for (const row of this.list.node.querySelectorAll<HTMLElement>(
      '.swm-JobRow[data-state="running"]'
    )) {
      const job = this._sync.store.get(row.dataset.jobId ?? '');
      const time = row.querySelector('.swm-JobRow-time');
      if (job && time) {
        time.textContent = runTime(job, now);
      }
    }
  }

  /** The job of the row last right-clicked (for the context menu's commands). */
  get contextJob(): string | null {
    return this._contextJob;
  }

  /** Forget the selection. */
  clearSelection(): void {
    this._selected.clear();
    this._anchor = null;
    this.list.refresh();
    this._schedule();
  }

  /**
   * Run `action` on the selected jobs with one bulk request; cancel and requeue of more than one
   * job ask first, listing them.
   */
  async runAction(action: JobAction): Promise<void> {
    const ids = this.selected;
    if (!ids.length) {
      return;
    }
    const labels = ids.map(id => {
      const job = this._sync.store.get(id);
      return job ? `${job.name} (${id.slice(0, 8)}, ${job.state})` : id;
    });
    if (!(await confirmAction(action, labels))) {
      return;
    }
    try {
      const result = await this._sync.api.bulkAction(action, ids);
      if (result.failed.length) {
        const lines = result.failed
          .slice(0, 5)
          .map(f => `${f.id.slice(0, 8)}: ${f.message}`)
          .join('\n');
        Notification.warning(
          `${action}: ${result.done.length} done, ${result.failed.length} failed\n${lines}`,
          { autoClose: 8000 }
        );
      }
      this._selected.clear();
      this._schedule();
    } catch (err) {
      Notification.error(`${action} failed: ${errorText(err)}`, { autoClose: 10000 });
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._renderer.dispose();
    window.clearInterval(this._ticker);
    this._sync.store.changed.disconnect(this._onStoreChanged, this);
    super.dispose();
  }

  protected onAfterShow(): void {
    this._schedule();
  }

  private _onStoreChanged(_: unknown, __: IStoreChange): void {
    this._schedule();
  }

  /**
   * Render on the next frame, at most every MIN_RENDER_INTERVAL ms: a burst of events costs a
   * few re-sorts a second, not one per event or per frame.
   */
  private _schedule(): void {
    this._renderer.schedule();
  }

  protected onUpdateRequest(): void {
    this._renderer.cancel();
    this._renderNow();
  }

  private _renderNow(): void {
    const store = this._sync.store;
    const rows = store.rows(this._filter, this._sort, this._groupBy, this._collapsed);
    this.list.setItems(rows);
    // Only what is shown stays selected: an action never reaches a job the user cannot see.
    if (this._selected.size) {
      const shown = new Set<string>();
      for (const r of rows) {
        if (r.kind === 'job') {
          shown.add(r.job.id);
        }
      }
      for (const id of [...this._selected]) {
        if (!shown.has(id)) {
          this._selected.delete(id);
        }
      }
    }
    if (this._focus !== null && this._focus >= rows.length) {
      this._focus = rows.length ? rows.length - 1 : null;
    }
    const counts = store.counts();
    const parts = STATES.filter(s => counts[s]).map(
      s => `<span class="swm-Count" data-state="${s}">${counts[s]} ${s}</span>`
    );
    this._summary.innerHTML = parts.length ? parts.join(' ') : '';
    this.node.dataset.total = String(store.size);
    this.node.dataset.visible = String(rows.length);
    fillSiteSelect(this._siteSelect, store.sites());
    const n = this._selected.size;
    this._selectionLabel.textContent = n ? `${n} selected` : '';
    this._clearButton.hidden = n === 0;
    for (const b of this._actionButtons.values()) {
      b.disabled = n === 0;
    }
    const err = this._sync.loadError;
    let message = '';
    let error = false;
    if (err) {
      message = `Could not load jobs: ${err.describe()}`;
      error = true;
    } else if (this._sync.loaded && store.size === 0) {
      message = 'No jobs yet. Submit a script or notebook with “Submit…”.';
    } else if (!this._sync.loaded && store.size === 0) {
      message = 'Loading jobs…';
    } else if (rows.length === 0) {
      message = `No jobs match ${this._filterText()}.`;
    }
    this._message.textContent = message;
    this._message.className = `swm-JobsPanel-message${error ? ' swm-mod-error' : ''}`;
  }

  /** The filters in words, for the empty list's message. */
  private _filterText(): string {
    const parts: string[] = [];
    const state = STATE_FILTERS.find(f => f.value === this._stateSelect.value);
    if (state && state.value) {
      parts.push(`the state “${state.label}”`);
    }
    if (this._filter.site) {
      parts.push(`the site “${this._filter.site}”`);
    }
    const text = (this._filter.text ?? '').trim();
    if (text) {
      parts.push(`the search “${text}”`);
    }
    return parts.length ? parts.join(' and ') : 'the filters';
  }

  private _renderStatus(): void {
    const s = this._sync.status;
    this._status.dataset.status = s;
    this._status.textContent =
      s === 'live' ? '● live' : s === 'connecting' ? '○ connecting' : '○ offline';
    this._status.title =
      s === 'live'
        ? 'Receiving job events from the server'
        : 'Not connected to the job events; reconnecting';
  }

  private _createRow(): HTMLElement {
    const row = el('div', 'swm-JobRow');
    row.setAttribute('role', 'row');
    // Shift-click extends the selection; it must not select the page's text.
    row.addEventListener('mousedown', ev => {
      if (ev.shiftKey) {
        ev.preventDefault();
      }
    });
    row.addEventListener('click', ev => this._onRowClick(row, ev));
    // As in the file browser: a right-click on a job outside the selection selects that job only.
    row.addEventListener('contextmenu', () => {
      const id = row.dataset.jobId ?? null;
      this._contextJob = id;
      if (id && !this._selected.has(id)) {
        this._selected.clear();
        this._selected.add(id);
        this._anchor = Number(row.dataset.index);
        this.list.refresh();
        this._renderNow();
      }
    });
    return row;
  }

  private _renderRow(node: HTMLElement, row: Row, index: number): void {
    node.dataset.index = String(index);
    node.classList.toggle('swm-mod-focused', index === this._focus);
    if (row.kind === 'group') {
      node.classList.add('swm-GroupRow');
      node.classList.remove('swm-mod-selected');
      node.removeAttribute('aria-selected');
      delete node.dataset.jobId;
      delete node.dataset.state;
      delete node.dataset.failed;
      node.dataset.group = row.key;
      node.textContent = `${row.collapsed ? '▸' : '▾'} ${row.label} (${row.count})`;
      return;
    }
    const job = row.job;
    const selected = this._selected.has(job.id);
    node.classList.remove('swm-GroupRow');
    node.classList.toggle('swm-mod-selected', selected);
    node.setAttribute('aria-selected', String(selected));
    node.dataset.jobId = job.id;
    node.dataset.state = job.state;
    if (isFailed(job)) {
      node.dataset.failed = 'true';
    } else {
      delete node.dataset.failed;
    }
    delete node.dataset.group;
    const look = badgeOf(job);
    node.title = `${job.name}\n${job.id}\n${look.title}${job.state_details && !isFailed(job) ? `: ${job.state_details}` : ''}`;
    // Rebuilding five spans is cheaper than diffing them and keeps the row code simple.
    node.innerHTML = '';
    const check = el('input', 'swm-JobRow-check');
    check.type = 'checkbox';
    check.checked = selected;
    check.tabIndex = -1;
    check.setAttribute('aria-label', `Select ${job.name}`);
    const badge = el('span', look.className, STATE_CODES[job.state]);
    badge.title = look.title;
    const name = el('span', 'swm-JobRow-name', job.name);
    const site = el('span', 'swm-JobRow-site', job.site);
    let info: string;
    if (job.state === 'finished' && isFailed(job)) {
      info = `exit ${job.exit_code}`;
    } else if (job.start_time) {
      info = runTime(job);
    } else {
      info = formatTime(job.submit_time);
    }
    const time = el('span', 'swm-JobRow-time', info);
    node.append(check, badge, name, site, time);
  }

  private _onRowClick(row: HTMLElement, ev: MouseEvent): void {
    const index = Number(row.dataset.index);
    const item = this.list.items[index];
    if (!item) {
      return;
    }
    this._focus = index;
    if (item.kind === 'group') {
      this._toggleGroup(item.key);
      return;
    }
    const target = ev.target as HTMLElement;
    if (ev.shiftKey) {
      this._selectRange(index);
    } else if (ev.ctrlKey || ev.metaKey || target.classList.contains('swm-JobRow-check')) {
      this._toggle(index);
    } else {
      // A plain click opens the job; it does not change the selection.
      this._anchor = index;
      this._opts.openJob(item.job.id);
    }
    this.list.refresh();
    this._schedule();
  }

  private _toggleGroup(key: string): void {
    if (this._collapsed.has(key)) {
      this._collapsed.delete(key);
    } else {
      this._collapsed.add(key);
    }
    this._schedule();
  }

  /** Tick or untick the job at `index`; it becomes the anchor of ranges. */
  private _toggle(index: number): void {
    const r = this.list.items[index];
    if (!r || r.kind !== 'job') {
      return;
    }
    if (this._selected.has(r.job.id)) {
      this._selected.delete(r.job.id);
    } else {
      this._selected.add(r.job.id);
    }
    this._anchor = index;
  }

  /** Select the jobs from the anchor (or `index` itself) to `index`. */
  private _selectRange(index: number): void {
    const anchor = this._anchor ?? index;
    const [a, b] = [Math.min(anchor, index), Math.max(anchor, index)];
    for (let i = a; i <= b; i++) {
      const r = this.list.items[i];
      if (r && r.kind === 'job') {
        this._selected.add(r.job.id);
      }
    }
    if (this._anchor === null) {
      this._anchor = index;
    }
  }

  /**
   * The list's keys, as in JupyterLab's file browser: arrows move (Shift extends the selection),
   * Space ticks, Enter opens (or folds a group), Delete cancels the selection (or the job the
   * keyboard is on), Escape clears the selection.
   */
  private _onKeyDown(ev: KeyboardEvent): void {
    const items = this.list.items;
    if (!items.length) {
      return;
    }
    const at = this._focus ?? -1;
    const move = (to: number): void => {
      const index = Math.max(0, Math.min(items.length - 1, to));
      this._focus = index;
      if (ev.shiftKey) {
        this._selectRange(index);
      } else {
        this._anchor = index;
      }
      this.list.scrollToItem(index, 'auto').catch(() => undefined);
    };
    switch (ev.key) {
      case 'ArrowDown':
        move(at + 1);
        break;
      case 'ArrowUp':
        move(at < 0 ? 0 : at - 1);
        break;
      case 'Home':
        move(0);
        break;
      case 'End':
        move(items.length - 1);
        break;
      case ' ':
        if (at >= 0) {
          this._toggle(at);
        }
        break;
      case 'Enter': {
        const item = at >= 0 ? items[at] : undefined;
        if (item?.kind === 'job') {
          this._opts.openJob(item.job.id);
        } else if (item?.kind === 'group') {
          this._toggleGroup(item.key);
        }
        break;
      }
      case 'Delete': {
        const item = at >= 0 ? items[at] : undefined;
        if (!this._selected.size && item?.kind === 'job') {
          this._selected.add(item.job.id);
        }
        void this.runAction('cancel');
        break;
      }
      case 'Escape':
        this._selected.clear();
        break;
      default:
        return;
    }
    ev.preventDefault();
    ev.stopPropagation();
    this.list.refresh();
    this._schedule();
  }
}
