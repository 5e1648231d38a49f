import { describe, expect, it } from 'vitest';
import { CodedError } from '../src/errors.js';

class PackageError extends CodedError {
  override name = 'PackageError';
}

describe('CodedError', () => {
  it('carries its code and message, and is an Error', () => {
    const error = new CodedError('THING_MISSING', 'no such thing');
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('THING_MISSING');
    expect(error.message).toBe('no such thing');
    expect(error.name).toBe('CodedError');
  });

  it('sets the standard cause only when one is given', () => {
    const root = new Error('disk full');
    expect(new CodedError('WRITE_FAILED', 'write failed', { cause: root }).cause).toBe(root);
    const without = new CodedError('WRITE_FAILED', 'write failed');
    expect('cause' in without).toBe(false);
  });

  it('copies and freezes its data, so neither the caller nor a catcher can change it', () => {
    const data: Record<string, unknown> = { thingName: 'pi-1' };
    const error = new CodedError('THING_MISSING', 'no such thing', { data });
    data.thingName = 'pi-2';
    expect(error.data).toEqual({ thingName: 'pi-1' });
    expect(Object.isFrozen(error.data)).toBe(true);
    expect(() => {
      (error.data as Record<string, unknown>).thingName = 'pi-3';
    }).toThrow(TypeError);
    expect(new CodedError('X', 'x').data).toEqual({});
  });

  it("keeps a subclass's name and instanceof", () => {
    const error = new PackageError('BUSY', 'busy', { data: { line: 17 } });
    expect(error).toBeInstanceOf(PackageError);
    expect(error).toBeInstanceOf(CodedError);
    expect(error.name).toBe('PackageError');
    expect(String(error)).toBe('PackageError: busy');
    expect(error.data).toEqual({ line: 17 });
  });
});
