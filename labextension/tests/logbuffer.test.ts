import { LogBuffer } from '../src/logbuffer';

describe('LogBuffer', () => {
  it('appends in order and tracks byte offsets', () => {
    const b = new LogBuffer();
    expect(b.append(0, 'héllo\n')).toBe('appended');
    expect(b.end).toBe(7);
    expect(b.append(7, 'world\n')).toBe('appended');
    expect(b.text).toBe('héllo\nworld\n');
  });

  it('skips bytes already held and refuses gaps', () => {
    const b = new LogBuffer();
    b.append(0, 'abc\n');
    expect(b.append(0, 'abc\n')).toBe('duplicate');
    expect(b.append(2, 'c\ndef\n')).toBe('appended');
    expect(b.text).toBe('abc\ndef\n');
    expect(b.append(20, 'x')).toBe('gap');
    expect(b.end).toBe(8);
  });

  it('drops the oldest text beyond its size, at a line break', () => {
    const b = new LogBuffer(20);
    for (let i = 0; i < 10; i++) {
      b.append(b.end, `line ${i}\n`);
    }
    expect(b.truncated).toBe(true);
    expect(b.text.length).toBeLessThanOrEqual(20);
    expect(b.text.startsWith('line')).toBe(true);
    expect(b.text.endsWith('line 9\n')).toBe(true);
    expect(b.end).toBe(70);
  });
});
