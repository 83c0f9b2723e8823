// Static file server for the earshot web app (node http, no dependencies).
//   node scripts/serve.mjs [--root out/site] [--host 127.0.0.1] [--port 8080]
// Sends the strict Content-Security-Policy as a header (it covers the Worker too), ETags with
// 304 revalidation, answers `Range` requests for one byte range (206, as static hosts and CDNs
// do; If-Range honoured) and only GET/HEAD. The e2e tests import startServer() and use its
// request log and fault injection (tampered/truncated files, failing requests).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import parseRange from 'range-parser';

const MIME = {
    '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
    '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
    '.json': 'application/json; charset=utf-8', '.webmanifest': 'application/manifest+json; charset=utf-8',
    '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.png': 'image/png',
    '.emod': 'application/octet-stream', '.es': 'application/octet-stream', '.eq': 'application/octet-stream',
    '.ed': 'application/octet-stream', '.esb': 'application/octet-stream',
    '.ts': 'text/plain; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
};

/**
 * The page's policy. `indexOrigin` is where the index (and model) live: connect-src allows
 * nothing else. 'wasm-unsafe-eval' allows compiling WebAssembly, not JS eval.
 * @param {string} indexOrigin "'self'" or an origin like https://cdn.example
 */
export function contentSecurityPolicy(indexOrigin = "'self'") {
    return [
        "default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "worker-src 'self'",
        `connect-src ${indexOrigin}`, "style-src 'self'", "img-src 'self'", "manifest-src 'self'",
        "media-src 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'none'",
        "frame-ancestors 'none'",
    ].join('; ');
}

/**
 * @typedef {object} Faults
 * @property {string[]} [tamper]    URL paths whose body gets one byte flipped (same length)
 * @property {string[]} [truncate]  URL paths served with the last half cut off
 * @property {Record<string, number>} [failTimes]  URL path -> number of first requests answered 503
 * @property {Record<string, number>} [delayMs]    URL path -> milliseconds to wait before answering
 * @property {string[]} [ignoreRange]  URL paths answered whole (200) even when a Range is asked,
 *           as servers without range support do
 *
 * @typedef {object} RequestRecord
 * @property {string} method
 * @property {string} path
 * @property {number} status
 * @property {number} requestBodyBytes  bytes the client sent in the body
 * @property {number} responseBytes
 * @property {string} [range]  the byte range sent ("start-end", inclusive) for a 206 answer
 */

/**
 * @param {{root: string, host?: string, port?: number, indexOrigin?: string, faults?: Faults,
 *          onRequest?: (r: RequestRecord) => void}} options
 * @returns {Promise<{url: string, server: http.Server, log: RequestRecord[], close: () => Promise<void>}>}
 */
/**
 * Files above this size are read a range at a time, never whole: a lazy index's pair directory
 * and directory pages (tens of MB at a million songs) get a Range request per query, and reading
 * and hashing the whole file for each would be most of a look's time.
 */
const LARGE_FILE_BYTES = 16 * 1024 * 1024;

/** Bytes [start, stop) of `file`. @param {string} file @param {number} start @param {number} stop */
function readRange(file, start, stop) {
    const fd = fs.openSync(file, 'r');
    try {
        const out = Buffer.alloc(stop - start);
        let done = 0;
        while (done < out.length) {
            const n = fs.readSync(fd, out, done, out.length - done, start + done);
            if (n === 0) break;
            done += n;
        }
        return out.subarray(0, done);
    } finally {
        fs.closeSync(fd);
    }
}

