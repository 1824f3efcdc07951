/**
 * An HTTP proxy on a loopback port in front of a Kinesis-compatible endpoint, to show a capture
 * a source that stops answering or fails: per operation (the X-Amz-Target after its dot) it
 * passes a call on, holds it unanswered until the caller gives up, or answers it with an error.
 */
import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export type ProxyRule = 'pass' | 'hold' | { status: number; body: Record<string, unknown> };

export interface SourceProxy {
  endpoint: string;
  /** What to do with a call of an operation (GetRecords, DescribeStreamSummary, …); default 'pass'. */
  rule: (operation: string) => ProxyRule;
  /** Calls seen per operation, and calls held so far. */
  seen: (operation: string) => number;
  held: () => number;
  close: () => Promise<void>;
}

export async function startSourceProxy(target: string): Promise<SourceProxy> {
  const to = new URL(target);
  const seen = new Map<string, number>();
  const holding = new Set<ServerResponse>();
  let held = 0;
  const proxy: SourceProxy = {
    endpoint: '',
    rule: () => 'pass',
    seen: (operation) => seen.get(operation) ?? 0,
    held: () => held,
    close: async () => {
      for (const res of holding) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const operation = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
      seen.set(operation, (seen.get(operation) ?? 0) + 1);
      const rule = proxy.rule(operation);
      if (rule === 'hold') {
        held++;
        holding.add(res);
        res.on('close', () => holding.delete(res));
        return;
      }
      if (rule !== 'pass') {
        res.writeHead(rule.status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(rule.body));
        return;
      }
      const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
