/**
 * What a reply hook (Kamailio's onreply_route / t_on_reply) gets for one relayed response:
 * the response, where it came from, the transaction's state, and edits that go through the
 * message's edit list. The core's headers (Via, CSeq, Call-ID, Content-Length) are guarded
 * while the hook runs (SipMessage.guard), so a hook cannot steer where a response goes.
 */
import type { ReplyContext, Source } from '../route/api.js';
import type { SipMessage } from '../sip/message.js';

export class ResponseCtx implements ReplyContext {
  /** Why the hook dropped the response (undefined: it goes on). */
  dropped: string | undefined = undefined;

  constructor(
    readonly msg: SipMessage,
    readonly source: Source,
    readonly tx: Map<string, unknown> | undefined,
  ) {}

  appendHeader(name: string, value: string): void {
    this.msg.appendHeader(name, value);
  }

  setHeader(name: string, value: string): void {
    this.msg.setHeader(name, value);
  }

  removeHeader(name: string): number {
    return this.msg.removeHeader(name);
  }

  drop(why: string): void {
    this.dropped = why;
  }
}