export async function startServer(options) {
    const root = path.resolve(options.root);
    if (!fs.existsSync(path.join(root, 'index.html'))) {
        throw new Error(`${root} has no index.html: build the site first (scripts/demo.sh --build-only)`);
    }
    const faults = options.faults ?? {};
    const failCounts = new Map(Object.entries(faults.failTimes ?? {}));
    const csp = contentSecurityPolicy(options.indexOrigin);
    /** @type {RequestRecord[]} */
    const log = [];
    // setOffline(true) makes the server behave like a network that is down: every request (or
    // every one under a path prefix) is logged (status 0) and its connection dropped unanswered.
    let offline = false;
    let offlinePrefix = '/';

    const server = http.createServer((req, res) => {
        let requestBodyBytes = 0;
        req.on('data', (chunk) => { requestBodyBytes += chunk.length; });
        req.on('end', async () => {
            const url = new URL(req.url ?? '/', 'http://localhost');
            if (offline && url.pathname.startsWith(offlinePrefix)) {
                log.push({ method: req.method ?? '', path: url.pathname, status: 0, requestBodyBytes, responseBytes: 0 });
                req.socket.destroy();
                return;
            }
            const delay = faults.delayMs?.[url.pathname];
            if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
            const record = { method: req.method ?? '', path: url.pathname, status: 0, requestBodyBytes, responseBytes: 0 };
            const finish = (status, headers, body) => {
                record.status = status;
                record.responseBytes = body && req.method !== 'HEAD' ? body.length : 0;
                log.push(record);
                options.onRequest?.(record);
                res.writeHead(status, headers);
                res.end(req.method === 'HEAD' ? undefined : body);
            };
            const common = {
                'Content-Security-Policy': csp, 'X-Content-Type-Options': 'nosniff',
                'Referrer-Policy': 'no-referrer', 'Permissions-Policy': 'microphone=(self), camera=(), geolocation=()',
                'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Resource-Policy': 'same-origin',
            };
            if (req.method !== 'GET' && req.method !== 'HEAD') {
                finish(405, { ...common, Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }, Buffer.from('method not allowed\n'));
                return;
            }
            let relative;
            try {
                relative = decodeURIComponent(url.pathname);
            } catch {
                finish(400, common, Buffer.from('bad path\n'));
                return;
            }
            if (relative.endsWith('/')) relative += 'index.html';
            const file = path.join(root, path.normalize(relative));
            if (!file.startsWith(root + path.sep)) {
                finish(403, common, Buffer.from('forbidden\n'));
                return;
            }
            const remainingFailures = failCounts.get(url.pathname) ?? 0;
            if (remainingFailures > 0) {
                failCounts.set(url.pathname, remainingFailures - 1);
                finish(503, { ...common, 'Content-Type': 'text/plain', 'Retry-After': '1' }, Buffer.from('try again\n'));
                return;
            }
            let stat;
            try {
                stat = fs.statSync(file);
                if (!stat.isFile()) throw new Error('not a file');
            } catch {
                finish(404, { ...common, 'Content-Type': 'text/plain' }, Buffer.from('not found\n'));
                return;
            }
            // A large file (a lazy index's songs or pair files may be tens of GB) is never read
            // whole: its ETag comes from its size and time (as static hosts make theirs) and a
            // range is read on its own.
            const large = stat.size > LARGE_FILE_BYTES && !faults.tamper?.includes(url.pathname) &&
                !faults.truncate?.includes(url.pathname);
            let body = large ? null : fs.readFileSync(file);
            if (faults.tamper?.includes(url.pathname)) {
                body = Buffer.from(body);
                body[Math.floor(body.length / 2)] ^= 0x5a;
            }
            if (faults.truncate?.includes(url.pathname)) body = body.subarray(0, Math.floor(body.length / 2));
            const size = body ? body.length : stat.size;
            const etag = body ? `"${crypto.createHash('sha1').update(body).digest('hex').slice(0, 20)}"`
                : `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
            const headers = {
                ...common, 'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream',
                'Cache-Control': 'no-cache', ETag: etag,
            };
            if (path.basename(file) === 'sw.js') headers['Service-Worker-Allowed'] = '/';
            if (req.headers['if-none-match'] === etag) {
                finish(304, headers, null);
                return;
            }
            headers['Accept-Ranges'] = 'bytes';
            // One range is answered with 206; several ranges, a malformed header or an If-Range
            // that names another version get the whole file (RFC 9110 lets a server ignore Range).
            const rangeHeader = faults.ignoreRange?.includes(url.pathname) ? undefined : req.headers.range;
            const ifRange = req.headers['if-range'];
            if (rangeHeader && (ifRange === undefined || ifRange === etag)) {
                const ranges = parseRange(size, rangeHeader);
                if (ranges === -1) {
                    finish(416, { ...headers, 'Content-Range': `bytes */${size}`, 'Content-Type': 'text/plain' },
                           Buffer.from('range not satisfiable\n'));
                    return;
                }
                if (ranges !== -2 && ranges.type === 'bytes' && ranges.length === 1) {
                    const { start, end } = ranges[0];
                    record.range = `${start}-${end}`;
                    const part = body ? body.subarray(start, end + 1) : readRange(file, start, end + 1);
                    finish(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}`,
                                  'Content-Length': String(part.length) }, part);
                    return;
                }
            }
            if (body) {
                finish(200, { ...headers, 'Content-Length': String(body.length) }, body);
                return;
            }
            record.status = 200;
            record.responseBytes = req.method === 'HEAD' ? 0 : size;
            log.push(record);
            options.onRequest?.(record);
            res.writeHead(200, { ...headers, 'Content-Length': String(size) });
            if (req.method === 'HEAD') res.end();
            else fs.createReadStream(file).pipe(res);
        });
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve(undefined));
    });
    const address = /** @type {import('node:net').AddressInfo} */ (server.address());
    return {
        url: `http://${options.host ?? '127.0.0.1'}:${address.port}/`,
        server,
        log,
        /** @param {boolean} value @param {string} [prefix] only paths under it (default: all) */
        setOffline: (value, prefix = '/') => {
            offline = value;
            offlinePrefix = prefix;
        },
        close: () => new Promise((resolve) => {
            server.closeAllConnections?.();
            server.close(() => resolve());
        }),
    };
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const args = process.argv.slice(2);
    const arg = (name, fallback) => {
        const i = args.indexOf(name);
        return i >= 0 ? args[i + 1] : fallback;
    };
    const root = arg('--root', path.resolve(path.dirname(new URL(import.meta.url).pathname), '../out/site'));
    const { url } = await startServer({
        root, host: arg('--host', '127.0.0.1'), port: Number(arg('--port', '8080')),
        onRequest: (r) => process.env.EARSHOT_SERVE_QUIET || console.log(`${r.status} ${r.method} ${r.path} ${r.responseBytes}`),
    });
    console.log(`earshot is being served from ${root}\nOpen ${url} in Chrome, Edge or Firefox (press Ctrl+C to stop).`);
}
