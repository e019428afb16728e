import type { JsonObject } from '@bufbuild/protobuf';
import type { ErrorInfo } from '../rpc/rpc-error.js';
import { reasonPhrase } from './http-status.js';

export const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

/** What an error body is made from: a gRPC code, a client-safe message, optional ErrorInfo. */
export interface ErrorBodySource {
  readonly code: number;
  readonly message: string;
  readonly errorInfo?: ErrorInfo | undefined;
}

/**
 * The error body every HTTP failure carries, routing failures included, so grpc-gateway clients
 * and RFC 7807 clients both read it: google.rpc.Status as proto3 JSON (`code`, `message`,
 * `details` as Any JSON) plus `type`, `title`, `status` and `detail`.
 */
export function errorBody(error: ErrorBodySource, httpStatus: number): JsonObject {
  const details = error.errorInfo
    ? [{ '@type': ERROR_INFO_TYPE_URL, reason: error.errorInfo.reason, domain: error.errorInfo.domain, metadata: { ...error.errorInfo.metadata } }]
    : [];
  return {
    code: error.code,
    message: error.message,
    details,
    type: 'about:blank',
    title: reasonPhrase(httpStatus),
    status: httpStatus,
    detail: error.message,
  };
}
