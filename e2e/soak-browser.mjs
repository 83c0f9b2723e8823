// The Chromium half of the soak (e2e/soak.mjs): the programme written as a WAV file for the
// fake microphone, the live page's library in continuous mode, its events and the Worker's
// heap figures ('stats', every ~2 s of audio) recorded until the whole programme was heard.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startServer } from '../scripts/serve.mjs';
import { launchChromium, siteDir } from './helpers.mjs';

const RATE_HZ = 16000;

/** Writes 16-bit mono WAV (the fake microphone's input). */
function writeWav16(file, pcm, rateHz) {
    const data = Buffer.alloc(pcm.length * 2);
    for (let i = 0; i < pcm.length; i++) data.writeInt16LE(Math.round(Math.max(-1, Math.min(1, pcm[i])) * 32767), 2 * i);
    const header = Buffer.alloc(44);
    header.write('RIFF', 0); header.writeUInt32LE(36 + data.length, 4); header.write('WAVE', 8);
    header.write('fmt ', 12); header.writeUInt32LE(16, 16); header.writeUInt16LE(1, 20); header.writeUInt16LE(1, 22);
    header.writeUInt32LE(rateHz, 24); header.writeUInt32LE(rateHz * 2, 28); header.writeUInt16LE(2, 32);
    header.writeUInt16LE(16, 34); header.write('data', 36); header.writeUInt32LE(data.length, 40);
    fs.writeFileSync(file, Buffer.concat([header, data]));
}


/** @returns {Promise<{events: object[], memory: object[], audioSeconds: number, pageErrors: string[]}>} */
export async function soakBrowser(programme) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-soak-'));
    const wav = path.join(dir, 'programme.wav');
    writeWav16(wav, programme.pcm, RATE_HZ);
    const seconds = programme.pcm.length / RATE_HZ;
    const server = await startServer({ root: siteDir });
    const browser = await launchChromium({ audioFile: wav });
    const pageErrors = [];
    try {
        const page = browser.context.pages()[0] ?? await browser.context.newPage();
        page.on('pageerror', (e) => pageErrors.push(String(e)));
        page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
        await page.goto(server.url);
        const result = await page.evaluate(async ({ seconds }) => {
            const { createRecognizer } = await import('./earshot.js');
            const r = await createRecognizer({ indexUrl: 'index/', modelUrl: 'models/earshot.emod', continuous: true });
            await new Promise((resolve) => {
                if (r.progress?.done) resolve(undefined);
                r.addEventListener('progress', (e) => { if (e.detail.done) resolve(undefined); });
            });
            const events = [];
            const memory = [];
            let heard = 0;
            for (const type of ['match', 'nomatch', 'music-stopped', 'error']) {
                r.addEventListener(type, (e) => {
                    events.push({ type, song: e.detail.id ?? null, returned: Boolean(e.detail.returned),
                        atS: e.detail.listenedSeconds ?? heard, message: e.detail.message });
                });
            }
            // The fake microphone loops the file: stop after one pass.
            const done = new Promise((resolve) => {
                r.addEventListener('stats', (e) => {
                    heard += e.detail.audioSeconds;
                    memory.push({ audioS: heard, allocatedBytes: e.detail.allocatedBytes, heapBytes: e.detail.heapBytes });
                    if (heard >= seconds - 0.5) resolve(undefined);
                });
            });
            await r.start();
            await done;
            r.destroy();
            return { events, memory, heard };
        }, { seconds });
        // Events after the end of the programme belong to its loop's second pass.
        const events = result.events.filter((e) => e.atS <= seconds);
        return { events, memory: result.memory, audioSeconds: result.heard, pageErrors };
    } finally {
        await browser.close();
        await server.close();
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
