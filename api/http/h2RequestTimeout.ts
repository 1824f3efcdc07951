/**
 * The request timeout of HTTP/2 streams. node's HTTP/1.1 server gives a client `requestTimeout`
 * to send a whole request and then answers 408 and drops it; node:http2 has no such limit, so a
 * stream that declares a body and stops sending would stay open, holding what it sent, forever.
 * Each h2 stream gets the same deadline here: a request not fully received by then is answered
 * 408 (when nothing was answered yet) and its stream closed. Once the request has been read to
 * its end the deadline is gone, so a long response (a large GraphQL result held by flow control) is
 * never cut by it.
 */
import { type Http2ServerRequest, type Http2ServerResponse, constants } from 'node:http2';

export function limitRequestTime(req: Http2ServerRequest, res: Http2ServerResponse, timeoutMs: number): void {
  const stream = req.stream;
  // A request without a body (END_STREAM on its headers) is already complete.
  if (timeoutMs <= 0 || stream.endAfterHeaders) return;
  const timer = setTimeout(() => {
    if (stream.destroyed) return;
    if (!res.headersSent) {
      res.writeHead(408, { 'content-length': 0 });
      res.end();
      // NO_ERROR once the answer is out (node waits for it): the client is to stop sending, and
      // the handler reading the body sees it end.
      stream.close(constants.NGHTTP2_NO_ERROR);
    } else {
      stream.close(constants.NGHTTP2_CANCEL);
    }
  }, timeoutMs).unref();
  const done = () => clearTimeout(timer);
  req.once('end', done);
  stream.once('close', done);
}
