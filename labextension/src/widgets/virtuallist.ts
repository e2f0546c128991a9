/**
 * VirtualList: a fixed-row-height list that keeps only the visible rows (plus a margin) in the
 * DOM and reuses their elements, so ten thousand rows cost what forty do.
 */
import { Widget } from '@lumino/widgets';

export interface IVirtualListOptions<T> {
  rowHeight: number;
  /** Create an empty row element (called for the pool only). */
  createRow: () => HTMLElement;
  /** Fill `el` for `item` at `index`. */
  renderRow: (el: HTMLElement, item: T, index: number) => void;
  overscan?: number;
}

export class VirtualList<T> extends Widget {
  private _items: ReadonlyArray<T> = [];
  private _spacer: HTMLDivElement;
  private _pool: HTMLElement[] = [];
  private _frame = 0;
  private _opts: IVirtualListOptions<T>;
  private _rendered: { first: number; last: number; items: ReadonlyArray<T> | null } = {
    first: 0,
    last: -1,
    items: null
  };

  constructor(opts: IVirtualListOptions<T>) {
    super();
    this._opts = opts;
    this.addClass('swm-VirtualList');
    this._spacer = document.createElement('div');
    this._spacer.className = 'swm-VirtualList-spacer';
    this.node.appendChild(this._spacer);
    this.node.addEventListener('scroll', () => this._schedule(), { passive: true });
  }

  get items(): ReadonlyArray<T> {
    return this._items;
  }

  /** Replace the items; the visible rows are redrawn on the next frame. */
  setItems(items: ReadonlyArray<T>): void {
    this._items = items;
    this._spacer.style.height = `${items.length * this._opts.rowHeight}px`;
    this._rendered.items = null;
    this._schedule();
  }

  /** Redraw the visible rows on the next frame (items changed in place). */
  refresh(): void {
    this._rendered.items = null;
    this._schedule();
  }

  /** Draw now (used by tests and after a resize). */
  renderNow(): void {
    if (this._frame) {
      cancelAnimationFrame(this._frame);
      this._frame = 0;
    }
    this._render();
  }

  scrollToIndex(index: number): void {
    const h = this._opts.rowHeight;
    const top = index * h;
    const node = this.node;
    if (top < node.scrollTop) {
      node.scrollTop = top;
    } else if (top + h > node.scrollTop + node.clientHeight) {
      node.scrollTop = top + h - node.clientHeight;
    }
    this._schedule();
  }

  protected onResize(): void {
    this._rendered.items = null;
    this._schedule();
  }

  protected onAfterShow(): void {
    this._rendered.items = null;
    this._schedule();
  }

  protected onAfterAttach(): void {
    this._rendered.items = null;
    this._schedule();
  }

  private _schedule(): void {
    if (!this._frame) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._render();
      });
    }
  }

  private _render(): void {
    const { rowHeight, overscan = 8 } = this._opts;
    const height = this.node.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.node.scrollTop / rowHeight) - overscan);
    const last = Math.min(
      this._items.length - 1,
      Math.ceil((this.node.scrollTop + height) / rowHeight) + overscan
    );
    const r = this._rendered;
    if (r.items === this._items && r.first === first && r.last === last) {
      return;
    }
    const count = Math.max(0, last - first + 1);
    while (this._pool.length < count) {
      const el = this._opts.createRow();
      el.style.position = 'absolute';
      el.style.left = '0';
      el.style.right = '0';
      el.style.height = `${rowHeight}px`;
      this._pool.push(el);
      this.node.appendChild(el);
    }
    for (let i = 0; i < this._pool.length; i++) {
      const el = this._pool[i];
      if (i < count) {
        const index = first + i;
        el.style.transform = `translateY(${index * rowHeight}px)`;
        el.hidden = false;
        this._opts.renderRow(el, this._items[index], index);
      } else {
        el.hidden = true;
      }
    }
    this._rendered = { first, last, items: this._items };
  }
}
