/**
 * How capture clients speak HTTP to their source. HTTP/1.1 (NodeHttpHandler): every Kinesis
 * implementation serves it, while some emulators do not serve the HTTP/2 the SDK would
 * otherwise use. A call that gets no answer must fail, or its shard reader waits forever:
 * @smithy/node-http-handler only logs an exceeded requestTimeout unless throwOnRequestTimeout
 * is set, and socketTimeout covers an answer that stops half-way through its body.
 */
import { NodeHttpHandler } from '@smithy/node-http-handler';

/** Connecting takes at most this long (or the request timeout, when shorter). */
const CONNECTION_TIMEOUT_MS = 5000;

export function sourceHttpHandler(requestTimeoutMs: number): NodeHttpHandler {
  return new NodeHttpHandler({
    connectionTimeout: Math.min(CONNECTION_TIMEOUT_MS, requestTimeoutMs),
    requestTimeout: requestTimeoutMs,
    throwOnRequestTimeout: true,
    socketTimeout: requestTimeoutMs,
  });
}
