/**
 * The one error base of sipctl. Every error a person may see carries a stable `code`
 * (E_ACL_BAD_MASK, E_CONTROL_UNREACHABLE, ...) and a message that says what is wrong and
 * what would be right. Library code throws these; the CLI prints `sipctl: <message>` and
 * exits with `exitCode` (2 for usage errors: a bad argument, option or config value;
 * 1 for everything else).
 */
export class SipctlError extends Error {
  readonly code: string;
  readonly exitCode: 1 | 2;

  constructor(code: string, message: string, options: { usage?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SipctlError';
    this.code = code;
    this.exitCode = options.usage ? 2 : 1;
  }
}

/** A usage error: bad input typed by a person. Exit code 2, nothing written. */
export function usageError(code: string, message: string): SipctlError {
  return new SipctlError(code, message, { usage: true });
}
