/**
 * Control-socket handlers for the dispatcher (Kamailio RPC: dispatcher.reload,
 * dispatcher.list, dispatcher.set_state). The proxy registers them on its control server.
 */
import { usageError } from '../errors.js';
import { dumpSets, type Dump } from './dump.js';
import type { DispatcherHolder, ReloadSummary } from './holder.js';
import { parseSetid } from './row.js';
import { DESTINATION_STATES, type Destination, type DestinationState, type DispatcherRow } from './types.js';

export type ControlArgs = Record<string, unknown> | undefined;

export interface DispatcherControlHandlers {
  'dispatcher.reload': (args?: ControlArgs) => Promise<ReloadSummary>;
  'dispatcher.dump': (args?: ControlArgs) => Promise<Dump>;
  'dispatcher.setState': (args?: ControlArgs) => Promise<{ changed: number }>;
}

export interface ControlOptions {
  /** Whether a set is being probed (for the P/X letter in the dump); e.g. prober interval > 0. */
  isProbed?: (setid: number) => boolean;
  /** Requests sent to a destination in the last minute (a SentRateSampler's), for the dump. */
  sentLastMinute?: (d: Destination) => number;
}

export function dispatcherControlHandlers(
  holder: DispatcherHolder,
  loadRows: () => DispatcherRow[] | Promise<DispatcherRow[]>,
  options: ControlOptions = {},
): DispatcherControlHandlers {
  return {
    'dispatcher.reload': async () => holder.reload(await loadRows()),
    'dispatcher.dump': async () => dumpSets(holder.current, options.isProbed, options.sentLastMinute),
    'dispatcher.setState': async (args) => {
      const a = args ?? {};
      const state = String(a.state ?? '');
      if (!DESTINATION_STATES.includes(state as DestinationState)) {
        throw usageError('E_DS_BAD_STATE', `unknown state '${state}'; use one of: ${DESTINATION_STATES.join(', ')}`);
      }
      const setid = parseSetid(a.setid as string | number);
      const uri = String(a.uri ?? '');
      if (uri === '') throw usageError('E_DS_BAD_URI', "set-state needs a destination URI or 'all'");
      const changed = holder.current.setState(setid, uri, state as DestinationState, 'admin: set-state');
      return { changed };
    },
  };
}
