import { FrameScheduler } from '../src/widgets/frame';

/** Animation frames that the test runs by hand (Node has none). */
let frames = new Map<number, FrameRequestCallback>();
let nextFrame = 1;

function runFrames(): number {
  const due = [...frames.values()];
  frames = new Map();
  for (const cb of due) {
    cb(performance.now());
  }
  return due.length;
}

beforeEach(() => {
  jest.useFakeTimers();
  frames = new Map();
  const g = globalThis as unknown as Record<string, unknown>;
  g.requestAnimationFrame = (cb: FrameRequestCallback): number => {
    frames.set(nextFrame, cb);
    return nextFrame++;
  };
  g.cancelAnimationFrame = (id: number): void => {
    frames.delete(id);
  };
});

afterEach(() => {
  jest.useRealTimers();
});

describe('FrameScheduler', () => {
  it('runs many requests as one call on the next frame', () => {
    const calls: number[] = [];
    const s = new FrameScheduler(() => calls.push(1));
    s.schedule();
    s.schedule();
    s.schedule();
    expect(calls).toHaveLength(0);
    expect(s.isPending).toBe(true);
    expect(runFrames()).toBe(1);
    expect(calls).toHaveLength(1);
    expect(s.isPending).toBe(false);
    s.schedule();
    runFrames();
    expect(calls).toHaveLength(2);
  });

  it('waits minInterval after a call, and never loses the last request', () => {
    let calls = 0;
    const s = new FrameScheduler(() => calls++, { minInterval: 100 });
    s.schedule();
    runFrames();
    expect(calls).toBe(1);
    s.schedule();
    s.schedule();
    expect(runFrames()).toBe(0);
    jest.advanceTimersByTime(50);
    expect(runFrames()).toBe(0);
    jest.advanceTimersByTime(60);
    expect(runFrames()).toBe(1);
    expect(calls).toBe(2);
    jest.advanceTimersByTime(500);
    s.schedule();
    expect(runFrames()).toBe(1);
    expect(calls).toBe(3);
  });

  it('cancels a pending call, and does nothing once disposed', () => {
    let calls = 0;
    const s = new FrameScheduler(() => calls++, { minInterval: 100 });
    s.schedule();
    s.cancel();
    expect(runFrames()).toBe(0);
    s.schedule();
    runFrames();
    s.schedule();
    s.dispose();
    jest.advanceTimersByTime(200);
    expect(runFrames()).toBe(0);
    s.schedule();
    jest.advanceTimersByTime(200);
    expect(runFrames()).toBe(0);
    expect(calls).toBe(1);
    expect(s.isDisposed).toBe(true);
  });
});
