/**
 * The job view (main area): header with actions, the spec as a table, state history as a
 * timeline, the live log viewer (stdout/stderr, follow mode, search, wrap, download), output files
 * and the executed notebook. It refreshes the full job only when a websocket event says this job
 * changed; when the job is deleted (here, in another tab or client) it says so and offers no action.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { PageConfig, PathExt } from '@jupyterlab/coreutils';
import { Widget } from '@lumino/widgets';

import { utf8Length } from '../api';
import { errorText, formatBytes, formatDuration, formatTime } from '../format';
import { LogBuffer } from '../logbuffer';
import { IStoreChange } from '../store';
import { JobSync } from '../sync';
import {
  IJob,
  IJobFile,
  JobAction,
  LogStreamEvent,
  STATE_CODES,
  badgeOf,
  isFailed,
  isFinal
} from '../types';
import { el } from './dom';
import { FrameScheduler } from './frame';

export interface IJobViewOptions {
  sync: JobSync;
  id: string;
  /** Open a path (relative to the Jupyter root) in JupyterLab. */
  openPath: (path: string) => void;
  /** Open a job file that is outside the Jupyter root (shown from the server, not copied). */
  openCopy: (id: string, path: string) => void;
}

/** Most matches of a log search that are marked (the count goes on). */
const MAX_MARKS = 2000;

type Stream = 'stdout' | 'stderr';

/** Path of `abs` relative to the Jupyter server root, or null when outside it. */
export function relativeToRoot(
  abs: string,
  root = PageConfig.getOption('serverRoot')
): string | null {
  if (!root) {
    return null;
  }
  const r = root.replace(/\/+$/, '').replace(/^~/, '');
  if (abs === r) {
    return '';
  }
  if (r && abs.startsWith(`${r}/`)) {
    return abs.slice(r.length + 1);
  }
  return null;
}

/** The executed notebook among a job's files (`a.ipynb` runs into `a.executed.ipynb`). */
export function executedNotebook(source: string, files: IJobFile[]): string | null {
  const base = PathExt.basename(source);
  const executed = base.replace(/\.ipynb$/, '') + '.executed.ipynb';
  const exact = files.find(f => PathExt.basename(f.path) === executed);
  if (exact) {
    return exact.path;
  }
  const any = files.find(f => f.path.endsWith('.executed.ipynb'));
  return any ? any.path : null;
}

export class JobView extends Widget {
  readonly jobId: string;
  private _sync: JobSync;
  private _opts: IJobViewOptions;
  private _job: IJob | null = null;
  private _stream: Stream = 'stdout';
  private _logs: Record<Stream, LogBuffer> = { stdout: new LogBuffer(), stderr: new LogBuffer() };
  private _reading: Record<Stream, Promise<void> | null> = { stdout: null, stderr: null };
  private _follow = true;
  private _unsubscribe: (() => void) | null = null;
  private _files: IJobFile[] = [];
  private _logRenderer = new FrameScheduler(() => this._renderLog());
  private _title: HTMLElement;
  private _badge: HTMLElement;
  private _meta: HTMLElement;
  private _actions: HTMLElement;
  private _timeline: HTMLElement;
  private _spec: HTMLElement;
  private _logPre: HTMLPreElement;
  private _logInfo: HTMLElement;
  private _filesList: HTMLElement;
  private _notebookButton: HTMLButtonElement;
  private _error: HTMLElement;
  private _notice: HTMLElement;
  private _deleted = false;
  private _tabs = new Map<Stream, HTMLButtonElement>();
  private _search: HTMLInputElement;
  private _searchInfo: HTMLElement;
  /** Index of the current match of the log search. */
  private _match = 0;

