/**
 * The AWS wire protocols shared by the Kinesis and DynamoDB Streams APIs: AWS JSON 1.0 / 1.1
 * and Kinesis's CBOR variant (`application/x-amz-cbor-1.1`, what the Java SDKs, the KCL, the
 * KPL and Flink send by default), error bodies, and the two wire-neutral value types that
 * handlers return so one response encodes correctly in either format:
 *
 *   Blob       bytes; base64 text in JSON, a CBOR byte string in CBOR
 *   Timestamp  an instant; epoch seconds with a millisecond fraction in JSON (a plain decimal,
 *              never scientific notation), and in CBOR tag 1 over epoch *milliseconds*, which
 *              is what the AWS Java SDKs write and read (not RFC 8949's seconds)
 *
 * Errors are `{__type, message}` with HTTP 400 (500 for internal failures) in the request's
 * format, plus the `x-amzn-ErrorType` header the SDKs also read.
 */
import { Decoder, Encoder, Tag } from 'cbor-x';
import { base64Length, isBase64 } from '../../engine/records/base64.ts';

export type WireFormat = 'json' | 'cbor';

export const CONTENT_TYPES = {
  json10: 'application/x-amz-json-1.0',
  json11: 'application/x-amz-json-1.1',
  cbor11: 'application/x-amz-cbor-1.1',
} as const;

/** An AWS error: its `__type` (without namespace), message and HTTP status. */
export class AwsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = type;
  }
}

export const serializationError = (message: string) => new AwsError('SerializationException', message);
export const validationError = (message: string) => new AwsError('ValidationException', message);
export const invalidArgument = (message: string) => new AwsError('InvalidArgumentException', message);
export const resourceNotFound = (message: string) => new AwsError('ResourceNotFoundException', message);
export const resourceInUse = (message: string) => new AwsError('ResourceInUseException', message);
export const limitExceeded = (message: string) => new AwsError('LimitExceededException', message);
export const expiredIterator = (message: string) => new AwsError('ExpiredIteratorException', message);
export const throughputExceeded = (message: string) => new AwsError('ProvisionedThroughputExceededException', message);

/** Bytes on the wire. Keeps whichever form it was made from, so base64 in and out costs no copy. */
export class Blob {
  #base64: string | undefined;
  #bytes: Buffer | undefined;

  private constructor(base64: string | undefined, bytes: Buffer | undefined) {
    this.#base64 = base64;
    this.#bytes = bytes;
  }

  /** From base64 text already known to be valid (isBase64). */
  static fromBase64(base64: string): Blob {
    return new Blob(base64, undefined);
  }

  static fromBytes(bytes: Uint8Array): Blob {
    return new Blob(undefined, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  get base64(): string {
    this.#base64 ??= this.#bytes!.toString('base64');
    return this.#base64;
  }

  get bytes(): Buffer {
    this.#bytes ??= Buffer.from(this.#base64!, 'base64');
    return this.#bytes;
  }

  get length(): number {
    return this.#bytes ? this.#bytes.length : base64Length(this.#base64!);
  }

  toJSON(): string {
    return this.base64;
  }
}

/** An instant on the wire (millisecond precision). */
export class Timestamp {
  constructor(readonly ms: number) {}

  static of(date: Date): Timestamp {
    return new Timestamp(date.getTime());
  }

  get date(): Date {
    return new Date(this.ms);
  }

  /** Epoch seconds with the milliseconds as a fraction: 1545084650.987. */
  toJSON(): number {
    return this.ms / 1000;
  }
}

/**
 * A JSON response already written, in pieces of text or UTF-8 bytes (GetRecords has its records
 * from memory as slices of the text they are held in, or from Postgres as bytes written for
 * the page). It is sent piece by piece: bytes as they are, text encoded on its own. JSON
 * requests only.
 */
export class JsonText {
  constructor(readonly parts: (string | Buffer)[]) {}

  /** The pieces as bytes. */
  toBuffers(): Buffer[] {
    return this.parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : part));
  }
}

/** Base64 as AWS JSON carries blobs; undefined when the text is not strict base64. */
export function blobFromBase64(text: string): Blob | undefined {
  return isBase64(text) ? Blob.fromBase64(text) : undefined;
}

// cbor-x: plain maps and byte strings both ways; no record extension, no typed-array tags.
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });
const cborEncoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

/**
 * Instants beyond this (year 5138 read as seconds) can only be milliseconds: CBOR tag 1 from
 * the Java SDKs carries epoch milliseconds, which cbor-x (following RFC 8949) read as seconds.
 */
const MAX_PLAUSIBLE_EPOCH_SECONDS = 1e11;

/**
 * Epoch milliseconds of a wire timestamp: in JSON epoch seconds (integer, decimal or scientific
 * notation); in CBOR an instant under tag 1 or a bare number, in milliseconds as the Java SDKs
 * send them, or in seconds as RFC 8949 has it (told apart by magnitude).
 */
export function timestampMs(value: number | Date, format: WireFormat): number {
  if (format === 'json') return Math.round((value as number) * 1000);
  if (value instanceof Date) {
    const ms = value.getTime();
    return Math.abs(ms) >= MAX_PLAUSIBLE_EPOCH_SECONDS * 1000 ? Math.round(ms / 1000) : ms;
  }
  return Math.abs(value) >= MAX_PLAUSIBLE_EPOCH_SECONDS ? Math.round(value) : Math.round(value * 1000);
}

/** Decodes a request body; a body that does not parse is a SerializationException. */
export function decodeBody(body: Buffer, format: WireFormat): unknown {
  if (body.length === 0) return {};
  if (format === 'json') {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw serializationError('Start of structure or map found where not expected.');
    }
  }
  try {
    return cborDecoder.decode(body);
  } catch (error) {
    throw serializationError(`The request body is not valid CBOR: ${(error as Error).message}`);
  }
}

/**
 * Encodes a response value (plain objects, arrays, strings, numbers, booleans, Blob, Timestamp);
 * a JsonText as its pieces, to be sent one after another.
 */
export function encodeBody(value: unknown, format: WireFormat): Buffer | Buffer[] {
  if (value instanceof JsonText) {
    if (format !== 'json') throw new Error('JsonText answers JSON requests only.');
    return value.toBuffers();
  }
  if (format === 'json') return Buffer.from(JSON.stringify(value), 'utf8');
  return cborEncoder.encode(toCbor(value));
}

function toCbor(value: unknown): unknown {
  if (value instanceof Blob) return value.bytes;
  if (value instanceof Timestamp) return new Tag(value.ms, 1);
  if (Array.isArray(value)) return value.map(toCbor);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, member] of Object.entries(value)) if (member !== undefined) out[key] = toCbor(member);
    return out;
  }
  return value;
}

/** The `{__type, message}` body of an error. `namespace` prefixes the type as some services do. */
export function errorBody(error: AwsError, namespace?: string): Record<string, string> {
  return { __type: namespace ? `${namespace}#${error.type}` : error.type, message: error.message };
}
