/** The status bar item: running and queued counts, live from the JobStore. */
import { Widget } from '@lumino/widgets';

import { JobStore } from '../store';
import { FrameScheduler } from './frame';

export class SwmStatus extends Widget {
  private _renderer = new FrameScheduler(() => this._render());

  constructor(
    private readonly _store: JobStore,
    onClick: () => void
  ) {
    super();
    this.addClass('swm-Status');
    this.node.title = 'Sky Port jobs: click to open the sidebar';
    this.node.addEventListener('click', onClick);
    _store.changed.connect(this._schedule, this);
    this._render();
  }

  dispose(): void {
    this._store.changed.disconnect(this._schedule, this);
    this._renderer.dispose();
    super.dispose();
  }

  private _schedule(): void {
    this._renderer.schedule();
  }

  private _render(): void {
    const c = this._store.counts();
    const running = c.running + c.transferring;
    const queued = c.queued + c.waiting + c.held;
    this.node.textContent = `Sky Port: ${running} running · ${queued} queued`;
    this.node.dataset.running = String(running);
    this.node.dataset.queued = String(queued);
  }
}
