import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../src/control/line-splitter.js';

describe('LineSplitter', () => {
  it('joins a line split over chunks and splits several lines in one chunk', () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from('{"id":1,')).lines).toEqual([]);
    expect(s.push(Buffer.from('"cmd":"a"}\n{"id":2}\n{"id"')).lines).toEqual(['{"id":1,"cmd":"a"}', '{"id":2}']);
    expect(s.buffered).toBe(5);
    expect(s.push(Buffer.from(':3}\n')).lines).toEqual(['{"id":3}']);
    expect(s.buffered).toBe(0);
  });

  it('keeps a multi-byte UTF-8 character split between chunks intact', () => {
    const s = new LineSplitter();
    const bytes = Buffer.from('"Zürich ☎"\n');
    const cut = bytes.indexOf(0xe2) + 1; // inside the three bytes of ☎
    expect(s.push(bytes.subarray(0, cut)).lines).toEqual([]);
    expect(s.push(bytes.subarray(cut)).lines).toEqual(['"Zürich ☎"']);
  });

  it('reports overflow once a line passes the limit, with or without its newline', () => {
    const noNewline = new LineSplitter(10);
    expect(noNewline.push(Buffer.from('123456')).overflow).toBe(false);
    expect(noNewline.push(Buffer.from('789012')).overflow).toBe(true);

    const withNewline = new LineSplitter(10);
    const r = withNewline.push(Buffer.from('ok\n12345678901\n'));
    expect(r.lines).toEqual(['ok']);
    expect(r.overflow).toBe(true);

    const atLimit = new LineSplitter(10);
    expect(atLimit.push(Buffer.from('1234567890\n'))).toEqual({ lines: ['1234567890'], overflow: false });
  });
});
