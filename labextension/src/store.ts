/**
 * JobStore: the browser's copy of the job list. It takes REST pages and websocket events,
 * keeps one summary per job, and serves sorted, filtered and grouped views computed lazily and
 * cached until the next change, so a burst of events costs one recomputation per frame.
 */
import { ISignal, Signal } from '@lumino/signaling';

import {
  FINAL_STATES,
  IJobDeletedEvent,
  IJobSummary,
  JobListEvent,
  JobStateName,
  STATES,
  isFailed,
  isFinal
} from './types';

export type SortKey = 'submit_time' | '-submit_time' | 'name' | 'state' | 'priority' | 'site';

export type GroupBy = 'none' | 'state' | 'site';

export interface IJobFilter {
  /** Only these states (empty or undefined: all). */
  states?: ReadonlyArray<JobStateName>;
  /** Only this site (empty: all). */
  site?: string;
  /** Case-insensitive substring of name, id, site or native id. */
  text?: string;
  /** Only failed jobs (finished with a non-zero exit code, or error). */
  failed?: boolean;
}

export interface IGroupRow {
  kind: 'group';
  key: string;
  label: string;
  count: number;
  collapsed: boolean;
}

export interface IJobRow {
  kind: 'job';
  job: IJobSummary;
}

export type Row = IGroupRow | IJobRow;

export interface IStoreChange {
  /** Ids of jobs added, changed or removed. */
  changed: string[];
  /** Jobs that moved from a non-final to a final state by a live event. */
  ended: IJobSummary[];
  /** Ids of jobs removed (deleted on the server); they are in `changed` too. */
  removed: string[];
}

const STATE_RANK: Record<string, number> = Object.fromEntries(STATES.map((s, i) => [s, i]));

function compareBy(sort: SortKey): (a: IJobSummary, b: IJobSummary) => number {
  const byNewest = (a: IJobSummary, b: IJobSummary): number =>
    b.submit_time - a.submit_time || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  switch (sort) {
    case 'submit_time':
      return (a, b) => -byNewest(a, b);
    case 'name':
      return (a, b) => a.name.localeCompare(b.name) || byNewest(a, b);
    case 'state':
      return (a, b) => STATE_RANK[a.state] - STATE_RANK[b.state] || byNewest(a, b);
    case 'priority':
      return (a, b) => b.priority - a.priority || byNewest(a, b);
    case 'site':
      return (a, b) => a.site.localeCompare(b.site) || byNewest(a, b);
    default:
      return byNewest;
  }
}

export class JobStore {
  private _jobs = new Map<string, IJobSummary>();
  private _counts = new Map<JobStateName, number>();
  /** The ids of the known tasks of each array (so that an array's deletion takes them). */
  private _tasks = new Map<string, Set<string>>();
  private _lastEventId = 0;
  private _version = 0;
  private _cache = new Map<string, { version: number; jobs: IJobSummary[] }>();
  private _changed = new Signal<this, IStoreChange>(this);
  private _pending: IStoreChange | null = null;
  private _batchDepth = 0;

  /** Emitted after each change (once per batch). */
  get changed(): ISignal<this, IStoreChange> {
    return this._changed;
  }

  /** Grows by one on each change; views are cached per version. */
  get version(): number {
    return this._version;
  }

  /** The id of the last job event applied (for `last_event_id` on reconnect). */
  get lastEventId(): number {
    return this._lastEventId;
  }

  get size(): number {
    return this._jobs.size;
  }

  get(id: string): IJobSummary | undefined {
    return this._jobs.get(id);
  }

  has(id: string): boolean {
    return this._jobs.has(id);
  }

  /** Number of jobs in each state. */
  counts(): Record<JobStateName, number> {
    const out = {} as Record<JobStateName, number>;
    for (const s of STATES) {
      out[s] = this._counts.get(s) ?? 0;
    }
    return out;
  }

  /** Names of the sites of the known jobs, sorted. */
  sites(): string[] {
    const names = new Set<string>();
    for (const job of this._jobs.values()) {
      names.add(job.site);
    }
    return [...names].sort();
  }

