import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { gone, invalidArgument } from '../../src/domain/errors.js';
import { toRpcError } from '../../src/rpc/rpc-error.js';
import { CommitOutcomeUnknownError, StorageContentionError, StorageUnavailableError } from '../../src/storage/storage-errors.js';

describe('error conversion', () => {
  const convert = (error: unknown) => {
    const unexpected: unknown[] = [];
    return { result: toRpcError(error, (e) => unexpected.push(e)), unexpected };
  };

  it('keeps a domain error message and turns a gone reason into FAILED_PRECONDITION with ErrorInfo', () => {
    expect(convert(invalidArgument('path is required')).result).toMatchObject({ code: status.INVALID_ARGUMENT, message: 'path is required' });
    expect(convert(gone('SECRET_DELETED', 'deleted', { path: 'p' })).result).toMatchObject({
      code: status.FAILED_PRECONDITION,
      errorInfo: { reason: 'SECRET_DELETED', domain: 'vault', metadata: { path: 'p' } },
    });
  });

  it('maps store failures to UNAVAILABLE or ABORTED without the driver message', () => {
    const driver = new Error('connect ECONNREFUSED 10.1.2.3:3306 user=vault');
    const down = convert(new StorageUnavailableError('the database is unavailable', { cause: driver }));
    expect(down.result).toMatchObject({ code: status.UNAVAILABLE });
    expect(down.result.message).not.toContain('10.1.2.3');
    const commit = convert(new CommitOutcomeUnknownError({ cause: driver }));
    expect(commit.result).toMatchObject({ code: status.UNAVAILABLE, errorInfo: { reason: 'COMMIT_OUTCOME_UNKNOWN' } });
    expect(commit.result.message).toMatch(/may or may not have been applied/);
    expect(convert(new StorageContentionError()).result.code).toBe(status.ABORTED);
    expect([down, commit].flatMap((c) => c.unexpected)).toEqual([]);
  });

  it('hides anything else behind INTERNAL and reports it as unexpected', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'secret-ish')");
    const { result, unexpected } = convert(bug);
    expect(result).toMatchObject({ code: status.INTERNAL, message: 'internal error' });
    expect(unexpected).toEqual([bug]);
  });
});
