/**
 * The control protocol: newline-delimited JSON over a Unix stream socket, one request per
 * line, one reply line per request, in order. The same shape kamcmd's JSON-RPC gives
 * Kamailio users, trimmed to what sipctl needs:
 *
 *   → {"id": 1, "cmd": "address.reload", "args": {}}
 *   ← {"id": 1, "ok": true, "result": {...}}
 *   ← {"id": 1, "ok": false, "error": {"code": "E_...", "message": "...", "usage": false}}
 *
 * `usage` is true when the proxy refused the arguments (a person's mistake), so the CLI can
 * exit 2 for it as it does for mistakes it catches itself.
 */

/** A request line that is longer than this closes the connection (no unbounded buffering). */
export const MAX_REQUEST_LINE_BYTES = 1024 * 1024;

export type RequestId = number | string | null;

export interface ControlRequest {
  id: RequestId;
  cmd: string;
  args: Record<string, unknown>;
}

export interface ControlErrorBody {
  code: string;
  message: string;
  usage?: boolean;
}

export type ControlReply =
  | { id: RequestId; ok: true; result: unknown }
  | { id: RequestId; ok: false; error: ControlErrorBody };

export type ControlHandler = (args: Record<string, unknown>) => unknown | Promise<unknown>;
export type ControlHandlers = Record<string, ControlHandler>;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function errorReplyLine(id: RequestId, error: ControlErrorBody): string {
  return JSON.stringify({ id, ok: false, error } satisfies ControlReply) + '\n';
}
