import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { SipctlError } from '../../src/errors.js';
import { openStore, type Store } from '../../src/store/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';

describe('dispatcher repository', () => {
  const tempDir = useTempDirs();
  let store: Store;

  beforeEach(() => {
    store = openStore(join(tempDir(), 'sipctl.db'));
    return () => store.close();
  });

  it('adds destinations with the table defaults and lists them per set', () => {
    const a = store.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1:5060' });
    const b = store.dispatcher.add({
      setid: 1,
      destination: 'sip:10.0.0.2:5060;transport=tcp',
      flags: 2,
      priority: 10,
      attrs: 'weight=50;duid=pbx-b',
      description: 'PBX B',
    });
    const c = store.dispatcher.add({ setid: 2, destination: 'sip:pbx.example.com' });
    expect(store.dispatcher.list()).toEqual([
      { id: a.id, setid: 1, destination: 'sip:10.0.0.1:5060', flags: 0, priority: 0, attrs: '', description: '' },
      {
        id: b.id,
        setid: 1,
        destination: 'sip:10.0.0.2:5060;transport=tcp',
        flags: 2,
        priority: 10,
        attrs: 'weight=50;duid=pbx-b',
        description: 'PBX B',
      },
      { id: c.id, setid: 2, destination: 'sip:pbx.example.com', flags: 0, priority: 0, attrs: '', description: '' },
    ]);
    expect(store.dispatcher.list(2).map((r) => r.id)).toEqual([c.id]);
    expect(store.dispatcher.count()).toBe(3);
    expect(store.dispatcher.count(1)).toBe(2);
    expect(store.dispatcher.get(b.id)?.description).toBe('PBX B');
  });

  it('refuses the same destination twice in one set, naming the existing id', () => {
    const { id } = store.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1' });
    store.dispatcher.add({ setid: 2, destination: 'sip:10.0.0.1' });
    let caught: unknown;
    try {
      store.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1', priority: 5 });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SipctlError);
    expect((caught as SipctlError).code).toBe('E_DS_DUPLICATE');
    expect((caught as SipctlError).message).toContain(`id ${id}`);
    expect(store.dispatcher.count()).toBe(2);
  });

  it('removes by id', () => {
    const { id } = store.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1' });
    expect(store.dispatcher.remove(id)?.destination).toBe('sip:10.0.0.1');
    expect(store.dispatcher.remove(id)).toBeNull();
    expect(store.dispatcher.count()).toBe(0);
  });
});
