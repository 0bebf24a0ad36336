import { SipctlError } from '../errors.js';

/**
 * A message (or one of its values) that does not follow the RFC 3261 §25 grammar.
 * Framing errors are thrown by parseMessage; a bad header value is thrown the first time
 * its accessor is used (values are parsed lazily). The proxy answers 400 with `reason`.
 */
export class SipParseError extends SipctlError {
  readonly reason: string;

  constructor(reason: string) {
    super('E_SIP_PARSE', reason);
    this.name = 'SipParseError';
    this.reason = reason;
  }
}
