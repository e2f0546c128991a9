/**
 * The jobs table's model: its columns, their order and widths, the sort and the filters, and
 * the page shown. The server sorts, filters and pages (`GET /jobs`), so a table over 100,000 jobs reads
 * one page at a time; this module only says which page to ask for. No JupyterLab imports.
 */
import type { IJobQuery } from './api';
import { formatDuration, formatTime } from './format';
import type { IJobSummary } from './types';

export type ColumnId = 'state' | 'name' | 'site' | 'owner' | 'submitted' | 'elapsed' | 'exit';

export interface IColumn {
  id: ColumnId;
  label: string;
  /** The server's sort key (ascending); none: the column does not sort. */
  sort?: string;
  /** Width in px. */
  width: number;
  /** Only on a hub (jobs of several owners). */
  hubOnly?: boolean;
}

export const COLUMNS: ReadonlyArray<IColumn> = [
  { id: 'state', label: 'State', sort: 'state', width: 90 },
  { id: 'name', label: 'Name', sort: 'name', width: 240 },
  { id: 'site', label: 'Site', sort: 'site', width: 110 },
  { id: 'owner', label: 'Owner', sort: 'owner', width: 110, hubOnly: true },
  { id: 'submitted', label: 'Submitted', sort: 'submit_time', width: 150 },
  { id: 'elapsed', label: 'Elapsed / duration', width: 120 },
  { id: 'exit', label: 'Exit', sort: 'exit_code', width: 60 }
];

export const MIN_WIDTH = 40;

const COLUMN_IDS: ReadonlyArray<ColumnId> = COLUMNS.map(c => c.id);

/**
 * The columns a `tableColumns` setting names, in its order (the order of the table), without
 * unknown names or repeats; anything but a list means every column in the default order.
 */
export function columnsOf(value: unknown): ColumnId[] {
  if (!Array.isArray(value)) {
    return [...COLUMN_IDS];
  }
  const out: ColumnId[] = [];
  for (const v of value) {
    if (COLUMN_IDS.includes(v as ColumnId) && !out.includes(v as ColumnId)) {
      out.push(v as ColumnId);
    }
  }
  return out;
}

/** What the table filters on (the server's `GET /jobs` parameters). */
export interface ITableFilter {
  /** A state name, `failed`, `active` (not final) or '' for all. */
  state: string;
  name: string;
  site: string;
  /** Only the jobs of this owner ('' for everyone's). */
  owner: string;
}

export const ACTIVE_STATES = ['queued', 'held', 'waiting', 'transferring', 'running'];

export class TableModel {
  /** Rows per page. */
  readonly pageSize: number;
  sortColumn: ColumnId = 'submitted';
  descending = true;
  filter: ITableFilter = { state: '', name: '', site: '', owner: '' };
  offset = 0;
  widths: Record<string, number> = {};
  /**
   * The columns shown, in their order (the `tableColumns` setting); Owner among them shows only
   * on a hub but keeps its place.
   */
  order: ColumnId[] = [...COLUMN_IDS];

  constructor(pageSize = 50) {
    this.pageSize = pageSize;
    for (const c of COLUMNS) {
      this.widths[c.id] = c.width;
    }
  }

  /** The columns shown, in order (the owner column only on a hub). */
  columns(hub: boolean): IColumn[] {
    const out: IColumn[] = [];
    for (const id of this.order) {
      const c = COLUMNS.find(col => col.id === id);
      if (c && (hub || !c.hubOnly)) {
        out.push(c);
      }
    }
    return out;
  }

  /** Show these columns in this order (a `tableColumns` setting; see `columnsOf`). */
  setOrder(columns: unknown): void {
    this.order = columnsOf(columns);
  }

  /**
   * Move `column` just before or after `target` (a header dropped on another one's left or right
   * half). Returns whether the order changed; unknown or equal columns change nothing.
   */
  moveColumn(column: ColumnId, target: ColumnId, place: 'before' | 'after'): boolean {
    if (column === target || !this.order.includes(column) || !this.order.includes(target)) {
      return false;
    }
    const rest = this.order.filter(id => id !== column);
    const at = rest.indexOf(target) + (place === 'after' ? 1 : 0);
    rest.splice(at, 0, column);
    const changed = rest.some((id, i) => id !== this.order[i]);
    this.order = rest;
    return changed;
  }

  /**
   * Move `column` one place left (-1) or right (+1) among the columns shown (the header's
   * "Move column left/right"); false at either end.
   */
  shiftColumn(column: ColumnId, step: -1 | 1, hub: boolean): boolean {
    const shown = this.columns(hub).map(c => c.id);
    const i = shown.indexOf(column);
    const neighbour = shown[i + step];
    if (i < 0 || !neighbour) {
      return false;
    }
    return this.moveColumn(column, neighbour, step < 0 ? 'before' : 'after');
  }

  /** Sort by `column`: a new column sorts ascending (newest first for Submitted), again flips it. */
  sortBy(column: ColumnId): void {
    const col = COLUMNS.find(c => c.id === column);
    if (!col?.sort) {
      return;
    }
    if (this.sortColumn === column) {
      this.descending = !this.descending;
    } else {
      this.sortColumn = column;
      this.descending = column === 'submitted';
    }
    this.offset = 0;
  }

  /** The server's sort key of the current sort. */
  sortKey(): string {
    const key = COLUMNS.find(c => c.id === this.sortColumn)?.sort ?? 'submit_time';
    return this.descending ? `-${key}` : key;
  }

  setFilter(filter: Partial<ITableFilter>): void {
    this.filter = { ...this.filter, ...filter };
    this.offset = 0;
  }

  /** Set a column's width (at least MIN_WIDTH). */
  resize(column: ColumnId, width: number): void {
    this.widths[column] = Math.max(MIN_WIDTH, Math.round(width));
  }

  /** The `GET /jobs` query of the page shown. */
  query(): IJobQuery {
    const f = this.filter;
    const state = f.state === 'active' ? ACTIVE_STATES : f.state ? [f.state] : undefined;
    return {
      state,
      name: f.name.trim() || undefined,
      site: f.site || undefined,
      owner: f.owner || undefined,
      top_level: true,
      sort: this.sortKey(),
      limit: this.pageSize,
      offset: this.offset
    };
  }

  /** Go `pages` pages forward (negative: back), within 0..total. */
  turn(pages: number, total: number): void {
    const last = Math.max(0, Math.floor((Math.max(total, 1) - 1) / this.pageSize) * this.pageSize);
    this.offset = Math.max(0, Math.min(last, this.offset + pages * this.pageSize));
  }

  /** "51–100 of 3,000" */
  rangeText(shown: number, total: number): string {
    if (!total) {
      return '0 jobs';
    }
    const fmt = (n: number): string => n.toLocaleString('en-US');
    return `${fmt(this.offset + 1)}–${fmt(this.offset + shown)} of ${fmt(total)}`;
  }
}

/** The text of a cell (the state cell is drawn as a badge by the widget). */
export function cellText(job: IJobSummary, column: ColumnId, now = Date.now() / 1000): string {
  switch (column) {
    case 'state':
      return job.state;
    case 'name':
      return job.name;
    case 'site':
      return job.site;
    case 'owner':
      return job.owner;
    case 'submitted':
      return formatTime(job.submit_time);
    case 'elapsed':
      return job.start_time ? formatDuration((job.end_time ?? now) - job.start_time) : '';
    case 'exit':
      return job.exit_code === null || job.exit_code === undefined ? '' : String(job.exit_code);
  }
}