  /** Run `fn` and emit one `changed` for everything it did. */
  batch(fn: () => void): void {
    this._batchDepth++;
    try {
      fn();
    } finally {
      this._batchDepth--;
      if (this._batchDepth === 0) {
        this._flush();
      }
    }
  }

  /**
   * Insert or replace jobs from a REST answer (a page of the list, or the answer to a submit or
   * an action). The REST answer is the server's current state, so it replaces what is held.
   */
  upsert(jobs: IJobSummary[]): void {
    this.batch(() => {
      for (const job of jobs) {
        this._put(job, false);
      }
    });
  }

  /** Take the `last_event_id` of the server's hello, so replays of older events are skipped. */
  setLastEventId(id: number): void {
    this._lastEventId = Math.max(this._lastEventId, id);
  }

  /**
   * Apply one websocket job event (`job`: a job changed; `job_deleted`: forget it, an array with its
   * tasks). Events at or below `lastEventId` (replays) are ignored. Returns true when the store changed.
   */
  applyEvent(event: JobListEvent, live = true): boolean {
    if (typeof event.id === 'number') {
      if (event.id <= this._lastEventId) {
        return false;
      }
      this._lastEventId = event.id;
    }
    let changed = false;
    this.batch(() => {
      changed = event.type === 'job_deleted' ? this._delete(event) : this._put(event.job, live);
    });
    return changed;
  }

  /** Apply many events with one `changed` signal. */
  applyEvents(events: JobListEvent[], live = true): number {
    let n = 0;
    this.batch(() => {
      for (const e of events) {
        if (this.applyEvent(e, live)) {
          n++;
        }
      }
    });
    return n;
  }

  /** Forget these jobs (deleted on the server), and the tasks of those that are arrays. */
  remove(ids: string[]): void {
    const gone: string[] = [];
    const forget = (id: string): void => {
      const old = this._jobs.get(id);
      if (old) {
        this._jobs.delete(id);
        this._counts.set(old.state, (this._counts.get(old.state) ?? 1) - 1);
        if (old.array_parent) {
          this._tasks.get(old.array_parent)?.delete(id);
        }
        gone.push(id);
      }
    };
    for (const id of ids) {
      forget(id);
      for (const task of this._tasks.get(id) ?? []) {
        forget(task);
      }
      this._tasks.delete(id);
    }
    if (gone.length) {
      const removed = new Set(gone);
      const pending = this._pendingChange();
      pending.removed.push(...gone);
      pending.ended = pending.ended.filter(j => !removed.has(j.id));
      this._bump(gone);
    }
  }

  /** Forget every job (e.g. before a full reload). */
  clear(): void {
    this._jobs.clear();
    this._counts.clear();
    this._tasks.clear();
    this._bump([]);
  }

  /** Jobs matching `filter`, sorted by `sort`; cached until the next change. */
  view(filter: IJobFilter = {}, sort: SortKey = '-submit_time'): IJobSummary[] {
    const states = filter.states && filter.states.length ? [...filter.states].sort() : [];
    const text = (filter.text ?? '').trim().toLowerCase();
    const site = filter.site ?? '';
    const failed = !!filter.failed;
    const key = `${states.join(',')}|${site}|${text}|${sort}|${failed}`;
    const hit = this._cache.get(key);
    if (hit && hit.version === this._version) {
      return hit.jobs;
    }
    const stateSet = new Set<string>(states);
    const out: IJobSummary[] = [];
    for (const job of this._jobs.values()) {
      if (stateSet.size && !stateSet.has(job.state)) {
        continue;
      }
      if (site && job.site !== site) {
        continue;
      }
      if (text && !matches(job, text)) {
        continue;
      }
      if (failed && !isFailed(job)) {
        continue;
      }
      out.push(job);
    }
    out.sort(compareBy(sort));
    if (this._cache.size > 16) {
      this._cache.clear();
    }
    this._cache.set(key, { version: this._version, jobs: out });
    return out;
  }

