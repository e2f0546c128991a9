/**
 * The job list of the Sky Port sidebar: search, state and site filters, grouping, a
 * windowed list of rows (JupyterLab's WindowedList), and multi-select actions. It renders from the JobStore at most once
 * per animation frame, whatever the rate of websocket events.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget, PanelLayout } from '@lumino/widgets';

import { errorText, formatTime, runTime } from '../format';
import { GroupBy, IJobFilter, IStoreChange, Row, SortKey } from '../store';
import { JobSync } from '../sync';
import { JobAction, JobStateName, STATES, STATE_CODES, isFinal } from '../types';
import { el } from './dom';
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

const STATE_FILTERS: { value: string; label: string; states: JobStateName[] }[] = [
  { value: '', label: 'All states', states: [] },
  {
    value: 'active',
    label: 'Active',
    states: ['queued', 'held', 'waiting', 'transferring', 'running']
  },
  { value: 'ended', label: 'Ended', states: ['finished', 'error', 'canceled'] },
  ...STATES.map(s => ({ value: s, label: s, states: [s] as JobStateName[] }))
];

export interface IJobsPanelOptions {
  sync: JobSync;
  openJob: (id: string) => void;
  submit: () => void;
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
  private _knownSites = '';

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
    top.append(this._status, submit);

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
      this._filter = { ...this._filter, states: f?.states ?? [] };
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
    actions.appendChild(this._selectionLabel);
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
    layout.addWidget(this.list);

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

  /** Run `action` on the selected jobs with one bulk request. */
  async runAction(action: JobAction): Promise<void> {
    const ids = this.selected;
    if (!ids.length) {
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
    const counts = store.counts();
    const parts = STATES.filter(s => counts[s]).map(
      s => `<span class="swm-Count" data-state="${s}">${counts[s]} ${s}</span>`
    );
    this._summary.innerHTML = parts.length ? parts.join(' ') : '';
    this.node.dataset.total = String(store.size);
    this.node.dataset.visible = String(rows.length);
    const sites = store.sites();
    const key = sites.join('\n');
    if (key !== this._knownSites) {
      this._knownSites = key;
      const current = this._siteSelect.value;
      this._siteSelect.textContent = '';
      const all = el('option', '', 'All sites');
      all.value = '';
      this._siteSelect.appendChild(all);
      for (const s of sites) {
        const o = el('option', '', s);
        o.value = s;
        this._siteSelect.appendChild(o);
      }
      this._siteSelect.value = sites.includes(current) ? current : '';
    }
    const n = this.selected.length;
    this._selectionLabel.textContent = n ? `${n} selected` : '';
    for (const b of this._actionButtons.values()) {
      b.disabled = n === 0;
    }
    const err = this._sync.loadError;
    if (err) {
      this._message.textContent = `Could not load jobs: ${err.describe()}`;
      this._message.className = 'swm-JobsPanel-message swm-mod-error';
    } else if (this._sync.loaded && store.size === 0) {
      this._message.textContent = 'No jobs yet. Submit a script or notebook with “Submit…”.';
      this._message.className = 'swm-JobsPanel-message';
    } else if (!this._sync.loaded && store.size === 0) {
      this._message.textContent = 'Loading jobs…';
      this._message.className = 'swm-JobsPanel-message';
    } else {
      this._message.textContent = '';
      this._message.className = 'swm-JobsPanel-message';
    }
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
    row.addEventListener('click', ev => this._onRowClick(row, ev));
    row.addEventListener('dblclick', () => {
      const id = row.dataset.jobId;
      if (id) {
        this._opts.openJob(id);
      }
    });
    return row;
  }

  private _renderRow(node: HTMLElement, row: Row, index: number): void {
    node.dataset.index = String(index);
    if (row.kind === 'group') {
      node.classList.add('swm-GroupRow');
      node.classList.remove('swm-mod-selected');
      delete node.dataset.jobId;
      delete node.dataset.state;
      node.dataset.group = row.key;
      node.textContent = `${row.collapsed ? '▸' : '▾'} ${row.label} (${row.count})`;
      return;
    }
    const job = row.job;
    const selected = this._selected.has(job.id);
    node.classList.remove('swm-GroupRow');
    node.classList.toggle('swm-mod-selected', selected);
    node.dataset.jobId = job.id;
    node.dataset.state = job.state;
    delete node.dataset.group;
    node.title = `${job.name}\n${job.id}\n${job.state}${job.state_details ? `: ${job.state_details}` : ''}`;
    // Rebuilding five spans is cheaper than diffing them and keeps the row code simple.
    node.innerHTML = '';
    const check = el('input', 'swm-JobRow-check');
    check.type = 'checkbox';
    check.checked = selected;
    check.tabIndex = -1;
    check.setAttribute('aria-label', `Select ${job.name}`);
    const badge = el('span', `swm-StateBadge swm-state-${job.state}`, STATE_CODES[job.state]);
    badge.title = job.state;
    const name = el('span', 'swm-JobRow-name', job.name);
    const site = el('span', 'swm-JobRow-site', job.site);
    let info: string;
    if (
      isFinal(job.state) &&
      job.state === 'finished' &&
      job.exit_code !== null &&
      job.exit_code !== 0
    ) {
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
    if (item.kind === 'group') {
      if (this._collapsed.has(item.key)) {
        this._collapsed.delete(item.key);
      } else {
        this._collapsed.add(item.key);
      }
      this._schedule();
      return;
    }
    const id = item.job.id;
    const target = ev.target as HTMLElement;
    if (ev.shiftKey && this._anchor !== null) {
      const [a, b] = [Math.min(this._anchor, index), Math.max(this._anchor, index)];
      for (let i = a; i <= b; i++) {
        const r = this.list.items[i];
        if (r && r.kind === 'job') {
          this._selected.add(r.job.id);
        }
      }
    } else if (ev.ctrlKey || ev.metaKey || target.classList.contains('swm-JobRow-check')) {
      if (this._selected.has(id)) {
        this._selected.delete(id);
      } else {
        this._selected.add(id);
      }
      this._anchor = index;
    } else {
      this._selected.clear();
      this._selected.add(id);
      this._anchor = index;
      this._opts.openJob(id);
    }
    this.list.refresh();
    this._schedule();
  }
}
