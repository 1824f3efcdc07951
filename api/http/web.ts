/**
 * The web dashboard's static files: GET/HEAD `/` (web/index.html) and `/web/*` (the files under
 * web/), plus a short allow-list of browser builds from node_modules under `/web/vendor/`
 * (uPlot, and the graphql-ws client with the chunks it imports). Nothing else of node_modules
 * is reachable, and no path may leave web/ (`..`, encoded slashes, NUL bytes, dot-files and
 * symlinks pointing outside are refused with 404).
 *
 * Every answer carries an ETag and `cache-control: no-cache` (the browser revalidates, a 304
 * costs nothing), so a new version of a file is seen at the next load without hashed names.
 * `webRoutes` returns false for paths and methods it does not own (POST / is someone else's).
 */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

const require = createRequire(import.meta.url);

function packageDir(name: string): string | undefined {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    return undefined;
  }
}

/**
 * The vendored files: URL path → absolute file. The graphql-ws client imports a chunk with a
 * hashed name (`./common-XXXX.js`); the chunks it names are read from the file itself, so only
 * what the client really loads is served.
 */
export function vendorFiles(): Map<string, string> {
  const files = new Map<string, string>();
  const uplot = packageDir('uplot');
  if (uplot) {
    files.set('/web/vendor/uplot/uPlot.esm.js', join(uplot, 'dist', 'uPlot.esm.js'));
    files.set('/web/vendor/uplot/uPlot.min.css', join(uplot, 'dist', 'uPlot.min.css'));
  }
  const graphqlWs = packageDir('graphql-ws');
  if (graphqlWs) {
    const dist = join(graphqlWs, 'dist');
    const client = join(dist, 'client.js');
    files.set('/web/vendor/graphql-ws/client.js', client);
    try {
      const source = readFileSync(client, 'utf8');
      for (const m of source.matchAll(/from\s+['"]\.\/([\w.-]+\.js)['"]/g)) {
        files.set(`/web/vendor/graphql-ws/${m[1]}`, join(dist, m[1]!));
      }
    } catch {
      // Not installed as expected: the dashboard reports that it cannot load the client.
    }
  }
  return files;
}

function contentType(file: string): string {
  return CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** The file under web/ that a `/web/...` URL path names, or undefined when it may not be served. */
export function resolveWebPath(urlPath: string, root = WEB_ROOT): string | undefined {
  if (!urlPath.startsWith('/web/')) return undefined;
  let rest: string;
  try {
    rest = decodeURIComponent(urlPath.slice('/web/'.length));
  } catch {
    return undefined;
  }
  if (rest === '' || rest.includes('\0') || rest.includes('\\')) return undefined;
  const segments = rest.split('/');
  // No empty, `.`, `..` or hidden segment: nothing to normalise, nothing outside web/.
  if (segments.some((s) => s === '' || s.startsWith('.'))) return undefined;
  if (!(extname(rest).toLowerCase() in CONTENT_TYPES)) return undefined;
  const file = join(root, ...segments);
  return file.startsWith(root.endsWith(sep) ? root : root + sep) ? file : undefined;
}

function notFound(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : 'Not found\n');
}

/**
 * The dashboard's page runs only its own scripts (and its inline import map, by hash) and talks
 * only to its own server: a string that found its way into the page could run nothing, and a
 * token kept in localStorage could be sent nowhere else.
 */
function contentSecurityPolicy(html: Buffer): string {
  const inline = [...html.toString('utf8').matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)]
    .map((m) => m[1]!).filter((code) => code.trim() !== '')
    .map((code) => `'sha256-${createHash('sha256').update(code).digest('base64')}'`);
  return [
    "default-src 'self'", `script-src 'self' ${inline.join(' ')}`.trim(), "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:", "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
  ].join('; ');
}

async function sendFile(req: IncomingMessage, res: ServerResponse, file: string, confineTo: string | undefined): Promise<void> {
  let real: string;
  try {
    real = await realpath(file);
  } catch {
    return notFound(req, res);
  }
  if (confineTo !== undefined && !real.startsWith(confineTo)) return notFound(req, res);
  const info = await stat(real).catch(() => undefined);
  if (!info?.isFile()) return notFound(req, res);
  const body = await readFile(real);
  const etag = `"${createHash('sha1').update(body).digest('base64url').slice(0, 20)}"`;
  const headers: Record<string, string> = {
    'content-type': contentType(real),
    'cache-control': 'no-cache',
    etag,
    'last-modified': info.mtime.toUTCString(),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
  if (headers['content-type']!.startsWith('text/html')) headers['content-security-policy'] = contentSecurityPolicy(body);
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers).end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': String(body.length) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * (req, res, path) → true when the request was answered here: GET/HEAD of `/`, `/index.html`
 * and `/web/*`. Other methods on `/web/*` get 405; anything else is left to the caller.
 */
export function webRoutes(root = WEB_ROOT): (req: IncomingMessage, res: ServerResponse, path?: string) => boolean {
  const vendor = vendorFiles();
  let realRoot: string | undefined;
  const confined = () => {
    try {
      realRoot ??= realpathSync(root);
    } catch {
      realRoot = root;
    }
    return realRoot.endsWith(sep) ? realRoot : realRoot + sep;
  };
  return (req, res, path = (req.url ?? '/').split('?', 1)[0] ?? '/') => {
    const mine = path === '/' || path === '/index.html' || path.startsWith('/web/');
    if (!mine) return false;
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    if (!readOnly) {
      if (!path.startsWith('/web/')) return false; // e.g. POST / belongs to another handler
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('Method not allowed\n');
      return true;
    }
    const fail = (error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Internal error\n');
      else res.destroy(error as Error);
    };
    const vendored = vendor.get(path);
    if (vendored) {
      sendFile(req, res, vendored, undefined).catch(fail);
      return true;
    }
    const file = path === '/' || path === '/index.html' ? join(root, 'index.html') : resolveWebPath(path, root);
    if (file === undefined) {
      notFound(req, res);
      return true;
    }
    sendFile(req, res, file, confined()).catch(fail);
    return true;
  };
}

/** The handler api/http/routes.ts calls, serving the repository's web/ folder. */
export const serveWeb = webRoutes();
