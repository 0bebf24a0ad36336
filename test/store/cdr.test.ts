/**
 * The `cdr` table (migration 004) on both stores, and the CDR writer over it: batches in one
 * transaction, list by time with a limit, retention, flush on close, and a failed flush keeps
 * its rows.
 */
import { describe, expect, it } from 'vitest';
import { CdrWriter } from '../../src/dialog/cdr-writer.js';
import type { CallRecord } from '../../src/dialog/tracker.js';
import { Logger } from '../../src/log/logger.js';
import { openStore, type NewCdr } from '../../src/store/index.js';
import { useStores, withTestStore } from '../helpers/stores.js';

const stores = useStores();
const T0 = Date.UTC(2026, 10, 29, 20, 0, 0);

function row(i: number, startMs: number): NewCdr {
  return {
    node: 'n1',
    call_id: `call-${i}`,
    from_uri: 'sip:alice@192.0.2.10',
    to_uri: 'sip:bob@192.0.2.20',
    source: 'udp:192.0.2.10:5060',
    setid: i % 2 === 0 ? 1 : null,
    destination: i % 2 === 0 ? 'sip:192.0.2.20' : null,
    start_ms: startMs,
    answer_ms: i % 2 === 0 ? startMs + 1500 : null,
    end_ms: startMs + 61_500,
    duration: 61.5,
    billable: i % 2 === 0 ? 60 : 0,
    code: i % 2 === 0 ? 200 : 486,
    reason: i % 2 === 0 ? 'BYE' : 'Busy Here',
    ended_by: i % 2 === 0 ? 'caller' : 'failed',
  };
}

function record(i: number): CallRecord {
  return {
    callId: `w-${i}`,
    fromUri: 'sip:a@x',
    toUri: 'sip:b@y',
    source: 'udp:127.0.0.1:5000',
    setid: 1,
    destination: 'sip:127.0.0.1:5070',
    startMs: T0 + i,
    answerMs: T0 + i + 250,
    endMs: T0 + i + 1250,
    code: 200,
    reason: 'BYE',
    endedBy: 'caller',
  };
}

for (const kind of stores) {
  describe.skipIf(kind.skip)(`cdr table (${kind.name})`, () => {
    it('stores rows exactly (ms times, seconds, nulls) and lists them newest first, by --since / --until / --limit', async () => {
      const db = await kind.fresh();
      await withTestStore(db, async (s) => {
        await s.write((t) => t.cdr.insert(Array.from({ length: 450 }, (_, i) => row(i, T0 + i * 1000))));
        expect(await s.cdr.count()).toBe(450);
        const all = await s.cdr.list();
        expect(all[0]).toMatchObject({ ...row(449, T0 + 449_000), setid: null, answer_ms: null });
        expect(all[1]).toMatchObject(row(448, T0 + 448_000));
        expect(typeof all[1]!.start_ms).toBe('number');
        const window = await s.cdr.list({ sinceMs: T0 + 10_000, untilMs: T0 + 20_000 });
        expect(window.map((r) => r.call_id)).toEqual(Array.from({ length: 10 }, (_, i) => `call-${19 - i}`));
        expect(await s.cdr.list({ limit: 3 })).toHaveLength(3);
        expect(await s.cdr.prune(T0 + 100_000)).toBe(100);
        expect(await s.cdr.count()).toBe(350);
      });
    });

    it('the writer: rows queued off the hot path, one transaction per flush, the rest written on close', async () => {
      const db = await kind.fresh();
      const store = await openStore(db);
      let batches = 0;
      const writer = new CdrWriter({
        write: (fn) => {
          batches++;
          return store.write((t) => fn(t.cdr));
        },
        prune: (before) => store.cdr.prune(before),
        node: 'n1',
        flushMs: 60_000, // nothing is flushed by the timer in this test
        keepDays: 0,
        maxQueue: 10_000,
        logger: new Logger({ level: 'error' }),
      });
      for (let i = 0; i < 1000; i++) writer.add(record(i));
      expect(writer.pending).toBe(1000);
      await writer.flush();
      expect(batches).toBe(1);
      for (let i = 1000; i < 1500; i++) writer.add(record(i));
      await writer.close();
      expect(batches).toBe(2);
      expect(await store.cdr.count()).toBe(1500);
      const r = (await store.cdr.list({ limit: 1 }))[0]!;
      expect(r).toMatchObject({ call_id: 'w-1499', duration: 1.25, billable: 1, node: 'n1', ended_by: 'caller' });
      await store.close();
    });
  });
}

describe('cdr writer bounds', () => {
  it('keeps the rows of a failed flush for the next one, and drops beyond maxQueue (counted)', async () => {
    let fail = true;
    const written: number[] = [];
    const writer = new CdrWriter({
      write: async (fn) => {
        if (fail) throw new Error('disk full');
        await fn({ insert: async (rows: readonly unknown[]) => void written.push(rows.length) } as never);
      },
      prune: async () => 0,
      node: 'n',
      flushMs: 60_000,
      keepDays: 0,
      maxQueue: 5,
      logger: new Logger({ level: 'error' }),
    });
    for (let i = 0; i < 7; i++) writer.add(record(i));
    expect(writer.stats.dropped).toBe(2);
    await writer.flush();
    expect(writer.stats.failedFlushes).toBe(1);
    expect(writer.pending).toBe(5);
    fail = false;
    await writer.close();
    expect(written).toEqual([5]);
  });
});
