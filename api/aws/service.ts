/**
 * The HTTP side of the AWS wire APIs: claims the requests that carry an `X-Amz-Target` (or an
 * `application/x-amz-…` content type), picks the service from the target prefix and the format
 * from the content type, reads and decodes the body, validates it against the operation's
 * shape, runs the operation and writes its output or error. Works alike over HTTP/1.1 and
 * HTTP/2 (h2c): it only uses what node:http and node:http2's compatibility API share.
 *
 * Once authentication is on, every call is SigV4-verified and scope-checked before its operation
 * runs (api/aws/awsAuthorization.ts): what the headers decide before the body is read, the
 * signature over the body after.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Engine } from '../../engine/engine.ts';
import { authorizeAwsHeaders } from './awsAuthorization.ts';
import { type AwsApiOptions, type AwsContext, awsContext } from './context.ts';
import { parsePlainJson } from './plainJson.ts';
import { DYNAMODB_STREAMS_SERVICE } from './dynamodbStreams/operations.ts';
import { KINESIS_SERVICE } from './kinesis/operations.ts';
import { type StructureShape, parseInput } from './validation.ts';
import { AwsError, CONTENT_TYPES, type WireFormat, decodeBody, encodeBody, errorBody } from './wire.ts';

/**
 * The request's input: read straight from the bytes when they are plain JSON (plainJson.ts),
 * and otherwise, or when the request check refuses that reading, through decodeBody, so that
 * every refusal is the one JSON.parse's reading gets.
 */
function parseRequest<T>(shape: StructureShape, body: Buffer, format: WireFormat): T {
  if (format === 'json') {
    const plain = parsePlainJson(body, shape);
    if (plain !== undefined) {
      try {
        return parseInput<T>(shape, plain, format);
      } catch {
        // read again below
      }
    }
  }
  return parseInput<T>(shape, decodeBody(body, format), format);
}

export interface Operation {
  shape: StructureShape;
  /** Inputs are typed per operation; the shape guarantees what the handler reads. */
  run: (ctx: AwsContext, input: any) => Promise<unknown>;
}
export type Operations = Record<string, Operation>;

export interface Service {
  /** X-Amz-Target prefix, e.g. Kinesis_20131202. */
  targetPrefix: string;
  /** Content type of JSON responses (AWS JSON 1.0 or 1.1). */
  jsonContentType: string;
  /** Prefix of `__type` in error bodies (`namespace#Type`), as the service sends it. */
  errorNamespace?: string;
  /** `__type` of internal failures (HTTP 500). */
  internalErrorType: string;
  operations: Operations;
  /** Turns an engine error into the service's error type; anything else is returned as is. */
  mapError(ctx: AwsContext, raw: unknown): unknown;
}

/** What node:http's and node:http2's compatibility request and response have in common here. */
export interface WireRequest extends AsyncIterable<Buffer | string> {
  method?: string;
  url?: string;
  httpVersion?: string;
  headers: IncomingHttpHeaders;
}
export interface WireResponse {
  headersSent: boolean;
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  write(chunk: Buffer): unknown;
  end(body?: Buffer): unknown;
  /** node:http's response has them (the pieces then go out in one writev); node:http2's has not. */
  cork?(): void;
  uncork?(): void;
}

const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
const SERVICES = new Map<string, Service>([KINESIS_SERVICE, DYNAMODB_STREAMS_SERVICE].map((s) => [s.targetPrefix, s]));

class BodyTooLarge extends Error {}

async function readBody(req: WireRequest, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) throw new BodyTooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += buffer.length;
    if (total > maxBytes) throw new BodyTooLarge();
    chunks.push(buffer);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

const header = (req: WireRequest, name: string): string | undefined => {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
};

/**
 * The AWS request handler: returns false for a request that is not an AWS API call (GraphQL
 * and the plain routes answer it), true when it has taken the request.
 */