  /**
   * The rows of the list: the view, grouped by state or site with a header row per group.
   * Groups in `collapsed` show their header only.
   */
  rows(
    filter: IJobFilter = {},
    sort: SortKey = '-submit_time',
    groupBy: GroupBy = 'none',
    collapsed: ReadonlySet<string> = new Set()
  ): Row[] {
    const jobs = this.view(filter, sort);
    if (groupBy === 'none') {
      return jobs.map(job => ({ kind: 'job', job }));
    }
    const groups = new Map<string, IJobSummary[]>();
    const order: string[] =
      groupBy === 'state' ? [...STATES] : [...new Set(jobs.map(j => j.site))].sort();
    for (const k of order) {
      groups.set(k, []);
    }
    for (const job of jobs) {
      const k = groupBy === 'state' ? job.state : job.site;
      groups.get(k)?.push(job);
    }
    const rows: Row[] = [];
    for (const [k, members] of groups) {
      if (!members.length) {
        continue;
      }
      const isCollapsed = collapsed.has(`${groupBy}:${k}`);
      rows.push({
        kind: 'group',
        key: `${groupBy}:${k}`,
        label: k,
        count: members.length,
        collapsed: isCollapsed
      });
      if (!isCollapsed) {
        for (const job of members) {
          rows.push({ kind: 'job', job });
        }
      }
    }
    return rows;
  }

  private _put(job: IJobSummary, live: boolean): boolean {
    const old = this._jobs.get(job.id);
    if (old && (olderAccount(job, old) || sameSummary(old, job))) {
      return false;
    }
    if (old) {
      this._counts.set(old.state, (this._counts.get(old.state) ?? 1) - 1);
    }
    this._jobs.set(job.id, job);
    this._counts.set(job.state, (this._counts.get(job.state) ?? 0) + 1);
    if (job.array_parent && !old) {
      let tasks = this._tasks.get(job.array_parent);
      if (!tasks) {
        tasks = new Set();
        this._tasks.set(job.array_parent, tasks);
      }
      tasks.add(job.id);
    }
    const pending = this._pendingChange();
    pending.changed.push(job.id);
    if (live && old && !FINAL_STATES.has(old.state) && isFinal(job.state)) {
      pending.ended.push(job);
    }
    return true;
  }

  /** A `job_deleted` event: the job goes, with its tasks if it is an array. */
  private _delete(event: IJobDeletedEvent): boolean {
    const before = this._jobs.size;
    this.remove([event.job.id]);
    return this._jobs.size !== before;
  }

  private _pendingChange(): IStoreChange {
    if (!this._pending) {
      this._pending = { changed: [], ended: [], removed: [] };
    }
    return this._pending;
  }

  private _bump(changed: string[]): void {
    this._pendingChange().changed.push(...changed);
    if (this._batchDepth === 0) {
      this._flush();
    }
  }

  private _flush(): void {
    const pending = this._pending;
    this._pending = null;
    if (!pending) {
      return;
    }
    this._version++;
    this._changed.emit(pending);
  }
}

function matches(job: IJobSummary, text: string): boolean {
  return (
    job.name.toLowerCase().includes(text) ||
    job.id.toLowerCase().includes(text) ||
    job.site.toLowerCase().includes(text) ||
    (job.native_id ?? '').toLowerCase().includes(text)
  );
}

/** True when `job` is an older account of the job than `known` (fewer state changes). */
function olderAccount(job: IJobSummary, known: IJobSummary): boolean {
  return (
    typeof job.changes === 'number' &&
    typeof known.changes === 'number' &&
    job.changes < known.changes
  );
}

function sameSummary(a: IJobSummary, b: IJobSummary): boolean {
  return (
    a.state === b.state &&
    a.state_details === b.state_details &&
    a.exit_code === b.exit_code &&
    a.start_time === b.start_time &&
    a.end_time === b.end_time &&
    a.name === b.name &&
    a.priority === b.priority &&
    a.native_id === b.native_id &&
    a.site === b.site
  );
}
