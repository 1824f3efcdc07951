/**
 * The server's WebSocket class (WebSocketServer's `WebSocket` option). Two changes to sending,
 * for a server that fans each engine event out to many sockets:
 *
 * - Frames sent to a socket during one turn of the event loop leave in one write: the socket is
 *   corked at its first send of the turn and uncorked after the turn (setImmediate). A burst of
 *   events (a failure's two rows, a lag update beside them) costs a socket one system call, not
 *   one per message.
 * - A send counts as done (its callback runs) once the socket has taken it, while less than
 *   HIGH_WATER bytes wait to be written. graphql-ws awaits every send before it takes the
 *   subscription's next event; without this the second message of a burst would wait for the
 *   first one's write and never share it. Past HIGH_WATER a send completes when it is written,
 *   so a client that does not read holds up only its own subscriptions (whose feeds bound and
 *   count what they keep for it), and memory per socket stays bounded.
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';

export const HIGH_WATER = 256 * 1024;

type SendCallback = (error?: Error) => void;

export class BatchedWebSocket extends WebSocket {
  /** Sockets corked during this turn of the event loop; uncorked together after it. */
  static #corked: Socket[] = [];

  static #uncorkAll(): void {
    const sockets = BatchedWebSocket.#corked;
    BatchedWebSocket.#corked = [];
    for (const socket of sockets) socket.uncork();
  }

  override send(data: unknown, options?: object | SendCallback, cb?: SendCallback): void {
    if (typeof options === 'function') {
      cb = options as SendCallback;
      options = {};
    }
    const socket = (this as unknown as { _socket: Socket | null })._socket;
    if (this.readyState !== WebSocket.OPEN || !socket || socket.destroyed) {
      super.send(data as Buffer, options ?? {}, cb);
      return;
    }
    if (socket.writableCorked === 0) {
      socket.cork();
      if (BatchedWebSocket.#corked.length === 0) setImmediate(BatchedWebSocket.#uncorkAll);
      BatchedWebSocket.#corked.push(socket);
    }
    if (cb && this.bufferedAmount < HIGH_WATER) {
      // A failed write closes the socket, which ends its subscriptions: nothing waits on this callback.
      super.send(data as Buffer, options ?? {}, () => {});
      queueMicrotask(() => cb!());
      return;
    }
    super.send(data as Buffer, options ?? {}, cb);
  }

  /**
   * Sends a text frame the way send() does for graphql-ws, without a callback per frame: undefined
   * when the socket took it at once, or, past HIGH_WATER, a promise settled once it is written
   * (or failed: a failed write closes the socket, which ends its subscriptions).
   */
  sendText(text: string): Promise<void> | undefined {
    if (this.bufferedAmount < HIGH_WATER) {
      this.send(text);
      return undefined;
    }
    return new Promise((resolve) => this.send(text, () => resolve()));
  }
}
