/**
 * Who may call which AWS API operation. Once authentication is on (engine/auth/apiTokens.ts),
 * every call must carry a valid SigV4 signature from a token's access key (api/aws/sigv4.ts), and
 * the token must have the operation's scope: the Kinesis API's record writes need `produce`, its
 * reads and every DynamoDB Streams call need `read`, the rest of the Kinesis control plane
 * needs `admin`. Record writes also take from the token's write rate limit. Whatever the headers
 * decide is checked before the body is read; the signature, which covers the body, after.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Engine } from '../../engine/engine.ts';
import { LOCAL_PRINCIPAL, type Principal, type Scope, hasScope } from '../../engine/auth/scopes.ts';
import { ShardlineError } from '../../engine/errors.ts';
import { checkSignatureHeaders, parseAuthorization, type SignedRequest, verifySignature } from './sigv4.ts';
import { AwsError } from './wire.ts';

const KINESIS_READS = new Set([
  'DescribeStream', 'DescribeStreamSummary', 'DescribeStreamConsumer', 'DescribeLimits', 'ListStreams', 'ListShards',
  'ListStreamConsumers', 'GetShardIterator', 'GetRecords', 'ListTagsForStream', 'ListTagsForResource', 'SubscribeToShard',
]);
const KINESIS_WRITES = new Set(['PutRecord', 'PutRecords']);

export function operationScope(targetPrefix: string, operation: string): Scope {
  if (targetPrefix.startsWith('DynamoDBStreams')) return 'read';
  if (KINESIS_WRITES.has(operation)) return 'produce';
  if (KINESIS_READS.has(operation)) return 'read';
  return 'admin';
}

/** An AWS API call whose headers passed; the signature over its body is still to be checked. */
export interface AwsAuthorization {
  /** Verifies the signature over the whole request and takes from the write rate limit; the call's principal, or the AWS error its client gets. */
  complete(request: SignedRequest): Principal;
}

const LOCAL: AwsAuthorization = { complete: () => LOCAL_PRINCIPAL };

/**
 * Checks what the headers alone decide (the signature's key, date and signed headers) before
 * the body is read: a caller without a live token cannot make the server hold a body. The
 * operation's scope is decided only once the signature is verified, as AWS authenticates
 * before it authorises: an access key id alone must not tell anyone the token's name or scopes.
 */
export async function authorizeAwsHeaders(engine: Engine, headers: IncomingHttpHeaders, targetPrefix: string, operation: string): Promise<AwsAuthorization> {
  if (!(await engine.tokens.authRequired())) return LOCAL;
  const { accessKeyId } = parseAuthorization(headers);
  const key = await engine.tokens.accessKey(accessKeyId);
  const claim = checkSignatureHeaders(headers, key);
  const principal = key!.principal;
  const scope = operationScope(targetPrefix, operation);
  const service = targetPrefix.startsWith('DynamoDBStreams') ? 'dynamodb' : 'kinesis';
  return {
    complete(request) {
      verifySignature(request, claim, key!);
      if (!hasScope(principal, scope)) {
        throw new AwsError('AccessDeniedException',
          `User: ${principal.name} is not authorized to perform: ${service}:${operation} (the token needs the "${scope}" scope).`, 400);
      }
      // Only a verified call spends the token's write budget.
      if (scope === 'produce') {
        try {
          engine.writeLimiter.take(principal);
        } catch (raw) {
          if (raw instanceof ShardlineError) throw new AwsError('LimitExceededException', raw.message, 400);
          throw raw;
        }
      }
      return principal;
    },
  };
}