  constructor(opts: IJobViewOptions) {
    super();
    this._opts = opts;
    this._sync = opts.sync;
    this.jobId = opts.id;
    this.id = `swm-job-${opts.id}`;
    this.addClass('swm-JobView');
    this.title.label = opts.id.slice(0, 8);
    this.title.closable = true;

    const head = el('div', 'swm-JobView-head');
    this._badge = el('span', 'swm-StateBadge');
    this._title = el('h2', 'swm-JobView-title', 'Loading…');
    this._actions = el('div', 'swm-JobView-actions');
    for (const action of ['cancel', 'hold', 'release', 'requeue'] as JobAction[]) {
      const b = el(
        'button',
        'jp-mod-styled swm-ActionButton',
        action[0].toUpperCase() + action.slice(1)
      );
      b.dataset.action = action;
      b.addEventListener('click', () => void this.runAction(action));
      this._actions.appendChild(b);
    }
    const remove = el('button', 'jp-mod-styled jp-mod-warn swm-DeleteJob', 'Delete');
    remove.title = "Delete this ended job's record and folder";
    remove.dataset.action = 'delete';
    remove.addEventListener('click', () => void this.deleteJob());
    this._actions.appendChild(remove);
    head.append(this._badge, this._title, this._actions);
    this._meta = el('div', 'swm-JobView-meta');
    this._error = el('div', 'swm-JobView-error');
    this._notice = el('div', 'swm-JobView-deleted');
    this._notice.setAttribute('role', 'status');
    this._notice.hidden = true;

    const logSection = el('section', 'swm-JobView-log');
    const logBar = el('div', 'swm-LogBar');
    for (const s of ['stdout', 'stderr'] as Stream[]) {
      const t = el('button', 'swm-LogTab', s);
      t.dataset.stream = s;
      t.addEventListener('click', () => this.showStream(s));
      this._tabs.set(s, t);
      logBar.appendChild(t);
    }
    const followLabel = el('label', 'swm-Follow');
    const follow = el('input', '');
    follow.type = 'checkbox';
    follow.checked = true;
    follow.className = 'swm-FollowCheck';
    follow.addEventListener('change', () => {
      this._follow = follow.checked;
      if (this._follow) {
        this._scrollLog();
      }
    });
    followLabel.append(follow, document.createTextNode(' follow'));
    const wrapLabel = el('label', 'swm-Wrap');
    const wrap = el('input', 'swm-WrapCheck');
    wrap.type = 'checkbox';
    wrap.checked = true;
    wrap.addEventListener('change', () =>
      this._logPre.classList.toggle('swm-mod-wrap', wrap.checked)
    );
    wrapLabel.append(wrap, document.createTextNode(' wrap'));
    this._search = el('input', 'jp-mod-styled swm-LogSearch');
    this._search.type = 'search';
    this._search.placeholder = 'Search the log';
    this._search.setAttribute('aria-label', 'Search the log');
    this._search.addEventListener('input', () => {
      this._match = 0;
      this._renderLog();
    });
    this._search.addEventListener('keydown', ev => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        this._match += ev.shiftKey ? -1 : 1;
        this._renderLog();
      }
    });
    this._searchInfo = el('span', 'swm-LogSearchInfo');
    const download = el('button', 'jp-mod-styled swm-LogDownload', 'Download');
    download.title = 'Download the whole of this output';
    download.addEventListener('click', () => void this.downloadLog());
    this._logInfo = el('span', 'swm-LogInfo');
    logBar.append(followLabel, wrapLabel, this._search, this._searchInfo, download, this._logInfo);
    this._logPre = el('pre', 'swm-LogText swm-mod-wrap');
    this._logPre.addEventListener('scroll', () => {
      const p = this._logPre;
      const atBottom = p.scrollHeight - p.scrollTop - p.clientHeight < 4;
      if (!atBottom && this._follow && p.dataset.autoscroll !== '1') {
        this._follow = false;
        follow.checked = false;
      }
      p.dataset.autoscroll = '0';
    });
    logSection.append(logBar, this._logPre);

    const side = el('div', 'swm-JobView-side');
    this._timeline = el('ol', 'swm-Timeline');
    this._filesList = el('ul', 'swm-Files');
    this._notebookButton = el(
      'button',
      'jp-mod-styled jp-mod-accept swm-OpenNotebook',
      'Open executed notebook'
    );
    this._notebookButton.hidden = true;
    this._spec = el('div', 'swm-Spec');
    const h = (t: string): HTMLElement => el('h3', '', t);
    side.append(
      h('History'),
      this._timeline,
      h('Files'),
      this._notebookButton,
      this._filesList,
      h('Spec'),
      this._spec
    );

    const body = el('div', 'swm-JobView-body');
    body.append(logSection, side);
    this.node.append(head, this._notice, this._meta, this._error, body);

    this._sync.store.changed.connect(this._onStoreChanged, this);
    this._unsubscribe = this._sync.subscribeLogs(this.jobId, e => this._onLogEvent(e));
    this.showStream('stdout');
    void this.refresh();
  }

  get job(): IJob | null {
    return this._job;
  }

  /** Fetch the job, its files and any log bytes not yet read. */
  async refresh(): Promise<void> {
    if (this._deleted) {
      return;
    }
    try {
      const job = await this._sync.api.getJob(this.jobId);
      if (this.isDisposed) {
        return;
      }
      this._job = job;
      this._error.textContent = '';
      this._render();
      if (job.start_time || isFinal(job.state)) {
        await Promise.all([this._catchUp('stdout'), this._catchUp('stderr'), this._loadFiles()]);
      }
    } catch (err) {
      if (!this.isDisposed) {
        this._error.textContent = errorText(err);
      }
    }
  }

  showStream(stream: Stream): void {
    this._stream = stream;
    for (const [s, t] of this._tabs) {
      t.classList.toggle('swm-mod-active', s === stream);
    }
    this._renderLog();
  }

  /** Delete the job's record and folder (an ended job; asks first), then close the view. */
  async deleteJob(): Promise<void> {
    const job = this._job;
    if (!job || !isFinal(job.state)) {
      return;
    }
    const answer = await showDialog({
      title: `Delete job ${job.name}?`,
      body: `Its record, its log and its folder (${job.folder || 'none'}) are deleted for good.`,
      buttons: [Dialog.cancelButton({ label: 'Keep' }), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await this._sync.api.purge(this.jobId);
      this._sync.store.remove([this.jobId]);
      Notification.info(`Deleted job ${job.name}`, { autoClose: 4000 });
      (this.parent ?? this).close();
    } catch (err) {
      Notification.error(`Cannot delete ${job.name}: ${errorText(err)}`, { autoClose: 10000 });
    }
  }

  /** Save the whole of the stream shown (read again from the server) as a file. */
  async downloadLog(): Promise<void> {
    const stream = this._stream;
    try {
      let offset = 0;
      const parts: string[] = [];
      for (let i = 0; i < 1000; i++) {
        const chunk = await this._sync.api.readLog(this.jobId, stream, offset);
        if (!chunk.data || chunk.offset <= offset) {
          break;
        }
        parts.push(chunk.data);
        offset = chunk.offset;
      }
      const url = URL.createObjectURL(new Blob(parts, { type: 'text/plain' }));
      const a = el('a', '');
      a.href = url;
      a.download = `${this._job?.name ?? this.jobId}-${this.jobId.slice(0, 8)}.${stream}.log`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      Notification.error(`Cannot download the ${stream}: ${errorText(err)}`, { autoClose: 10000 });
    }
  }

  async runAction(action: JobAction): Promise<void> {
    try {
      const job = await this._sync.api.action(this.jobId, action);
      this._sync.store.upsert([job]);
      this._job = job;
      this._render();
    } catch (err) {
      Notification.error(`${action}: ${errorText(err)}`, { autoClose: 10000 });
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._unsubscribe?.();
    this._sync.store.changed.disconnect(this._onStoreChanged, this);
    this._logRenderer.dispose();
    super.dispose();
  }

  /** Whether the job's record was deleted on the server (this tab, another one, `swm rm`, retention). */
  get deleted(): boolean {
    return this._deleted;
  }

  /** The job was deleted: say so, keep what is shown, and allow nothing more. */
  private _markDeleted(): void {
    if (this._deleted) {
      return;
    }
    this._deleted = true;
    this.node.dataset.deleted = 'true';
    this._unsubscribe?.();
    this._unsubscribe = null;
    const name = this._job?.name ?? this.jobId;
    this._notice.textContent = `Job ${name} was deleted: its record, log and folder are gone. What is shown here is what was known before.`;
    this._notice.hidden = false;
    this.title.label = `${name} (deleted)`;
    for (const b of this._actions.querySelectorAll('button')) {
      b.disabled = true;
    }
  }

  private _onStoreChanged(_: unknown, change: IStoreChange): void {
    if (change.removed.includes(this.jobId)) {
      this._markDeleted();
      return;
    }
    if (change.changed.includes(this.jobId) && !this._deleted) {
      const summary = this._sync.store.get(this.jobId);
      if (
        !this._job ||
        !summary ||
        summary.state !== this._job.state ||
        summary.end_time !== this._job.end_time
      ) {
        void this.refresh();
      }
    }
  }

  private _onLogEvent(e: LogStreamEvent): void {
    if (e.type === 'log_end') {
      void this._catchUp('stdout');
      void this._catchUp('stderr');
      return;
    }
    if (e.type === 'error') {
      this._logInfo.textContent = e.message;
      return;
    }
    const stream = e.stream === 'stderr' ? 'stderr' : 'stdout';
    const buffer = this._logs[stream];
    // The server's `offset` is the byte offset after the data.
    const result = buffer.append(Math.max(0, e.offset - utf8Length(e.data)), e.data);
    if (result === 'gap') {
      void this._catchUp(stream);
    } else if (result === 'appended') {
      this._scheduleLog();
    }
  }

  /** Read `stream` over REST from the end of what is held to the end of the file. */
  private _catchUp(stream: Stream): Promise<void> {
    if (this._reading[stream]) {
      return this._reading[stream] as Promise<void>;
    }
    const run = async (): Promise<void> => {
      const buffer = this._logs[stream];
      for (let i = 0; i < 50; i++) {
        const start = buffer.end;
        const chunk = await this._sync.api.readLog(this.jobId, stream, start);
        if (this.isDisposed || !chunk.data) {
          break;
        }
        const dataStart = chunk.offset - utf8Length(chunk.data);
        buffer.append(dataStart >= 0 ? dataStart : start, chunk.data);
        this._scheduleLog();
        if (chunk.offset <= start) {
          break;
        }
      }
    };
    const p = run()
      .catch(err => {
        this._logInfo.textContent = errorText(err);
      })
      .finally(() => {
        this._reading[stream] = null;
      });
    this._reading[stream] = p;
    return p;
  }

  private async _loadFiles(): Promise<void> {
    try {
      const answer = await this._sync.api.listFiles(this.jobId);
      this._files = answer.files;
      this._renderFiles();
    } catch {
      // A job without a folder yet has no files.
    }
  }

  private _scheduleLog(): void {
    this._logRenderer.schedule();
  }

  private _renderLog(): void {
    const buffer = this._logs[this._stream];
    const text = buffer.text;
    const query = this._search.value;
    if (query) {
      this._renderMatches(text, query);
    } else {
      this._searchInfo.textContent = '';
      if (this._logPre.textContent !== text || this._logPre.querySelector('mark')) {
        this._logPre.textContent = text;
      }
    }
    this._logPre.dataset.stream = this._stream;
    this._logPre.dataset.bytes = String(buffer.end);
    const other = this._stream === 'stdout' ? 'stderr' : 'stdout';
    const otherTab = this._tabs.get(other);
    if (otherTab) {
      otherTab.textContent = this._logs[other].end ? `${other} •` : other;
    }
    this._logInfo.textContent = `${formatBytes(buffer.end)}${buffer.truncated ? ' (start dropped)' : ''}`;
    if (this._follow && !query) {
      this._scrollLog();
    }
  }

  /** The log with the matches of `query` marked (case-insensitive), the current one in view. */
  private _renderMatches(text: string, query: string): void {
    const low = text.toLowerCase();
    const q = query.toLowerCase();
    const starts: number[] = [];
    for (let at = low.indexOf(q); at >= 0; at = low.indexOf(q, at + q.length)) {
      starts.push(at);
    }
    const pre = this._logPre;
    pre.textContent = '';
    if (!starts.length) {
      pre.textContent = text;
      this._searchInfo.textContent = 'no match';
      return;
    }
    const n = starts.length;
    this._match = ((this._match % n) + n) % n;
    const frag = document.createDocumentFragment();
    let last = 0;
    let current: HTMLElement | null = null;
    starts.slice(0, MAX_MARKS).forEach((start, i) => {
      frag.appendChild(document.createTextNode(text.slice(last, start)));
      const mark = el(
        'mark',
        i === this._match ? 'swm-mod-current' : '',
        text.slice(start, start + q.length)
      );
      if (i === this._match) {
        current = mark;
      }
      frag.appendChild(mark);
      last = start + q.length;
    });
    frag.appendChild(document.createTextNode(text.slice(last)));
    pre.appendChild(frag);
    this._searchInfo.textContent = `${Math.min(this._match, MAX_MARKS - 1) + 1} of ${n}`;
    (current as HTMLElement | null)?.scrollIntoView({ block: 'center' });
  }

  private _scrollLog(): void {
    this._logPre.dataset.autoscroll = '1';
    this._logPre.scrollTop = this._logPre.scrollHeight;
  }

  private _render(): void {
    const job = this._job;
    if (!job) {
      return;
    }
    this.title.label = this._deleted ? `${job.name} (deleted)` : job.name;
    this.title.caption = `${job.name} (${job.id})`;
    this.node.dataset.state = job.state;
    const look = badgeOf(job);
    this._badge.className = look.className;
    this._badge.title = look.title;
    this._badge.textContent = STATE_CODES[job.state];
    this._title.textContent = job.name;
    this.node.dataset.failed = String(isFailed(job));
    const bits = [
      isFailed(job)
        ? `state: ${look.title}`
        : `state: ${job.state}${job.state_details ? ` (${job.state_details})` : ''}`,
      `site: ${job.site}`,
      `id: ${job.id}`
    ];
    if (job.native_id) {
      bits.push(`native id: ${job.native_id}`);
    }
    if (job.exit_code !== null && job.exit_code !== undefined) {
      bits.push(`exit code: ${job.exit_code}`);
    }
    if (job.cost && (job.cost.actual ?? job.cost.estimate) !== null) {
      bits.push(`cost: ${job.cost.actual ?? `~${job.cost.estimate}`}`);
    }
    this._meta.textContent = bits.join(' · ');
    const final = isFinal(job.state);
    for (const b of this._actions.querySelectorAll('button')) {
      const a = b.dataset.action as JobAction | 'delete';
      b.disabled =
        (a === 'cancel' && final) ||
        (a === 'hold' && job.state !== 'queued') ||
        (a === 'release' && job.state !== 'held') ||
        (a === 'requeue' && !final) ||
        (a === 'delete' && !final) ||
        this._deleted;
    }
    this._timeline.textContent = '';
    const history = job.history ?? [];
    history.forEach((h, i) => {
      const li = el('li', 'swm-Timeline-item');
      li.dataset.state = h.state;
      const next = history[i + 1]?.time ?? (isFinal(h.state) ? null : Date.now() / 1000);
      const dur = next !== null ? ` · ${formatDuration(next - h.time)}` : '';
      li.append(
        el('span', `swm-StateBadge swm-state-${h.state}`, h.code || STATE_CODES[h.state]),
        el('span', 'swm-Timeline-state', h.state),
        el('span', 'swm-Timeline-time', `${formatTime(h.time)}${dur}`)
      );
      if (h.details) {
        li.appendChild(el('div', 'swm-Timeline-details', h.details));
      }
      this._timeline.appendChild(li);
    });
    this._renderSpec(job);
    this._renderFiles();
  }

  /** The spec as a table of readable rows; a script as its text. */
  private _renderSpec(job: IJob): void {
    this._spec.textContent = '';
    const table = el('table', 'swm-SpecTable');
    const add = (key: string, value: unknown): void => {
      if (value === null || value === undefined || value === '') {
        return;
      }
      if (Array.isArray(value) && !value.length) {
        return;
      }
      if (typeof value === 'object' && !Array.isArray(value)) {
        const entries = Object.entries(value as Record<string, unknown>);
        if (!entries.length) {
          return;
        }
        for (const [k, v] of entries) {
          add(`${key}.${k}`, v);
        }
        return;
      }
      const tr = el('tr', '');
      tr.dataset.key = key;
      const th = el('th', '', key);
      const td = el('td', '');
      if (key === 'script') {
        td.appendChild(el('pre', 'swm-SpecScript', String(value)));
      } else if (Array.isArray(value)) {
        td.textContent = value.map(v => (typeof v === 'string' ? v : JSON.stringify(v))).join(' ');
      } else if (key === 'resources.walltime' && typeof value === 'number') {
        td.textContent = `${formatDuration(value)} (${value} s)`;
      } else if (key === 'resources.memory' && typeof value === 'number') {
        td.textContent = `${value} MB`;
      } else {
        td.textContent = typeof value === 'string' ? value : JSON.stringify(value);
      }
      tr.append(th, td);
      table.appendChild(tr);
    };
    const spec = job.spec ?? {};
    // The usual fields first, then whatever else the spec holds.
    const first = ['name', 'site', 'command', 'notebook', 'parameters', 'resources', 'workdir'];
    for (const key of first) {
      add(key, spec[key]);
    }
    for (const [key, value] of Object.entries(spec)) {
      if (!first.includes(key) && key !== 'script') {
        add(key, value);
      }
    }
    add('script', spec.script);
    this._spec.appendChild(table);
  }

  private _renderFiles(): void {
    const job = this._job;
    this._filesList.textContent = '';
    const folder = job?.folder ?? '';
    const relFolder = folder ? relativeToRoot(folder) : null;
    for (const f of this._files) {
      const li = el('li', 'swm-File');
      const a = el('a', '', f.path);
      a.href = '#';
      a.dataset.path = f.path;
      a.addEventListener('click', ev => {
        ev.preventDefault();
        this._openFile(f.path);
      });
      li.append(a, el('span', 'swm-File-size', formatBytes(f.size)));
      this._filesList.appendChild(li);
    }
    const notebook = job?.spec.notebook ? executedNotebook(job.spec.notebook, this._files) : null;
    this._notebookButton.hidden = !notebook;
    this._notebookButton.onclick = notebook ? () => this._openFile(notebook) : null;
    this._notebookButton.dataset.path = notebook ?? '';
    this._filesList.dataset.folder = relFolder ?? folder;
  }

  private _openFile(path: string): void {
    const folder = this._job?.folder ?? '';
    const rel = folder ? relativeToRoot(folder) : null;
    if (rel !== null) {
      this._opts.openPath(rel ? `${rel}/${path}` : path);
    } else {
      this._opts.openCopy(this.jobId, path);
    }
  }
}
