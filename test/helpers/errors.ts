/** The SipctlError a call throws or a promise rejects with; the test fails when there is none. */
import { expect } from 'vitest';
import { SipctlError } from '../../src/errors.js';

export function catchError(fn: () => unknown): SipctlError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SipctlError);
    return err as SipctlError;
  }
  throw new Error('expected a SipctlError, nothing was thrown');
}

export async function rejection(p: Promise<unknown>): Promise<SipctlError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SipctlError);
    return err as SipctlError;
  }
  throw new Error('expected a rejection');
}
