/**
 * Finding 8 of the hardening issue (RFC 4475 §3.3.1, "insuf"): a request missing Call-ID,
 * From, To or CSeq must not break the proxy and should get a 400; the proxy answers with
 * what is present (the top Via parses) and never forwards it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../helpers/lab.js';
import { unique } from '../helpers/sip-peer.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startLab();
});
afterAll(async () => {
  await lab?.close();
});

function without(name: string): { text: string; branch: string } {
  const branch = unique('z9hG4bK');
  const { text } = lab.request({ branch });
  const lines = text.split('\r\n').filter((l) => !l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return { text: lines.join('\r\n'), branch };
}

describe('a request missing a mandatory header gets 400 with what is present (finding 8)', () => {
  for (const missing of ['Call-ID', 'From', 'To', 'CSeq']) {
    it(`missing ${missing}`, async () => {
      const { text, branch } = without(missing);
      lab.caller.send(text, lab.port);
      const r = await lab.caller.next((x) => x.msg.topVia?.branch === branch);
      expect(r.msg.status).toBe(400);
      expect(r.msg.reason).toContain(missing);
      for (const present of ['Call-ID', 'From', 'To', 'CSeq'].filter((h) => h !== missing)) {
        expect(r.msg.header(present), `${present} copied`).toBeDefined();
      }
      expect(r.msg.header(missing)).toBeUndefined();
      expect(await lab.pbx1.nothing(() => true, 200)).toBe(true);
      expect(await lab.pbx2.nothing(() => true, 50)).toBe(true);
    });
  }
});
