/**
 * The jobs table (main area): column headers that sort (on the server), resize and move (drag a
 * header; the order is the `tableColumns` setting), filters by
 * state, name, site and, for a hub's swm admin, "my jobs", pages of 50 rows read from `GET /jobs`, selection
 * as in the sidebar and actions on it. Live: a job event reloads the page shown (at most once a
 * second), and the elapsed time of running jobs ticks. A right-click on a row opens the plugin's
 * selection commands (JupyterLab's context-menu registry) on the table's selection.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { errorText } from '../format';
import { IStoreChange } from '../store';
import { JobSync } from '../sync';
import { ColumnId, IColumn, TableModel, cellText } from '../tablemodel';
import { IJobSummary, JobAction, STATES, STATE_CODES, badgeOf, isFailed, isFinal } from '../types';
import { confirmAction } from './confirm';
import { el, fillSiteSelect } from './dom';

/** Shortest time between two reloads of the page caused by job events (ms). */
const RELOAD_INTERVAL = 1000;

const ACTIONS: JobAction[] = ['cancel', 'hold', 'release', 'requeue'];

export interface IJobsTableOptions {
  sync: JobSync;
  openJob: (id: string) => void;
  /** The hub user whose server this is ('' outside a hub). On a hub, a user whom the server shows
   * other users' jobs (an swm admin: its hello says `all_owners`) gets the Owner column and "My
   * jobs"; a user who sees only their own jobs gets neither. */
  hubUser: string;
  /** Called with the new column order after the user moved a column (to keep it in the settings). */
  columnsMoved?: (order: ColumnId[]) => void;
}

export class JobsTable extends Widget {
  readonly model = new TableModel();
  private _opts: IJobsTableOptions;
  private _sync: JobSync;
  private _jobs: IJobSummary[] = [];
  private _total = 0;
  private _selected = new Set<string>();
  private _anchor: number | null = null;
  private _contextJob: string | null = null;
  /** The row the keyboard is on. */
  private _focus: number | null = null;
  private _seq = 0;
  private _reloadTimer = 0;
  private _lastLoad = 0;
  private _ticker = 0;
  private _table: HTMLTableElement;
  private _head: HTMLTableSectionElement;
  private _body: HTMLTableSectionElement;
  private _colgroup: HTMLTableColElement;
  private _range: HTMLElement;
  private _message: HTMLElement;
  private _selection: HTMLElement;
  private _prev: HTMLButtonElement;
  private _next: HTMLButtonElement;
  private _mine: HTMLInputElement;
  private _mineLabel: HTMLLabelElement;
  private _siteSelect: HTMLSelectElement;
  private _buttons = new Map<JobAction, HTMLButtonElement>();
  /** The column whose header is being dragged. */
  private _dragColumn: ColumnId | null = null;
  /** A column edge is being dragged (a resize, not a move). */
  private _resizing = false;
  private _contextColumn: ColumnId | null = null;

