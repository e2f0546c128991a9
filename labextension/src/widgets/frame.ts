/**
 * The one animation-frame scheduler of the widgets: any number of redraw requests become one
 * call on the next frame; with `minInterval`, at most one call every `minInterval` ms, so a burst
 * of websocket events costs a few redraws a second, not one per event or per frame.
 */
import { IDisposable } from '@lumino/disposable';

export interface IFrameSchedulerOptions {
  /** Shortest time (ms) from the start of one call to the next; 0 (the default) for every frame. */
  minInterval?: number;
}

/** Runs a callback on the next animation frame, once however often it is scheduled before. */
export class FrameScheduler implements IDisposable {
  private _callback: () => void;
  private _minInterval: number;
  private _frame = 0;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _last = -Infinity;
  private _disposed = false;

  constructor(callback: () => void, options: IFrameSchedulerOptions = {}) {
    this._callback = callback;
    this._minInterval = options.minInterval ?? 0;
  }

  /** Whether a call is waiting for its frame (or for `minInterval` to pass). */
  get isPending(): boolean {
    return this._frame !== 0 || this._timer !== null;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Call the callback on the next frame (after `minInterval` since the last call); merges requests. */
  schedule(): void {
    if (this._disposed || this.isPending) {
      return;
    }
    const wait = this._last + this._minInterval - performance.now();
    if (wait > 0) {
      this._timer = setTimeout(() => {
        this._timer = null;
        this._requestFrame();
      }, wait);
    } else {
      this._requestFrame();
    }
  }

  /** Drop a pending call. */
  cancel(): void {
    if (this._frame) {
      cancelAnimationFrame(this._frame);
      this._frame = 0;
    }
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  /** Drop a pending call; later `schedule()` calls do nothing. */
  dispose(): void {
    this.cancel();
    this._disposed = true;
  }

  private _requestFrame(): void {
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this._last = performance.now();
      this._callback();
    });
  }
}
