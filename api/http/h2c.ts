/**
 * HTTP/1.1 and cleartext HTTP/2 (h2c with prior knowledge) on one port.
 *
 * The HTTP/1.1 server listens as before; each accepted connection is held until its first
 * bytes tell which protocol it speaks. A connection that opens with the HTTP/2 client preface
 * ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") goes to a node:http2 server (what the AWS SDK for
 * JavaScript v3 Kinesis client speaks by default against http:// endpoints); anything else goes
 * back to node:http's own connection handling with its bytes put back in front, so GraphQL,
 * graphql-ws upgrades, /metrics and the health routes see an ordinary HTTP/1.1 socket.
 *
 * node:http2 reads its socket natively (it takes over the socket's handle), so bytes already
 * read from a net.Socket cannot be handed back to it; an h2c connection is therefore given to
 * the HTTP/2 server as a small Duplex that replays the bytes read so far and then relays the
 * socket (node wraps such a stream itself). HTTP/1.1 connections keep their native socket.
 */
import type { Server as HttpServer } from 'node:http';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** An h2c connection as a stream: the bytes already read, then the socket's. */
class ReplayedSocket extends Duplex {
  constructor(private readonly socket: Socket, head: Buffer) {
    super({ allowHalfOpen: false });
    this.push(head);
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (error) => this.destroy(error));
    socket.on('close', () => this.destroy());
    socket.resume();
  }

  get remoteAddress() { return this.socket.remoteAddress; }
  get remotePort() { return this.socket.remotePort; }
  get remoteFamily() { return this.socket.remoteFamily; }
  get localAddress() { return this.socket.localAddress; }
  get localPort() { return this.socket.localPort; }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}

export interface DualProtocol {
  /** Ends every h2c session and every connection still being sniffed. */
  closeAll(): void;
}

/**
 * Takes over `server`'s connection handling: HTTP/1.1 stays with it, h2c goes to `http2`.
 * Call before the server listens.
 */
export function serveH2c(server: HttpServer, http2: Http2Server): DualProtocol {
  const httpListeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const sniffing = new Set<Socket>();
  const sessions = new Set<ServerHttp2Session>();
  http2.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });

  server.on('connection', (socket: Socket) => {
    sniffing.add(socket);
    let head: Buffer = Buffer.alloc(0);
    // A connection that never says which protocol it speaks is dropped like one that never
    // finishes its HTTP/1.1 headers.
    const timer = setTimeout(() => socket.destroy(), server.headersTimeout || 60_000).unref();
    const onError = () => socket.destroy();
    const onClose = () => {
      clearTimeout(timer);
      sniffing.delete(socket);
    };
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, HTTP2_PREFACE.length);
      const prefacePrefix = head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
      if (prefacePrefix && head.length < HTTP2_PREFACE.length) return; // not decided yet
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
      onClose();
      if (prefacePrefix) {
        http2.emit('connection', new ReplayedSocket(socket, head));
      } else {
        socket.unshift(head);
        for (const listener of httpListeners) listener.call(server, socket);
        socket.resume();
      }
    };
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('data', onData);
  });

  return {
    closeAll() {
      for (const session of sessions) session.destroy();
      for (const socket of sniffing) socket.destroy();
    },
  };
}