  constructor(opts: IJobsTableOptions) {
    super();
    this._opts = opts;
    this._sync = opts.sync;
    this.id = 'swm-jobs-table';
    this.addClass('swm-JobsTable');
    this.title.label = 'Sky Port jobs';
    this.title.closable = true;

    const bar = el('div', 'swm-JobsTable-bar');
    const search = el('input', 'jp-mod-styled swm-TableSearch');
    search.type = 'search';
    search.placeholder = 'Name contains…';
    search.setAttribute('aria-label', 'Search job names');
    let searchTimer = 0;
    search.addEventListener('input', () => {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(() => {
        this.model.setFilter({ name: search.value });
        void this.load();
      }, 200);
    });
    const state = el('select', 'jp-mod-styled swm-TableState');
    state.setAttribute('aria-label', 'Filter by state');
    for (const [value, label] of [
      ['', 'All states'],
      ['active', 'Active'],
      ...STATES.map(s => [s, s]),
      ['failed', 'failed']
    ]) {
      const o = el('option', '', label);
      o.value = value;
      state.appendChild(o);
    }
    state.addEventListener('change', () => {
      this.model.setFilter({ state: state.value });
      void this.load();
    });
    this._siteSelect = el('select', 'jp-mod-styled swm-TableSite');
    this._siteSelect.setAttribute('aria-label', 'Filter by site');
    this._siteSelect.addEventListener('change', () => {
      this.model.setFilter({ site: this._siteSelect.value });
      void this.load();
    });
    const mineLabel = (this._mineLabel = el('label', 'swm-TableMine'));
    this._mine = el('input', '');
    this._mine.type = 'checkbox';
    this._mine.addEventListener('change', () => {
      // The owner the server records this user's jobs under (its hello), else the hub's name.
      const owner = this._sync.owner || this._opts.hubUser;
      this.model.setFilter({ owner: this._mine.checked ? owner : '' });
      void this.load();
    });
    mineLabel.append(this._mine, document.createTextNode(' My jobs'));
    mineLabel.title = "Only the jobs you submitted, not other users'";
    this._selection = el('span', 'swm-Selection');
    bar.append(search, state, this._siteSelect, mineLabel, this._selection);
    for (const action of ACTIONS) {
      const b = el(
        'button',
        'jp-mod-styled swm-ActionButton',
        action[0].toUpperCase() + action.slice(1)
      );
      b.dataset.action = action;
      b.disabled = true;
      b.addEventListener('click', () => void this.runAction(action));
      this._buttons.set(action, b);
      bar.appendChild(b);
    }
    const refresh = el('button', 'jp-mod-styled swm-TableRefresh', 'Refresh');
    refresh.addEventListener('click', () => void this.load());
    bar.appendChild(refresh);

    const scroller = el('div', 'swm-JobsTable-scroller');
    scroller.tabIndex = 0;
    scroller.setAttribute('aria-label', 'Sky Port jobs table');
    scroller.addEventListener('keydown', ev => this._onKeyDown(ev));
    this._table = el('table', 'swm-JobsTable-table');
    this._colgroup = el('colgroup', '');
    this._head = el('thead', '');
    this._body = el('tbody', '');
    this._table.append(this._colgroup, this._head, this._body);
    scroller.appendChild(this._table);
    this._message = el('div', 'swm-JobsTable-message');

    const foot = el('div', 'swm-JobsTable-foot');
    this._prev = el('button', 'jp-mod-styled swm-TablePrev', '‹ Previous');
    this._next = el('button', 'jp-mod-styled swm-TableNext', 'Next ›');
    this._prev.addEventListener('click', () => this._turn(-1));
    this._next.addEventListener('click', () => this._turn(1));
    this._range = el('span', 'swm-TableRange');
    foot.append(this._prev, this._range, this._next);

    this.node.append(bar, scroller, this._message, foot);
    this._renderOwners();
    this._renderHead();
    this._sync.store.changed.connect(this._onStoreChanged, this);
    this._sync.helloChanged.connect(this._onHello, this);
    this._ticker = window.setInterval(() => {
      if (this.isVisible && this._jobs.some(j => j.state === 'running')) {
        this._renderBody();
      }
    }, 1000);
    void this.load();
  }

  /** Draw the table again (after a change of the columns shown or of the time format). */
  redraw(): void {
    this._renderOwners();
    this._renderHead();
    this._renderBody();
  }

  /** The jobs of the page shown. */
  get jobs(): ReadonlyArray<IJobSummary> {
    return this._jobs;
  }

  /** The selected job ids (of the page shown). */
  get selected(): string[] {
    return this._jobs.filter(j => this._selected.has(j.id)).map(j => j.id);
  }

  /** The job of the row last right-clicked (for the context menu's commands). */
  get contextJob(): string | null {
    return this._contextJob;
  }

  /** The column whose header was last right-clicked (for "Move column left/right"). */
  get contextColumn(): ColumnId | null {
    return this._contextColumn;
  }

  /** Whether `column` can move one place left (-1) or right (+1) among the columns shown. */
  canMoveColumn(column: ColumnId, step: -1 | 1): boolean {
    const shown = this._columns().map(c => c.id);
    const i = shown.indexOf(column);
    return i >= 0 && i + step >= 0 && i + step < shown.length;
  }

  /** Move `column` one place left or right; the new order is drawn and kept (`columnsMoved`). */
  moveColumn(column: ColumnId, step: -1 | 1): void {
    if (this.model.shiftColumn(column, step, this.showsOwners)) {
      this._columnsChanged();
    }
  }

