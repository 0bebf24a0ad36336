/**
 * The dialog commands of the control socket: `dialog.list` (live calls) and `dialog.end`
 * (BYE to both sides; CANCEL towards the callee for a call not answered yet). With dialog tracking off they answer with a clear error.
 */
import { SipctlError, usageError } from '../errors.js';
import type { ControlHandlers } from '../control/protocol.js';
import type { DialogTracker } from './tracker.js';

/** The most dialogs one `dialog.list` answer carries (the count says how many there are). */
export const MAX_LISTED = 10_000;

export function dialogControlHandlers(tracker: DialogTracker | undefined): ControlHandlers {
  const need = (): DialogTracker => {
    if (tracker === undefined) {
      throw new SipctlError('E_DIALOG_OFF', 'dialog tracking is off in this proxy (set dialog.enabled: true in its config)');
    }
    return tracker;
  };
  return {
    'dialog.list': () => {
      const t = need();
      const all = t.list();
      return { total: all.length, dialogs: all.slice(0, MAX_LISTED), omitted: Math.max(0, all.length - MAX_LISTED) };
    },
    'dialog.end': (args) => {
      const t = need();
      const id = Number(args.id);
      if (!Number.isInteger(id) || id < 1) throw usageError('E_DIALOG_BAD_ID', `dialog id must be a whole number from 1, got ${JSON.stringify(args.id)}`);
      const r = t.endById(id);
      if (!r.ended) throw new SipctlError('E_DIALOG_NOT_ENDED', r.why ?? `dialog ${id} was not ended`);
      return { id, ended: true, how: r.how };
    },
  };
}
