/**
 * RowList: fixed-height rows on JupyterLab's own WindowedList. Only the rows in view (plus a
 * margin) are in the DOM, so ten thousand jobs cost what forty do. A row is a widget made when
 * its item scrolls into view and disposed when it leaves: no row stays in the DOM hidden, so
 * what the list shows is exactly its items.
 */
import { WindowedLayout, WindowedList, WindowedListModel } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

export interface IRowListOptions<T> {
  /** Height of every row (px). */
  rowHeight: number;
  /** A key that names the item among the items (the row of an item keeps its element). */
  key: (item: T) => string;
  /** Create an empty row element. */
  createRow: () => HTMLElement;
  /** Fill `node` for `item` at `index`. */
  renderRow: (node: HTMLElement, item: T, index: number) => void;
  /** Rows drawn beyond each edge of the view. */
  overscan?: number;
}

/** A row widget and what it last showed. */
class Row<T> extends Widget {
  item: T | undefined = undefined;
  index = -1;
  version = -1;
}

/** The items of a RowList and the row widgets in view, for WindowedList. */
class RowListModel<T> extends WindowedListModel {
  items: ReadonlyArray<T> = [];
  /** Bumped when every row must be drawn again, even one showing the same item. */
  version = 0;
  private _opts: IRowListOptions<T>;
  private _rows = new Map<string, Row<T>>();
  /** The indices being drawn: rows are made for these only. */
  private _range: [number, number] = [0, -1];
  /** What a row out of the drawn range is, to the model's size measuring: not in the DOM. */
  private _placeholder = new Widget();

  constructor(opts: IRowListOptions<T>) {
    super({ overscanCount: opts.overscan ?? 8 });
    this._opts = opts;
  }

  estimateWidgetSize = (): number => this._opts.rowHeight;

  /**
   * The range WindowedList draws next. WindowedListModel also asks `widgetRenderer` for every
   * index it has not measured yet (up to the scroll position: thousands), so rows are made only
   * for the drawn range; other indices get a placeholder that is not in the DOM (sized by
   * `estimateWidgetSize`).
   */
  getRangeToRender(
    ...args: Parameters<WindowedListModel['getRangeToRender']>
  ): ReturnType<WindowedListModel['getRangeToRender']> {
    this._range = [0, -1];
    const range = super.getRangeToRender(...args);
    if (range && !args[0]?.virtual) {
      this._range = [range[0], range[1]];
    }
    return range;
  }

  widgetRenderer = (index: number): Widget => {
    const item = this.items[index];
    if (item === undefined || index < this._range[0] || index > this._range[1]) {
      return this._placeholder;
    }
    const key = this._opts.key(item);
    let row = this._rows.get(key);
    if (!row || row.isDisposed) {
      const created = new Row<T>({ node: this._opts.createRow() });
      created.node.style.height = `${this._opts.rowHeight}px`;
      created.disposed.connect(() => {
        if (this._rows.get(key) === created) {
          this._rows.delete(key);
        }
      });
      this._rows.set(key, created);
      row = created;
    }
    if (row.item !== item || row.index !== index || row.version !== this.version) {
      this._opts.renderRow(row.node, item, index);
      row.item = item;
      row.index = index;
      row.version = this.version;
    }
    return row;
  };

  dispose(): void {
    this._placeholder.dispose();
    super.dispose();
  }
}

/** The layout of a RowList: a row that leaves the view is disposed. */
class RowListLayout extends WindowedLayout {
  /**
   * Remove `widget` if it is in the layout. (Lumino's `removeWidget` of a widget that is not
   * there removes the last one instead, and disposing a row sends the list a child-removed
   * message that calls it.)
   */
  removeWidget(widget: Widget): void {
    const index = this.widgets.indexOf(widget);
    if (index >= 0) {
      this.removeWidgetAt(index);
    }
  }

  protected detachWidget(index: number, widget: Widget): void {
    super.detachWidget(index, widget);
    widget.dispose();
  }
}

export class RowList<T> extends WindowedList<RowListModel<T>> {
  constructor(opts: IRowListOptions<T>) {
    super({ model: new RowListModel<T>(opts), layout: new RowListLayout() });
    this.addClass('swm-RowList');
  }

  get items(): ReadonlyArray<T> {
    return this.viewModel.items;
  }

  /** Replace the items; the rows in view are drawn again on the next frame. */
  setItems(items: ReadonlyArray<T>): void {
    const model = this.viewModel;
    model.items = items;
    model.version++;
    if (model.widgetCount !== items.length) {
      model.widgetCount = items.length;
    }
    this.update();
  }

  /** Draw the rows in view again on the next frame (what they show changed, not the items). */
  refresh(): void {
    this.viewModel.version++;
    this.update();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    const model = this.viewModel;
    super.dispose();
    model.dispose();
  }
}