  /** Whether jobs are selected and all of them have ended (only those may be deleted). */
  get canDelete(): boolean {
    const jobs = this._jobs.filter(j => this._selected.has(j.id));
    return jobs.length > 0 && jobs.every(j => isFinal(j.state));
  }

  /** Delete the selected ended jobs' records and folders (asks first), then reload the page. */
  async deleteSelected(): Promise<void> {
    const jobs = this._jobs.filter(j => this._selected.has(j.id));
    if (!jobs.length || !jobs.every(j => isFinal(j.state))) {
      return;
    }
    const n = jobs.length;
    const answer = await showDialog({
      title: n === 1 ? `Delete job ${jobs[0].name}?` : `Delete ${n} jobs?`,
      body: `Their records, logs and folders are deleted for good: ${jobs
        .slice(0, 12)
        .map(j => j.name)
        .join(', ')}${n > 12 ? ` and ${n - 12} more` : ''}.`,
      buttons: [Dialog.cancelButton({ label: 'Keep' }), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    const failed: string[] = [];
    const deleted: string[] = [];
    for (const job of jobs) {
      try {
        await this._sync.api.purge(job.id);
        deleted.push(job.id);
      } catch (err) {
        failed.push(`${job.name}: ${errorText(err)}`);
      }
    }
    this._sync.store.remove(deleted);
    if (failed.length) {
      Notification.error(`Cannot delete ${failed.length} of ${n} jobs\n${failed.join('\n')}`, {
        autoClose: 10000
      });
    }
    this._selected.clear();
    await this.load();
  }

  /** Read the page the model says from the server and show it. */
  async load(): Promise<void> {
    const seq = ++this._seq;
    this._lastLoad = Date.now();
    this.node.dataset.loading = 'true';
    try {
      const page = await this._sync.api.listJobs(this.model.query());
      if (seq !== this._seq || this.isDisposed) {
        return;
      }
      this._jobs = page.jobs;
      this._total = page.total;
      const shown = new Set(page.jobs.map(j => j.id));
      for (const id of [...this._selected]) {
        if (!shown.has(id)) {
          this._selected.delete(id);
        }
      }
      this._message.textContent = page.jobs.length ? '' : 'No jobs match the filters.';
      this._message.classList.remove('swm-mod-error');
    } catch (err) {
      if (seq !== this._seq || this.isDisposed) {
        return;
      }
      this._jobs = [];
      this._total = 0;
      this._message.textContent = `Could not load jobs: ${errorText(err)}`;
      this._message.classList.add('swm-mod-error');
    }
    delete this.node.dataset.loading;
    this.node.dataset.total = String(this._total);
    this._renderSites();
    this._renderHead();
    this._renderBody();
  }

  /** Run `action` on the selected jobs (asking first when it touches several). */
  async runAction(action: JobAction): Promise<void> {
    const jobs = this._jobs.filter(j => this._selected.has(j.id));
    if (!jobs.length) {
      return;
    }
    const labels = jobs.map(j => `${j.name} (${j.id.slice(0, 8)}, ${j.state})`);
    if (!(await confirmAction(action, labels))) {
      return;
    }
    try {
      const result = await this._sync.api.bulkAction(
        action,
        jobs.map(j => j.id)
      );
      if (result.failed.length) {
        Notification.warning(
          `${action}: ${result.done.length} done, ${result.failed.length} failed\n` +
            result.failed
              .slice(0, 5)
              .map(f => `${f.id.slice(0, 8)}: ${f.message}`)
              .join('\n'),
          { autoClose: 8000 }
        );
      }
      this._selected.clear();
      await this.load();
    } catch (err) {
      Notification.error(`${action} failed: ${errorText(err)}`, { autoClose: 10000 });
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearInterval(this._ticker);
    window.clearTimeout(this._reloadTimer);
    this._sync.store.changed.disconnect(this._onStoreChanged, this);
    this._sync.helloChanged.disconnect(this._onHello, this);
    super.dispose();
  }

  private _onStoreChanged(_: unknown, __: IStoreChange): void {
    // A job changed: read the page again, at most once every RELOAD_INTERVAL.
    if (this._reloadTimer) {
      return;
    }
    const wait = Math.max(0, this._lastLoad + RELOAD_INTERVAL - Date.now());
    this._reloadTimer = window.setTimeout(() => {
      this._reloadTimer = 0;
      void this.load();
    }, wait);
  }

  private _turn(pages: number): void {
    this.model.turn(pages, this._total);
    void this.load();
  }

  /** Whether this table shows owners: on a hub, to a user who sees other users' jobs. */
  get showsOwners(): boolean {
    return !!this._opts.hubUser && this._sync.allOwners === true;
  }

  private _columns(): IColumn[] {
    return this.model.columns(this.showsOwners);
  }

  /** Show "My jobs" only with the Owner column; without it, drop its filter. */
  private _renderOwners(): void {
    const shows = this.showsOwners;
    this._mineLabel.hidden = !shows;
    if (!shows && this._mine.checked) {
      this._mine.checked = false;
      this.model.setFilter({ owner: '' });
    }
  }

  private _onHello(): void {
    const filtered = !!this.model.filter.owner;
    this._renderOwners();
    if (filtered && !this.model.filter.owner) {
      void this.load();
    } else {
      this.redraw();
    }
  }

  private _renderSites(): void {
    fillSiteSelect(this._siteSelect, this._sync.store.sites());
  }

  private _renderHead(): void {
    const columns = this._columns();
    // A header with the keyboard focus keeps it through the redraw (e.g. after moving its column).
    const focused = (document.activeElement as HTMLElement | null)?.closest?.('th');
    const focusColumn = focused && this._head.contains(focused) ? focused.dataset.column : null;
    this._colgroup.textContent = '';
    const check = el('col', '');
    check.style.width = '28px';
    this._colgroup.appendChild(check);
    for (const c of columns) {
      const col = el('col', '');
      col.style.width = `${this.model.widths[c.id]}px`;
      col.dataset.column = c.id;
      this._colgroup.appendChild(col);
    }
    this._head.textContent = '';
    const tr = el('tr', '');
    tr.appendChild(el('th', 'swm-TableCheck'));
    for (const c of columns) {
      const th = el('th', 'swm-TableHeader');
      th.dataset.column = c.id;
      const label = el('span', 'swm-TableHeader-label', c.label);
      th.appendChild(label);
      if (c.sort) {
        th.classList.add('swm-mod-sortable');
        const active = this.model.sortColumn === c.id;
        th.setAttribute(
          'aria-sort',
          active ? (this.model.descending ? 'descending' : 'ascending') : 'none'
        );
        if (active) {
          th.appendChild(el('span', 'swm-TableHeader-arrow', this.model.descending ? '▼' : '▲'));
        }
        th.title = `Sort by ${c.label.toLowerCase()}`;
        label.addEventListener('click', () => {
          this.model.sortBy(c.id);
          void this.load();
        });
      }
      const grip = el('span', 'swm-TableHeader-resize');
      grip.title = 'Drag to resize';
      grip.addEventListener('mousedown', ev => this._startResize(ev, c.id));
      th.appendChild(grip);
      this._makeMovable(th, c);
      tr.appendChild(th);
    }
    this._head.appendChild(tr);
    if (focusColumn) {
      this._head.querySelector<HTMLElement>(`th[data-column="${focusColumn}"]`)?.focus();
    }
  }

  /**
   * A header moves its column: drag it onto another header (dropped on that header's left half:
   * before it; right half: after it), or, focused, Alt+Shift+←/→ (the header's context menu has
   * "Move column left/right" too). Enter or Space on a focused sortable header sorts.
   */
  private _makeMovable(th: HTMLTableCellElement, c: IColumn): void {
    th.draggable = true;
    th.tabIndex = 0;
    th.setAttribute('aria-description', 'Drag, or Alt+Shift+Left/Right, to move this column');
    const clearMarks = (): void => {
      th.classList.remove('swm-mod-drop-before', 'swm-mod-drop-after');
    };
    const placeAt = (x: number): 'before' | 'after' => {
      const box = th.getBoundingClientRect();
      return x < box.left + box.width / 2 ? 'before' : 'after';
    };
    th.addEventListener('dragstart', ev => {
      if (this._resizing) {
        ev.preventDefault();
        return;
      }
      this._dragColumn = c.id;
      if (ev.dataTransfer) {
        ev.dataTransfer.effectAllowed = 'move';
        ev.dataTransfer.setData('text/plain', c.label);
      }
      th.classList.add('swm-mod-dragging');
    });
    th.addEventListener('dragover', ev => {
      if (!this._dragColumn || this._dragColumn === c.id) {
        return;
      }
      ev.preventDefault();
      if (ev.dataTransfer) {
        ev.dataTransfer.dropEffect = 'move';
      }
      const place = placeAt(ev.clientX);
      th.classList.toggle('swm-mod-drop-before', place === 'before');
      th.classList.toggle('swm-mod-drop-after', place === 'after');
    });
    th.addEventListener('dragleave', clearMarks);
    th.addEventListener('drop', ev => {
      ev.preventDefault();
      clearMarks();
      const from = this._dragColumn;
      this._dragColumn = null;
      if (from && this.model.moveColumn(from, c.id, placeAt(ev.clientX))) {
        this._columnsChanged();
      }
    });
    th.addEventListener('dragend', () => {
      this._dragColumn = null;
      th.classList.remove('swm-mod-dragging');
    });
    th.addEventListener('contextmenu', () => {
      this._contextColumn = c.id;
    });
    th.addEventListener('keydown', ev => {
      const step = ev.key === 'ArrowLeft' ? -1 : ev.key === 'ArrowRight' ? 1 : 0;
      if (step && ev.altKey && ev.shiftKey) {
        this.moveColumn(c.id, step);
      } else if ((ev.key === 'Enter' || ev.key === ' ') && c.sort) {
        this.model.sortBy(c.id);
        void this.load().then(() =>
          this._head.querySelector<HTMLElement>(`th[data-column="${c.id}"]`)?.focus()
        );
      } else {
        return;
      }
      ev.preventDefault();
      ev.stopPropagation();
    });
  }

  /** The columns' order changed: draw it, and hand it to whoever keeps it. */
  private _columnsChanged(): void {
    this._renderHead();
    this._renderBody();
    this._opts.columnsMoved?.([...this.model.order]);
  }

  private _startResize(ev: MouseEvent, column: ColumnId): void {
    ev.preventDefault();
    ev.stopPropagation();
    this._resizing = true;
    const startX = ev.clientX;
    const startWidth = this.model.widths[column];
    const col = this._colgroup.querySelector<HTMLElement>(`col[data-column="${column}"]`);
    const move = (e: MouseEvent): void => {
      this.model.resize(column, startWidth + e.clientX - startX);
      if (col) {
        col.style.width = `${this.model.widths[column]}px`;
      }
    };
    const up = (): void => {
      this._resizing = false;
      document.removeEventListener('mousemove', move);
      document.removeEventListener('mouseup', up);
    };
    document.addEventListener('mousemove', move);
    document.addEventListener('mouseup', up);
  }

  private _renderBody(): void {
    const columns = this._columns();
    const now = Date.now() / 1000;
    this._body.textContent = '';
    this._jobs.forEach((job, index) => {
      const tr = el('tr', 'swm-TableRow');
      tr.dataset.jobId = job.id;
      tr.dataset.state = job.state;
      if (isFailed(job)) {
        tr.dataset.failed = 'true';
      }
      const selected = this._selected.has(job.id);
      tr.classList.toggle('swm-mod-selected', selected);
      tr.classList.toggle('swm-mod-focused', index === this._focus);
      tr.setAttribute('aria-selected', String(selected));
      const checkCell = el('td', 'swm-TableCheck');
      const check = el('input', 'swm-TableRow-check');
      check.type = 'checkbox';
      check.checked = selected;
      check.setAttribute('aria-label', `Select ${job.name}`);
      checkCell.appendChild(check);
      tr.appendChild(checkCell);
      for (const c of columns) {
        const td = el('td', `swm-TableCell swm-TableCell-${c.id}`);
        if (c.id === 'state') {
          const look = badgeOf(job);
          const badge = el('span', look.className, STATE_CODES[job.state]);
          badge.title = look.title;
          td.append(badge, document.createTextNode(` ${isFailed(job) ? 'failed' : job.state}`));
        } else {
          td.textContent = cellText(job, c.id, now);
        }
        tr.appendChild(td);
      }
      tr.addEventListener('mousedown', ev => {
        if (ev.shiftKey) {
          ev.preventDefault();
        }
      });
      tr.addEventListener('click', ev => this._onRowClick(ev, index));
      tr.addEventListener('contextmenu', () => this._onRowContextMenu(index));
      this._body.appendChild(tr);
    });
    this._renderSelection();
    this._range.textContent = this.model.rangeText(this._jobs.length, this._total);
    this._prev.disabled = this.model.offset === 0;
    this._next.disabled = this.model.offset + this._jobs.length >= this._total;
  }

  /**
   * As in the file browser: a right-click on a row outside the selection selects that row only.
   * The rows are updated in place: the menu finds its items from the clicked row, which must stay
   * in the page.
   */
  /** The "N selected" text and the action buttons. */
  private _renderSelection(): void {
    const n = this._selected.size;
    this._selection.textContent = n ? `${n} selected` : '';
    for (const b of this._buttons.values()) {
      b.disabled = n === 0;
    }
  }

  private _onRowContextMenu(index: number): void {
    const job = this._jobs[index];
    if (!job) {
      return;
    }
    this._contextJob = job.id;
    this._focus = index;
    if (!this._selected.has(job.id)) {
      this._selected.clear();
      this._selected.add(job.id);
      this._anchor = index;
    }
    Array.from(this._body.rows).forEach((tr, i) => {
      const selected = this._selected.has(tr.dataset.jobId ?? '');
      tr.classList.toggle('swm-mod-selected', selected);
      tr.classList.toggle('swm-mod-focused', i === index);
      tr.setAttribute('aria-selected', String(selected));
      const check = tr.querySelector<HTMLInputElement>('.swm-TableRow-check');
      if (check) {
        check.checked = selected;
      }
    });
    this._renderSelection();
  }

  private _onRowClick(ev: MouseEvent, index: number): void {
    const job = this._jobs[index];
    if (!job) {
      return;
    }
    const target = ev.target as HTMLElement;
    this._focus = index;
    if (ev.shiftKey) {
      const anchor = this._anchor ?? index;
      for (let i = Math.min(anchor, index); i <= Math.max(anchor, index); i++) {
        this._selected.add(this._jobs[i].id);
      }
    } else if (ev.ctrlKey || ev.metaKey || target.classList.contains('swm-TableRow-check')) {
      if (this._selected.has(job.id)) {
        this._selected.delete(job.id);
      } else {
        this._selected.add(job.id);
      }
      this._anchor = index;
    } else {
      this._anchor = index;
      this._opts.openJob(job.id);
      return;
    }
    this._renderBody();
  }

  /**
   * Keys, as in the sidebar's list: ↑/↓ move (Shift extends the selection), Space ticks, Enter
   * opens, Delete cancels the selection (or the job the keyboard is on), Escape clears,
   * PageUp/PageDown turn pages.
   */
  private _onKeyDown(ev: KeyboardEvent): void {
    const n = this._jobs.length;
    const at = this._focus ?? -1;
    const move = (to: number): void => {
      if (!n) {
        return;
      }
      const index = Math.max(0, Math.min(n - 1, to));
      this._focus = index;
      if (ev.shiftKey) {
        const anchor = this._anchor ?? index;
        for (let i = Math.min(anchor, index); i <= Math.max(anchor, index); i++) {
          this._selected.add(this._jobs[i].id);
        }
      } else {
        this._anchor = index;
      }
      this._body.rows[index]?.scrollIntoView({ block: 'nearest' });
    };
    const job = at >= 0 ? this._jobs[at] : undefined;
    switch (ev.key) {
      case 'ArrowDown':
        move(at + 1);
        break;
      case 'ArrowUp':
        move(at < 0 ? 0 : at - 1);
        break;
      case ' ':
        if (job) {
          if (this._selected.has(job.id)) {
            this._selected.delete(job.id);
          } else {
            this._selected.add(job.id);
          }
        }
        break;
      case 'Enter':
        if (job) {
          this._opts.openJob(job.id);
        }
        break;
      case 'Delete':
        if (!this._selected.size && job) {
          this._selected.add(job.id);
        }
        void this.runAction('cancel');
        break;
      case 'Escape':
        this._selected.clear();
        break;
      case 'PageDown':
        this._focus = null;
        this._turn(1);
        break;
      case 'PageUp':
        this._focus = null;
        this._turn(-1);
        break;
      default:
        return;
    }
    ev.preventDefault();
    ev.stopPropagation();
    this._renderBody();
  }
}
