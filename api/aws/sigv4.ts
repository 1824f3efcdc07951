/**
 * AWS Signature Version 4 verification for the Kinesis and DynamoDB Streams APIs: the request is
 * canonicalised as the SDK signed it (method, path, query, the signed headers, the SHA-256 of the
 * body), the signing key is derived from the access key's secret, and the signatures must match.
 * Errors carry AWS's types, so the SDK raises what it would against AWS:
 *   no Authorization header          MissingAuthenticationTokenException (403)
 *   a malformed one                  IncompleteSignatureException (403)
 *   an unknown or revoked key        UnrecognizedClientException (400)
 *   a wrong signature                InvalidSignatureException (403)
 *   X-Amz-Date more than 15 minutes off   InvalidSignatureException "Signature expired" (403)
 *   host (or :authority), or a sent x-amz-target, not signed   InvalidSignatureException naming it (403)
 * The region and service of the credential scope are not checked against ours: SDKs derive them
 * from the endpoint, which for a self-hosted server is arbitrary.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AccessKey } from '../../engine/auth/apiTokens.ts';
import { AwsError } from './wire.ts';

const MAX_SKEW_MS = 15 * 60 * 1000;
const AUTH = /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})\s*$/;

export interface SignedRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();

/** RFC 3986 encoding as SigV4 wants it (unreserved characters kept, everything else %XX). */
function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalPath(path: string): string {
  const segments = path.split('/').map((segment) => {
    let decoded = segment;
    try { decoded = decodeURIComponent(segment); } catch { /* keep as sent */ }
    return uriEncode(decoded);
  });
  const joined = segments.join('/');
  return joined.startsWith('/') ? joined : `/${joined}`;
}

function canonicalQuery(query: string): string {
  if (!query) return '';
  return query.split('&').filter((p) => p !== '').map((pair) => {
    const eq = pair.indexOf('=');
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? '' : pair.slice(eq + 1);
    const decode = (s: string) => { try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch { return s; } };
    return [uriEncode(decode(rawKey)), uriEncode(decode(rawValue))] as const;
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&');
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  // HTTP/2 carries the host as :authority.
  const raw = headers[name] ?? (name === 'host' ? headers[':authority'] : undefined);
  if (raw === undefined) return undefined;
  return (Array.isArray(raw) ? raw.join(',') : String(raw)).trim().replace(/\s+/g, ' ');
}

/** The parts of the Authorization header; throws IncompleteSignature / MissingAuthenticationToken. */
export function parseAuthorization(headers: IncomingHttpHeaders): { accessKeyId: string; scope: string; signedHeaders: string[]; signature: string } {
  const authorization = headerValue(headers, 'authorization');
  if (!authorization) throw new AwsError('MissingAuthenticationTokenException', 'Missing Authentication Token', 403);
  const match = AUTH.exec(authorization);
  if (!match) {
    throw new AwsError('IncompleteSignatureException',
      'Authorization header requires \'Credential\', \'SignedHeaders\' and \'Signature\' parameters of an AWS4-HMAC-SHA256 signature.', 403);
  }
  const [accessKeyId, ...scopeParts] = match[1]!.split('/');
  if (!accessKeyId || scopeParts.length !== 4 || scopeParts[3] !== 'aws4_request') {
    throw new AwsError('IncompleteSignatureException', `Credential should be scoped to a valid region, not "${match[1]}".`, 403);
  }
  return { accessKeyId, scope: scopeParts.join('/'), signedHeaders: match[2]!.toLowerCase().split(';'), signature: match[3]! };
}

/** What a request's Authorization and X-Amz-Date headers claim, once checked as far as headers allow. */
export interface SignatureClaim {
  scope: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
}

/**
 * Everything about a signature that the headers alone can refute (the key, the date, which
 * headers it covers), so a request that cannot succeed is refused before its body is read. Throws the AWS error a client would get; verifySignature() finishes the check.
 */
export function checkSignatureHeaders(headers: IncomingHttpHeaders, key: AccessKey | undefined, now = Date.now()): SignatureClaim {
  const { scope, signedHeaders, signature } = parseAuthorization(headers);
  if (!key) throw new AwsError('UnrecognizedClientException', 'The security token included in the request is invalid.', 400);
  const amzDate = headerValue(headers, 'x-amz-date');
  if (!amzDate || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw new AwsError('IncompleteSignatureException', 'Authorization requires an X-Amz-Date header of the form yyyyMMddTHHmmssZ.', 403);
  }
  const at = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  if (Math.abs(now - at) > MAX_SKEW_MS) {
    throw new AwsError('InvalidSignatureException',
      `Signature expired: ${amzDate} is now earlier or later than 15 minutes from ${new Date(now).toISOString().replace(/[-:]|\.\d{3}/g, '')}.`, 403);
  }
  if (!scope.startsWith(amzDate.slice(0, 8))) {
    throw new AwsError('InvalidSignatureException', 'The credential date does not match the X-Amz-Date header.', 403);
  }
  // A signature that leaves out the host or the operation could be replayed against another
  // endpoint or as another call; AWS refuses such signatures, and its SDKs sign both (the host
  // as :authority over HTTP/2).
  if (!signedHeaders.includes('host') && !signedHeaders.includes(':authority')) {
    throw new AwsError('InvalidSignatureException', '\'Host\' or \':authority\' must be a \'SignedHeader\' in the AWS Authorization.', 403);
  }
  if (headers['x-amz-target'] !== undefined && !signedHeaders.includes('x-amz-target')) {
    throw new AwsError('InvalidSignatureException', '\'X-Amz-Target\' must be a \'SignedHeader\' in the AWS Authorization.', 403);
  }
  return { scope, signedHeaders, signature, amzDate };
}

/** Verifies the signature over the whole request, body included; throws the AWS error a client would get. */
export function verifySignature(request: SignedRequest, claim: SignatureClaim, key: AccessKey): void {
  const { scope, signedHeaders, signature, amzDate } = claim;
  const canonicalHeaders = signedHeaders.map((name) => `${name}:${headerValue(request.headers, name) ?? ''}\n`).join('');
  const queryAt = request.url.indexOf('?');
  const path = queryAt < 0 ? request.url : request.url.slice(0, queryAt);
  const query = queryAt < 0 ? '' : request.url.slice(queryAt + 1);
  const payloadHash = headerValue(request.headers, 'x-amz-content-sha256');
  const canonicalRequest = [
    request.method.toUpperCase(),
    canonicalPath(path || '/'),
    canonicalQuery(query),
    canonicalHeaders,
    signedHeaders.join(';'),
    payloadHash && payloadHash !== 'UNSIGNED-PAYLOAD' ? sha256Hex(request.body) : payloadHash ?? sha256Hex(request.body),
  ].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const [date, region, service] = scope.split('/') as [string, string, string];
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${key.secretAccessKey}`, date), region), service), 'aws4_request');
  const expected = createHmac('sha256', signingKey).update(stringToSign).digest();
  const given = Buffer.from(signature, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new AwsError('InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.', 403);
  }
}