export function awsApi(engine: Engine, options: AwsApiOptions, logError: (error: unknown) => void): (req: WireRequest, res: WireResponse) => boolean {
  const ctx = awsContext(engine, options);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  /** Sends a body: one buffer, or pieces sent one after another. */
  function send(res: WireResponse, status: number, body: Buffer | Buffer[], contentType: string, extra: Record<string, string> = {}): void {
    if (res.headersSent) return;
    res.writeHead(status, {
      'content-type': contentType,
      'content-length': Array.isArray(body) ? body.reduce((sum, piece) => sum + piece.length, 0) : body.length,
      'x-amzn-requestid': randomUUID(),
      ...extra,
    });
    if (!Array.isArray(body)) {
      res.end(body);
      return;
    }
    res.cork?.();
    for (const piece of body) res.write(piece);
    res.end();
    res.uncork?.();
  }

  async function handle(req: WireRequest, res: WireResponse, target: string, contentType: string): Promise<void> {
    const format: WireFormat = contentType.toLowerCase().includes('cbor') ? 'cbor' : 'json';
    const dot = target.indexOf('.');
    const service = SERVICES.get(dot < 0 ? target : target.slice(0, dot));
    const operationName = dot < 0 ? '' : target.slice(dot + 1);
    const responseType = format === 'cbor' ? CONTENT_TYPES.cbor11 : service?.jsonContentType ?? CONTENT_TYPES.json11;
    try {
      const operation = service && Object.hasOwn(service.operations, operationName) ? service.operations[operationName] : undefined;
      if (!operation || req.method !== 'POST') {
        throw new AwsError('UnknownOperationException', target ? `Unknown operation ${target}.` : 'The request has no X-Amz-Target.');
      }
      // Refused from the headers alone, a caller without a live token gets no body buffered.
      const authorization = await authorizeAwsHeaders(engine, req.headers, service!.targetPrefix, operationName);
      let body: Buffer;
      try {
        body = await readBody(req, maxBodyBytes);
      } catch (raw) {
        if (raw instanceof BodyTooLarge) {
          const error = new AwsError('SerializationException', `The request body exceeds the ${maxBodyBytes} bytes this server accepts.`, 413);
          // HTTP/1.1: close rather than read the rest of the body (HTTP/2 has no such header).
          const close: Record<string, string> = req.httpVersion === '2.0' ? {} : { connection: 'close' };
          send(res, 413, encodeBody(errorBody(error, service?.errorNamespace), format), responseType, { 'x-amzn-errortype': error.type, ...close });
          return;
        }
        return; // the client went away while sending its body: nobody to answer
      }
      const principal = authorization.complete({ method: req.method, url: req.url ?? '/', headers: req.headers, body });
      const input = parseRequest(operation.shape, body, format);
      const output = await operation.run({ ...ctx, principal, format }, input);
      send(res, 200, output === undefined ? Buffer.alloc(0) : encodeBody(output, format), responseType);
    } catch (raw) {
      let error = raw instanceof AwsError ? raw : service?.mapError(ctx, raw) ?? raw;
      if (!(error instanceof AwsError)) {
        logError(raw);
        error = new AwsError(service?.internalErrorType ?? 'InternalFailure', 'Internal service failure.', 500);
      }
      const awsError = error as AwsError;
      send(res, awsError.status, encodeBody(errorBody(awsError, service?.errorNamespace), format), responseType,
        { 'x-amzn-errortype': awsError.type });
    }
  }

  return (req, res) => {
    const target = header(req, 'x-amz-target');
    const contentType = header(req, 'content-type') ?? '';
    if (target === undefined && !contentType.toLowerCase().startsWith('application/x-amz-')) return false;
    handle(req, res, target ?? '', contentType).catch((error) => {
      logError(error);
      if (!res.headersSent) {
        res.writeHead(500, {});
        res.end();
      }
    });
    return true;
  };
}
