// The soak (e2e/soak.mjs) in short, for CI: 4 minutes of a continuous session through the WASM
// recognizer in node and 1.5 minutes of the live page in Chromium. Every song reported once,
// nothing in the gaps, one 'music-stopped' after each song, the heap flat.
// Needs: scripts/demo.sh --build-only. The full run: node e2e/soak.mjs (docs/ROBUSTNESS.md).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { requireSite } from './helpers.mjs';
import { checkEvents, checkMemory, makeProgramme, soakNode } from './soak.mjs';
import { soakBrowser } from './soak-browser.mjs';

describe('soak (short)', { concurrency: false }, () => {
    test('4 min in node: exact events, flat heap', async () => {
        requireSite();
        const programme = makeProgramme(4);
        const run = await soakNode(programme);
        const check = checkEvents(programme.parts, run.events);
        assert.ok(check.songs >= 5, `${check.songs} songs`);
        assert.deepEqual(check.problems, []);
        assert.equal(check.matches, check.songs);
        const mem = checkMemory(run.memory, 60);
        assert.ok(mem.flat, `heap grew: ${JSON.stringify(mem)}`);
    });

    test('1.5 min of the live page in Chromium: exact events, flat heap', async () => {
        requireSite();
        const programme = makeProgramme(1.5);
        const run = await soakBrowser(programme);
        assert.deepEqual(run.pageErrors, []);
        const check = checkEvents(programme.parts, run.events);
        assert.deepEqual(check.problems, []);
        assert.equal(check.matches, check.songs);
        const mem = checkMemory(run.memory, 30);
        assert.ok(mem.samples >= 30, `${mem.samples} heap samples`);
        assert.ok(mem.flat, `heap grew: ${JSON.stringify(mem)}`);
    });
});
