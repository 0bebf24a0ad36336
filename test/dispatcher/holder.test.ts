import { describe, expect, it } from 'vitest';
import { DispatcherHolder } from '../../src/dispatcher/holder.js';
import { dumpSets } from '../../src/dispatcher/dump.js';
import type { StateChange } from '../../src/dispatcher/types.js';
import { SipctlError } from '../../src/errors.js';
import { FakeClock, KEY, row } from './helpers.js';

const A = 'sip:10.0.0.1:5060';
const B = 'sip:10.0.0.2:5060';
const C = 'sip:10.0.0.3:5060';

function setup() {
  const clock = new FakeClock();
  const changes: StateChange[] = [];
  const holder = new DispatcherHolder({ clock, onStateChange: (c) => changes.push(c) });
  return { clock, changes, holder };
}

function stateOf(h: DispatcherHolder, setid: number, uri: string) {
  return h.current.set(setid)!.destinations.find((d) => d.uri === uri)!.state;
}

describe('initial states from the flags column', () => {
  it('maps Kamailio bits: 4 disabled, 1 inactive, 8 probing, 2 (trying) still active', async () => {
    const { holder } = setup();
    await holder.reload([
      row(1, A, { flags: 4 }),
      row(1, B, { flags: 1 }),
      row(1, C, { flags: 8 }),
      row(1, 'sip:10.0.0.4', { flags: 2 }),
    ]);
    expect(stateOf(holder, 1, A)).toBe('disabled');
    expect(stateOf(holder, 1, B)).toBe('inactive');
    expect(stateOf(holder, 1, C)).toBe('probing');
    expect(stateOf(holder, 1, 'sip:10.0.0.4')).toBe('active');
  });
});

describe('setState', () => {
  it('changes one destination by any spelling of its URI, or all, and reports each change', async () => {
    const { holder, changes, clock } = setup();
    await holder.reload([row(1, A), row(1, B), row(2, C)]);
    clock.advance(5000);
    expect(() => holder.current.setState(1, 'sip:10.0.0.9', 'inactive', 'x')).toThrow(/set 1 has no destination sip:10.0.0.9/);
    expect(holder.current.setState(1, 'sip:10.0.0.1:5060', 'disabled', 'maintenance')).toBe(1);
    expect(changes).toEqual([{ setid: 1, uri: A, from: 'active', to: 'disabled', reason: 'maintenance' }]);
    const d = holder.current.set(1)!.destinations.find((x) => x.uri === A)!;
    expect(d.stats.stateSince).toBe(clock.now());
    expect(d.stats.stateReason).toBe('maintenance');
    expect(holder.current.setState(1, 'all', 'inactive', 'all down')).toBe(2);
    expect(stateOf(holder, 2, C)).toBe('active');
    expect(holder.current.setState(1, A, 'inactive', 'again')).toBe(0);
  });

  it('refuses an unknown set or state with a usage error', async () => {
    const { holder } = setup();
    await holder.reload([row(1, A)]);
    try {
      holder.current.setState(7, A, 'inactive', 'x');
      expect.unreachable();
    } catch (err) {
      expect((err as SipctlError).code).toBe('E_DS_NO_SET');
      expect((err as SipctlError).message).toMatch(/loaded sets: 1/);
    }
    expect(() => holder.current.setState(1, A, 'down' as never, 'x')).toThrow(/unknown state 'down'/);
  });
});

