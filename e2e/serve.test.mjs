// The static server's HTTP contract that index downloads rely on: byte ranges (206, 416,
// If-Range), ETag revalidation, HEAD, and the request log. Real HTTP on 127.0.0.1, node's fetch.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../scripts/serve.mjs';

describe('serve.mjs', () => {
    let root;
    let server;
    const data = crypto.randomBytes(10000);
    before(async () => {
        root = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-serve-'));
        fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html>');
        fs.writeFileSync(path.join(root, 'shard-00000.es'), data);
        server = await startServer({ root });
    });
    after(async () => {
        await server.close();
        fs.rmSync(root, { recursive: true, force: true });
    });
    const url = () => `${server.url}shard-00000.es`;
    const get = async (headers, method = 'GET') => {
        const r = await fetch(url(), { method, headers });
        return { r, body: new Uint8Array(await r.arrayBuffer()) };
    };

    test('a whole file says it accepts ranges', async () => {
        const { r, body } = await get({});
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('accept-ranges'), 'bytes');
        assert.deepEqual(Buffer.from(body), data);
    });

    test('one range is answered with 206 and exactly those bytes', async () => {
        for (const [header, start, end] of [['bytes=100-199', 100, 199], ['bytes=9990-', 9990, 9999],
                                            ['bytes=-16', 9984, 9999], ['bytes=9000-20000', 9000, 9999],
                                            ['bytes=0-0', 0, 0]]) {
            const before = server.log.length;
            const { r, body } = await get({ Range: header });
            assert.equal(r.status, 206, header);
            assert.equal(r.headers.get('content-range'), `bytes ${start}-${end}/10000`, header);
            assert.equal(r.headers.get('content-length'), String(end - start + 1), header);
            assert.deepEqual(Buffer.from(body), data.subarray(start, end + 1), header);
            const rec = server.log.slice(before).find((x) => x.path === '/shard-00000.es');
            assert.equal(rec.range, `${start}-${end}`);
            assert.equal(rec.responseBytes, end - start + 1);
        }
    });

    test('a range past the end is 416 with the size', async () => {
        const { r } = await get({ Range: 'bytes=10000-10010' });
        assert.equal(r.status, 416);
        assert.equal(r.headers.get('content-range'), 'bytes */10000');
    });

    test('several ranges, a malformed or foreign-unit header get the whole file', async () => {
        for (const header of ['bytes=0-9,20-29', 'bytes=abc', 'items=0-9']) {
            const { r, body } = await get({ Range: header });
            assert.equal(r.status, 200, header);
            assert.equal(body.length, data.length, header);
        }
    });

    test('If-Range sends the range only for the version it names', async () => {
        const etag = (await get({})).r.headers.get('etag');
        assert.ok(etag);
        assert.equal((await get({ Range: 'bytes=0-9', 'If-Range': etag })).r.status, 206);
        const stale = await get({ Range: 'bytes=0-9', 'If-Range': '"not-this-one"' });
        assert.equal(stale.r.status, 200);
        assert.equal(stale.body.length, data.length);
        assert.equal((await get({ 'If-None-Match': etag })).r.status, 304);
    });

    test('HEAD with a range gives its headers and no body', async () => {
        const { r, body } = await get({ Range: 'bytes=10-19' }, 'HEAD');
        assert.equal(r.status, 206);
        assert.equal(r.headers.get('content-length'), '10');
        assert.equal(body.length, 0);
    });
});
