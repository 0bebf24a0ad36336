import { beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { rejection } from '../helpers/errors.js';
import { useStores } from '../helpers/stores.js';

const stores = useStores();

for (const kind of stores) describe.skipIf(kind.skip)(`dispatcher repository (${kind.name})`, () => {
  let store: Store;

  beforeEach(async () => {
    store = await openStore(await kind.fresh());
    return () => store.close();
  });

  it('adds destinations with the table defaults and lists them per set', async () => {
    const a = await store.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1:5060' });
    const b = await store.dispatcher.add({
      setid: 1,
      destination: 'sip:10.0.0.2:5060;transport=tcp',
      flags: 2,
      priority: 10,
      attrs: 'weight=50;duid=pbx-b',
      description: 'PBX B',
    });
    const c = await store.dispatcher.add({ setid: 2, destination: 'sip:pbx.example.com' });
    expect(await store.dispatcher.list()).toEqual([
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
    expect((await store.dispatcher.list(2)).map((r) => r.id)).toEqual([c.id]);
    expect(await store.dispatcher.count()).toBe(3);
    expect(await store.dispatcher.count(1)).toBe(2);
    expect((await store.dispatcher.get(b.id))?.description).toBe('PBX B');
  });

  it('refuses the same destination twice in one set, naming the existing id', async () => {
    const { id } = await store.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1' });
    await store.dispatcher.add({ setid: 2, destination: 'sip:10.0.0.1' });
    const err = await rejection(store.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1', priority: 5 }));
    expect(err.code).toBe('E_DS_DUPLICATE');
    expect(err.message).toContain(`id ${id}`);
    expect(await store.dispatcher.count()).toBe(2);
  });

  it('removes by id', async () => {
    const { id } = await store.dispatcher.add({ setid: 1, destination: 'sip:10.0.0.1' });
    expect((await store.dispatcher.remove(id))?.destination).toBe('sip:10.0.0.1');
    expect(await store.dispatcher.remove(id)).toBeNull();
    expect(await store.dispatcher.count()).toBe(0);
  });
});
