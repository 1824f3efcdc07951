/**
 * The plain HTTP endpoints served beside GraphQL on the same server: /metrics, /healthz,
 * /readyz. `httpRoutes` answers those paths and returns false for anything else (yoga's).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Engine } from '../../engine/engine.ts';
import { healthz, readyz } from './health.ts';
import { metricsEndpoint } from './metrics.ts';
import { serveWeb } from './web.ts';

export function httpRoutes(engine: Engine, logError: (error: unknown) => void): (req: IncomingMessage, res: ServerResponse) => boolean {
  const metrics = metricsEndpoint(engine, logError);
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (serveWeb(req, res, path)) return true; // the dashboard: GET/HEAD of /, /index.html, /web/* (api/http/web.ts)
    switch (path) {
      case '/metrics':
        void metrics.handle(req, res);
        return true;
      case '/healthz':
        healthz(req, res);
        return true;
      case '/readyz':
        readyz(engine, req, res).catch((error) => {
          logError(error);
          if (!res.headersSent) res.writeHead(500).end();
        });
        return true;
      default:
        return false;
    }
  };
}
