/**
 * The plain HTTP endpoints served beside GraphQL on the same server. `publicRoutes` answers what
 * needs no token: the dashboard's static files (its data comes through GraphQL, which does),
 * /healthz and /readyz (for load balancers and orchestrators). `metricsRoute` answers /metrics
 * for an authenticated request with the read scope. Each returns false for paths it does not own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Engine } from '../../engine/engine.ts';
import { hasScope, type Principal } from '../../engine/auth/scopes.ts';
import { healthz, readyz } from './health.ts';
import { metricsEndpoint } from './metrics.ts';
import { serveWeb } from './web.ts';

export const pathOf = (req: IncomingMessage) => (req.url ?? '/').split('?', 1)[0]!;

export function publicRoutes(engine: Engine, logError: (error: unknown) => void): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const path = pathOf(req);
    if (serveWeb(req, res, path)) return true; // the dashboard: GET/HEAD of /, /index.html, /web/* (api/http/web.ts)
    switch (path) {
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

export function metricsRoute(engine: Engine, logError: (error: unknown) => void): (req: IncomingMessage, res: ServerResponse, principal: Principal) => boolean {
  const metrics = metricsEndpoint(engine, logError);
  return (req, res, principal) => {
    if (pathOf(req) !== '/metrics') return false;
    if (!hasScope(principal, 'read')) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' })
        .end(`FORBIDDEN: /metrics needs the "read" scope; token "${principal.name}" has ${principal.scopes.join(', ')}.\n`);
      return true;
    }
    void metrics.handle(req, res);
    return true;
  };
}