describe('reload', () => {
  it('keeps the state and counters of every destination still in its set', async () => {
    const { holder, clock } = setup();
    const V6 = 'sip:[2001:db8::1]:5060';
    const rowsV1 = [row(1, V6, { id: 1 }), row(1, B, { id: 2 }), row(1, C, { id: 3 })];
    await holder.reload(rowsV1);
    holder.current.setState(1, B, 'disabled', 'maintenance');
    for (let i = 0; i < 4; i++) holder.current.select(1, 'round-robin', KEY);
    const since = holder.current.set(1)!.destinations.find((d) => d.uri === B)!.stats.stateSince;
    clock.advance(60_000);
    // C is removed, D is new, V6 is now written in upper case (same normalized URI)
    const summary = await holder.reload([
      { ...rowsV1[0]!, destination: 'sip:[2001:DB8::1]:5060' },
      rowsV1[1]!,
      row(1, 'sip:10.0.0.4:5060', { id: 4, flags: 8 }),
    ]);
    expect(summary.total).toBe(3);
    expect(summary.sets).toEqual([{ setid: 1, count: 3, active: 1 }]);
    const byUri = new Map(holder.current.set(1)!.destinations.map((d) => [d.uri, d]));
    expect(byUri.get(B)!.state).toBe('disabled');
    expect(byUri.get(B)!.stats.stateSince).toBe(since);
    expect(byUri.get('sip:[2001:DB8::1]:5060')!.stats.requestsSent).toBe(2);
    expect(byUri.get('sip:[2001:DB8::1]:5060')!.targets).toEqual([{ protocol: 'udp', address: '2001:db8::1', port: 5060 }]);
    expect(byUri.get('sip:10.0.0.4:5060')!.state).toBe('probing');
    expect(byUri.has(C)).toBe(false);
  });

  it('a destination moved to another set starts afresh there (identity is setid + URI)', async () => {
    const { holder } = setup();
    await holder.reload([row(1, A, { id: 1 })]);
    holder.current.setState(1, A, 'inactive', 'x');
    await holder.reload([row(2, A, { id: 1 })]);
    expect(stateOf(holder, 2, A)).toBe('active');
  });

  it('applies an edited flags column and reports the change', async () => {
    const { holder, changes } = setup();
    await holder.reload([row(1, A, { id: 1 })]);
    await holder.reload([row(1, A, { id: 1, flags: 4 })]);
    expect(stateOf(holder, 1, A)).toBe('disabled');
    expect(changes).toEqual([{ setid: 1, uri: A, from: 'active', to: 'disabled', reason: 'flags changed from 0 to 4' }]);
  });

  it('a failing reload keeps the old sets and says which row is wrong', async () => {
    const { holder } = setup();
    await holder.reload([row(1, A, { id: 1 })]);
    const before = holder.current;
    const bad = [
      { rows: [row(1, B, { id: 2 }), row(1, C, { id: 3, attrs: 'wieght=5' })], msg: /row 3: attrs 'wieght=5': unknown attribute 'wieght'/ },
      { rows: [row(1, 'sips:10.0.0.5', { id: 5 })], msg: /row 5: destination 'sips:10.0.0.5': sips: needs TLS/ },
      { rows: [row(1, 'pbx', { id: 6 })], msg: /row 6: destination 'pbx': not a SIP URI/ },
      { rows: [row(1, A, { id: 7 }), row(1, 'sip:10.0.0.1:5060', { id: 8 })], msg: /rows 7 and 8 both name sip:10.0.0.1:5060 in set 1/ },
      { rows: [row(-1 as number, A, { id: 9 })], msg: /row 9: set id '-1'/ },
    ];
    for (const { rows, msg } of bad) {
      const err = await holder.reload(rows).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SipctlError);
      expect((err as SipctlError).code).toBe('E_DS_RELOAD_FAILED');
      expect((err as SipctlError).message).toMatch(/previous sets kept/);
      expect((err as SipctlError).message).toMatch(msg);
      expect(holder.current).toBe(before);
    }
    expect(holder.current.select(1, 'round-robin', KEY)!.uri).toBe(A);
  });

  it('serializes concurrent reloads: the last one called wins', async () => {
    const { holder } = setup();
    const p1 = holder.reload([row(1, A)]);
    const p2 = holder.reload([row(1, B)]);
    await Promise.all([p1, p2]);
    expect(holder.current.set(1)!.destinations.map((d) => d.uri)).toEqual([B]);
  });
});

describe('dump', () => {
  it('shows per destination its state letters, counters and targets', async () => {
    const { holder } = setup();
    await holder.reload([row(3, 'sip:10.0.0.7;transport=tcp', { id: 11, priority: 5, attrs: 'duid=x', description: 'pbx 7' }), row(3, B, { id: 12, flags: 4 })]);
    holder.current.select(3, 'priority', KEY);
    const dump = dumpSets(holder.current, () => true);
    expect(dump.sets).toHaveLength(1);
    const [first, second] = dump.sets[0]!.destinations;
    expect(first).toMatchObject({
      id: 11,
      uri: 'sip:10.0.0.7;transport=tcp',
      state: 'active',
      flags: 'AP',
      priority: 5,
      attrs: 'duid=x',
      description: 'pbx 7',
      targets: [{ protocol: 'tcp', address: '10.0.0.7', port: 5060 }],
      resolvedVia: 'literal',
      requestsSent: 1,
      lastProbe: null,
      stateReason: 'loaded',
    });
    expect(second).toMatchObject({ state: 'disabled', flags: 'DX', requestsSent: 0 });
    expect(JSON.parse(JSON.stringify(dump))).toEqual(dump);
  });
});

describe('createDispatch (what the proxy core calls)', () => {
  it('selects through the current sets, knows its next hops, and routes probe answers', async () => {
    const { createDispatch } = await import('../../src/dispatcher/dispatch.js');
    const { holder } = setup();
    await holder.reload([row(1, 'sip:10.0.0.1:5070'), row(1, 'sip:[2001:db8::5];transport=tcp')]);
    const dispatch = createDispatch(holder);
    expect(dispatch.select(1, 4, KEY)!.uri).toBe('sip:10.0.0.1:5070');
    expect(dispatch.select(1, 'round-robin', KEY)!.targets).toEqual([{ protocol: 'tcp', address: '2001:db8::5', port: 5060 }]);
    expect(dispatch.isNextHop('10.0.0.1', 5070)).toBe(true);
    expect(dispatch.isNextHop('10.0.0.1', 5071)).toBe(false);
    expect(dispatch.isNextHop('10.0.0.1')).toBe(true); // any port (a PBX's TCP connection)
    expect(dispatch.isNextHop('::ffff:10.0.0.1', 5070)).toBe(true); // as a dual-stack socket reports it
    expect(dispatch.isNextHop('2001:db8::5', 0)).toBe(true);
    expect(dispatch.isNextHop('10.0.0.2')).toBe(false);
    expect(dispatch.handleProbeResponse('z9hG4bKsipctlp.1.abc', 200)).toBe(true);
    expect(dispatch.handleProbeResponse('z9hG4bKother', 200)).toBe(false);
    await holder.reload([row(1, 'sip:10.0.0.2')]);
    expect(dispatch.isNextHop('10.0.0.1')).toBe(false);
    expect(dispatch.isNextHop('10.0.0.2', 5060)).toBe(true);
  });
});
