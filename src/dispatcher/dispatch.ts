/**
 * The dispatcher as the proxy core sees it (src/proxy/services.ts `Dispatch`): select,
 * is-this-a-next-hop, and probe responses. Reads `holder.current` once per call, so a
 * message is routed wholly by the old sets or wholly by the new ones.
 */
import type { Algorithm } from './algorithm.js';
import type { DispatcherHolder } from './holder.js';
import { isProbeBranch } from './options-request.js';
import type { Prober } from './probe.js';
import type { Destination, SelectionKey } from './types.js';

export interface DispatchService {
  select(setid: number, algorithm: Algorithm | string | number, key: SelectionKey): Destination | null;
  /**
   * Is this address (and port, unless 0/undefined) one of the destinations' resolved
   * targets? Kamailio's ds_is_from_list; port 0 ignores the port (its mode bit 1), which a
   * PBX connecting over TCP from an ephemeral port needs.
   */
  isNextHop(address: string, port?: number): boolean;
  handleProbeResponse(branch: string, status: number): boolean;
}

export function createDispatch(holder: DispatcherHolder, prober?: Prober): DispatchService {
  return {
    select: (setid, algorithm, key) => holder.current.select(setid, algorithm as Algorithm, key),
    isNextHop: (address, port) => holder.isNextHop(address, port),
    handleProbeResponse: (branch, status) =>
      prober !== undefined ? prober.handleResponse(branch, status) : isProbeBranch(branch),
  };
}
