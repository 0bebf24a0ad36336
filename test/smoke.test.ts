import { describe, expect, it } from 'vitest';
import { SipctlError, usageError } from '../src/errors.js';

describe('SipctlError', () => {
  it('carries a stable code and the exit code for usage errors', () => {
    const e = usageError('E_TEST', 'bad thing');
    expect(e).toBeInstanceOf(SipctlError);
    expect(e.code).toBe('E_TEST');
    expect(e.exitCode).toBe(2);
    expect(new SipctlError('E_X', 'x').exitCode).toBe(1);
  });
});
