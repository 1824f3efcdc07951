/**
 * The JSON body of a GraphQL POST, read in front of yoga. Yoga reads a body through a
 * web-stream copy of the node request and a byte-counting TransformStream; for a putRecords call
 * of 500 records (700 KB) that plumbing costs more than the JSON.parse itself. Here the body is
 * read from the node request in one pass and parsed once; the result is handed to yoga as
 * `req.body`, which @whatwg-node/server takes as the parsed body of the request.
 *
 * Only a body that parses to a JSON object with at least one member is handed over parsed. Any
 * other body (invalid JSON, an array, null, a scalar, `{}`) is handed over as its bytes, and
 * yoga parses and answers it exactly as it would have read it from the connection.
 *
 * The caller has bounded the body: it has a Content-Length within the limit, which node holds
 * the body to.
 */
import type { IncomingMessage } from 'node:http';

/** Yoga's match for its JSON parser (graphql-yoga's isPOSTJsonRequest). */
export function isJsonContentType(header: string | undefined): boolean {
  const type = header?.split(',')[0];
  if (!type) return false;
  return type === 'application/json' || type.startsWith('application/json;')
    || type === 'application/graphql+json' || type.startsWith('application/graphql+json;');
}

/** The whole body; undefined when the request failed before it ended (the client went away). */
function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
    });
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)));
    req.once('error', () => resolve(undefined));
    req.once('close', () => resolve(undefined)); // after 'end' this changes nothing
  });
}

/** What yoga's request gets as its body: the parsed object, or the bytes for yoga to judge. */
function bodyForYoga(bytes: Buffer): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return bytes;
  }
  const handOver = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && Object.keys(parsed).length > 0;
  return handOver ? parsed : bytes;
}

/**
 * Reads a JSON body into `req.body` for yoga. False when the request ended before its body did
 * (nothing is left to answer).
 */
export async function preparseJsonBody(req: IncomingMessage): Promise<boolean> {
  const bytes = await readBody(req);
  if (bytes === undefined) return false;
  (req as IncomingMessage & { body?: unknown }).body = bodyForYoga(bytes);
  return true;
}
