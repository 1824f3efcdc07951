/**
 * Who may call which AWS API operation. Once authentication is on (engine/auth/apiTokens.ts),
 * every call must carry a valid SigV4 signature from a token's access key (api/aws/sigv4.ts), and
 * the token must have the operation's scope: the Kinesis API's record writes need `produce`, its
 * reads and every DynamoDB Streams call need `read`, the rest of the Kinesis control plane
 * needs `admin`. Record writes also take from the token's write rate limit.
 */
import type { Engine } from '../../engine/engine.ts';
import { LOCAL_PRINCIPAL, type Principal, type Scope, hasScope } from '../../engine/auth/scopes.ts';
import { ShardlineError } from '../../engine/errors.ts';
import { parseAuthorization, type SignedRequest, verifySignature } from './sigv4.ts';
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

/** The principal of an AWS API call, or the AWS error its client gets. */
export async function authorizeAwsCall(engine: Engine, request: SignedRequest, targetPrefix: string, operation: string): Promise<Principal> {
  if (!(await engine.tokens.authRequired())) return LOCAL_PRINCIPAL;
  const { accessKeyId } = parseAuthorization(request.headers);
  const key = await engine.tokens.accessKey(accessKeyId);
  verifySignature(request, key);
  const principal = key!.principal;
  const scope = operationScope(targetPrefix, operation);
  const service = targetPrefix.startsWith('DynamoDBStreams') ? 'dynamodb' : 'kinesis';
  if (!hasScope(principal, scope)) {
    throw new AwsError('AccessDeniedException',
      `User: ${principal.name} is not authorized to perform: ${service}:${operation} (the token needs the "${scope}" scope).`, 400);
  }
  if (scope === 'produce') {
    try {
      engine.writeLimiter.take(principal);
    } catch (raw) {
      if (raw instanceof ShardlineError) throw new AwsError('LimitExceededException', raw.message, 400);
      throw raw;
    }
  }
  return principal;
}
