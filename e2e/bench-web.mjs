// Browser performance figures for docs/PERFORMANCE-web.md (a benchmark, not a test: it prints
// numbers and asserts nothing).
//   node e2e/bench-web.mjs [--seconds 60] [--repeats 5] [--native-build build]
// Measures, on the built site (scripts/demo.sh --build-only):
//   - WASM in node and in Chromium (main thread): front-end ms per second of audio, embedding
//     ms and GFLOP/s (simd and scalar kernels), the whole streaming recognizer (front-end +
//     network + search) in CPU ms per second of audio, search = whole - front-end - network;
//   - the same, live (the page's mode: the music gate before the network, continuous so that
//     no answer ends the listen) on music, speech, silence and room tone, median of --repeats;
//   - native: the same recognizer through `earshot query` (simd and xnnpack backends; the CLI's
//     start-up measured on a 1 s clip and subtracted);
//   - Chromium page load: ms to 'ready' (first shard usable) and to the whole index, first and
//     second visit, and the bytes each visit downloaded, by kind.
// Writes out/bench-web.json too.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startServer } from '../scripts/serve.mjs';
import {
    benchAudio, benchRoomTone, benchSpeech, containerMeta, corpusDir, launchChromium, repoRoot, requireSite, siteDir,
} from './helpers.mjs';

const args = process.argv.slice(2);
const arg = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const seconds = Number(arg('--seconds', 60));
const repeats = Number(arg('--repeats', 5));
const nativeBuild = path.resolve(repoRoot, arg('--native-build', process.env.BUILD ?? 'build'));

const info = requireSite();
const { pcm, audioSeconds, song, row, startS } = benchAudio(seconds);
const hasMusicDetector = containerMeta(path.join(siteDir, 'models/earshot.emod')).music_detector !== undefined;
if (!hasMusicDetector) console.warn('bench-web: the site\'s model carries no music detector: the live gate is the level check alone');

/**
 * The measurement, run verbatim in node and in the page (Playwright ships its source): it gets
 * only serializable arguments and fetches the site's files over HTTP itself.
 */
async function measure({ glueUrl, baseUrl, files, pcmBase64, liveInputs, repeats }) {
    const get = async (rel) => new Uint8Array(await (await fetch(new URL(rel, baseUrl))).arrayBuffer());
    const { default: createModule } = await import(glueUrl);
    const module = await createModule({ wasmBinary: await get('wasm/earshot-core.wasm') });
    const engine = new module.Engine();
    const must = (s) => { if (!s.ok) throw new Error(s.message); };
    must(engine.loadModel(await get('models/earshot.emod')));
    must(engine.loadManifest(new TextDecoder().decode(await get('index/manifest.json'))));
    for (const name of files) {  // quantizer, then shard files (format 1) or directory and blocks (2)
        const bytes = await get(`index/${name}`);
        if (name.endsWith('.eq')) must(engine.addQuantizer(bytes, name));
        else if (name.endsWith('.ed')) must(engine.addDirectory(bytes, name));
        else if (name.endsWith('.esb')) {
            JSON.parse(engine.shardRanges()).forEach((r, b) => must(engine.addShard(bytes.subarray(r.offset, r.offset + r.bytes), `${name} block ${b}`)));
        } else must(engine.addShard(bytes, name));
    }
    const model = JSON.parse(engine.modelInfo());
    const embedSimd = JSON.parse(engine.benchEmbed('simd', 300));
    const embedScalar = JSON.parse(engine.benchEmbed('scalar', 60));
    const frontend = JSON.parse(engine.benchFrontend(6400));  // 100 s of audio
    const floats = (base64) => {
        const bin = atob(base64);
        const x = new Float32Array(bin.length / 4);
        const bytes = new Uint8Array(x.buffer);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        return x;
    };
    const block = 1024;   // 64 ms, what the AudioWorklet delivers
    const address = engine.inputPointer(block);
    /** Pushes x in blocks, calling afterPush() after each; returns the ms it took. */
    const pushAll = (x, afterPush) => {
        const t0 = performance.now();
        for (let i = 0; i < x.length; i += block) {
            const piece = x.subarray(i, Math.min(x.length, i + block));
            module.HEAPF32.set(piece, address >> 2);
            must(engine.push(piece.length));
            afterPush();
        }
        return performance.now() - t0;
    };
    const pcm = floats(pcmBase64);
    const whole = {};
    for (const backend of ['simd', 'scalar']) {
        must(engine.createRecognizer(backend, '{}'));
        let results = 0;
        const ms = pushAll(pcm, () => { if (engine.poll()) results++; });
        const final = JSON.parse(engine.finish());
        whole[backend] = { ms, results, title: final.best?.title, score: final.score };
    }
    // Live, as the page's Worker runs it (push, then drain pollEvent): the gate keeps patches
    // without music from the network. Continuous, so that an answer does not end the listen and
    // every second is processed. Inputs interleaved, a first round to warm up.
    must(engine.createRecognizer('simd', JSON.stringify({ live: true, continuous: true })));
    const live = {};
    for (const [name, base64] of Object.entries(liveInputs)) live[name] = { x: floats(base64), ms: [] };
    for (let round = 0; round <= repeats; round++) {
        for (const input of Object.values(live)) {
            engine.reset();
            const events = [];
            const ms = pushAll(input.x, () => {
                for (let e = engine.pollEvent(); e; e = engine.pollEvent()) events.push(JSON.parse(e).type);
            });
            if (round === 0) continue;
            input.ms.push(ms);
            const latest = engine.poll();   // the last match: after the last embedding
            input.embeddings = latest ? JSON.parse(latest).n_embeddings : 0;
            input.events = events;
        }
    }
    for (const input of Object.values(live)) {
        input.audio_s = input.x.length / model.sample_rate_hz;
        delete input.x;
    }
    return { model, embedSimd, embedScalar, frontend, whole, live };
}

const manifest = JSON.parse(fs.readFileSync(path.join(siteDir, 'index/manifest.json'), 'utf8'));
const indexFiles = [manifest.quantizer.file, ...(manifest.version === 2 ? [manifest.directory.file, manifest.blocks.file] : manifest.shards.map((s) => s.file))];
const pcmBase64 = Buffer.from(pcm.buffer).toString('base64');

// Music throughout: the first song has quiet passages where the gate closes, the second none.
const liveMusic = benchAudio(seconds, 1);
const liveInputs = {
    music: { pcm: liveMusic.pcm, what: `"${liveMusic.song.title}" from ${liveMusic.startS} s (in the index: continuous mode matches it and goes on)` },
    speech: { pcm: benchSpeech(seconds), what: 'train-set speech (British Hedgewars voices, back to back)' },
    silence: { pcm: new Float32Array(liveMusic.pcm.length), what: 'digital silence' },
    'room tone': { pcm: benchRoomTone(seconds, -60), what: 'white noise at -60 dBFS RMS' },
};
if (!liveInputs.speech.pcm) {
    console.warn(`bench-web: no speech (${corpusDir}/train/noise.tsv; set EARSHOT_CORPUS): live speech skipped`);
    delete liveInputs.speech;
}
const liveBase64 = Object.fromEntries(Object.entries(liveInputs).map(([name, { pcm: x }]) =>
    [name, Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64')]));
const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
};

/** Live figures per input: CPU ms per second of audio (median and each repeat), embeddings per second. */
function summarizeLive(where, m) {
    return {
        where,
        inputs: Object.fromEntries(Object.entries(m.live).map(([name, r]) => [name, {
            ms_per_audio_s: median(r.ms) / r.audio_s,
            runs_ms_per_audio_s: r.ms.map((ms) => ms / r.audio_s),
            embeddings_per_audio_s: r.embeddings / r.audio_s,
            events: r.events,
        }])),
    };
}

function summarize(where, m) {
    const embeddingsPerSecond = 16000 / (m.model.query_hop_frames * 250);   // the recognizer's query hop
    const out = {
        where,
        frontend_ms_per_audio_s: m.frontend.ms_per_audio_second,
        embed_ms_simd: m.embedSimd.ms_per_embedding, gflops_simd: m.embedSimd.gflops,
        embed_ms_scalar: m.embedScalar.ms_per_embedding, gflops_scalar: m.embedScalar.gflops,
        whole_ms_per_audio_s_simd: m.whole.simd.ms / audioSeconds,
        whole_ms_per_audio_s_scalar: m.whole.scalar.ms / audioSeconds,
        embeddings_per_audio_s: embeddingsPerSecond,
        matched_title: m.whole.simd.title,
    };
    out.network_ms_per_audio_s_simd = out.embed_ms_simd * embeddingsPerSecond;
    out.search_ms_per_audio_s_simd = out.whole_ms_per_audio_s_simd - out.frontend_ms_per_audio_s - out.network_ms_per_audio_s_simd;
    return out;
}

const results = {
    date: new Date().toISOString(), cpu: os.cpus()[0]?.model, audio_seconds: audioSeconds, site: info, runs: [],
    live_gate: {
        music_detector: hasMusicDetector, repeats, inputs: Object.fromEntries(Object.entries(liveInputs).map(([n, v]) => [n, v.what])),
        runs: [],
    },
};

const server = await startServer({ root: siteDir });
const measureArgs = { baseUrl: server.url, files: indexFiles, pcmBase64, liveInputs: liveBase64, repeats };

// --- node
{
    const m = await measure({ ...measureArgs, glueUrl: path.join(siteDir, 'wasm/earshot-core.mjs') });
    results.runs.push(summarize(`WASM, node ${process.version}`, m));
    results.live_gate.runs.push(summarizeLive(`WASM, node ${process.version}`, m));
}

// --- Chromium
const micClip = path.join(os.tmpdir(), `earshot-bench-mic-${process.pid}.wav`);
execFileSync('sox', [row.path, '-r', '48000', '-c', '1', '-b', '16', micClip, 'trim', String(startS), '20']);
const browser = await launchChromium({ audioFile: micClip });
try {
    const page = browser.context.pages()[0] ?? await browser.context.newPage();
    // Page load -> ready, first and second visit.
    await browser.context.addInitScript(() => {
        const marks = {};
        window.__earshotMarks = marks;
        document.addEventListener('ready', () => { marks.ready ??= performance.now(); }, true);
        document.addEventListener('progress', (e) => {
            if (e.detail?.done) { marks.done ??= performance.now(); marks.bytesDownloaded = e.detail.bytesDownloaded; }
        }, true);
    });
    results.page_load = [];
    for (const visit of ['first visit', 'second visit (cached)']) {
        const logStart = server.log.length;
        if (visit === 'first visit') await page.goto(server.url);
        else await page.reload();
        await page.waitForFunction(() => window.__earshotMarks?.done !== undefined, null, { timeout: 60_000 });
        const marks = await page.evaluate(() => window.__earshotMarks);
        const bytes = { shell: 0, wasm: 0, model: 0, index: 0 };
        for (const r of server.log.slice(logStart)) {
            const kind = r.path.startsWith('/index/') ? 'index' : r.path.startsWith('/models/') ? 'model'
                : r.path.startsWith('/wasm/') ? 'wasm' : 'shell';
            bytes[kind] += r.responseBytes;
        }
        results.page_load.push({ visit, ms_to_ready: marks.ready, ms_to_whole_index: marks.done, bytes_from_server: bytes });
        await page.waitForTimeout(1500);   // let the service worker finish installing
    }
    // Kernels and the whole pipeline, in the page's main thread.
    await page.goto(`${server.url}index.html`);
    const version = browser.context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent)).match(/Chrome\/([\d.]+)/)?.[1];
    const m = await page.evaluate(measure, { ...measureArgs, glueUrl: `${server.url}wasm/earshot-core.mjs` });
    results.runs.push(summarize(`WASM, Chromium ${version} (page main thread)`, m));
    results.live_gate.runs.push(summarizeLive(`WASM, Chromium ${version} (page main thread)`, m));

    // The real path: fake microphone -> AudioWorklet -> Worker, 12 s of listening; the Worker
    // reports its CPU ms per second of audio (resampling included when the context is not 16 kHz).
    const live = await page.evaluate(async () => {
        const { createRecognizer } = await import('./earshot.js');
        const r = await createRecognizer({ indexUrl: 'index/', modelUrl: 'models/earshot.emod', continuous: true });
        await r.ready;
        const stats = [];
        let sampleRate = 0;
        r.addEventListener('stats', (e) => stats.push(e.detail));
        r.addEventListener('listening', (e) => { if (e.detail.listening) sampleRate = e.detail.sampleRate; });
        await r.start();
        await new Promise((resolve) => setTimeout(resolve, 12000));
        r.destroy();
        return { stats, sampleRate };
    });
    const steady = live.stats.slice(1);   // the first window includes warm-up
    results.runs.push({
        where: `WASM, Chromium ${version}, live: mic -> AudioWorklet (${live.sampleRate} Hz) -> Worker`,
        whole_ms_per_audio_s_simd: steady.reduce((a, x) => a + x.cpuMsPerAudioSecond * x.audioSeconds, 0) /
            steady.reduce((a, x) => a + x.audioSeconds, 0),
    });
} finally {
    await browser.close();
    fs.rmSync(micClip, { force: true });
}

await server.close();

// --- native: `earshot query` on a WAV of the same audio, start-up (1 s clip) subtracted
const cli = path.join(nativeBuild, 'index-builder/earshot');
if (fs.existsSync(cli)) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-bench-'));
    const long = path.join(tmp, 'long.wav');
    const short = path.join(tmp, 'short.wav');
    execFileSync('sox', [row.path, '-r', '16000', '-c', '1', '-b', '16', long, 'trim', String(startS), String(seconds)]);
    execFileSync('sox', [row.path, '-r', '16000', '-c', '1', '-b', '16', short, 'trim', String(startS), '1']);
    const time = (backend, file) => {
        let best = Infinity;
        for (let i = 0; i < 3; i++) {
            const t0 = process.hrtime.bigint();
            execFileSync(cli, ['query', '--model', path.join(siteDir, 'models/earshot.emod'), '--index', path.join(siteDir, 'index'),
                '--backend', backend, '--jobs', '1', '--stream', file], { stdio: ['ignore', 'pipe', 'pipe'] });
            best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
        }
        return best;
    };
    for (const backend of ['simd', 'xnnpack']) {
        const ms = time(backend, long) - time(backend, short);
        results.runs.push({ where: `native earshot query --stream (${backend}, 1 thread, decode included)`,
            whole_ms_per_audio_s_simd: ms / (audioSeconds - 1) });
    }
    fs.rmSync(tmp, { recursive: true, force: true });
} else {
    console.warn(`bench-web: no native CLI at ${cli} (pass --native-build DIR): native figures skipped`);
}

fs.mkdirSync(path.join(repoRoot, 'out'), { recursive: true });
fs.writeFileSync(path.join(repoRoot, 'out/bench-web.json'), JSON.stringify(results, null, 1));
const f = (x, d = 2) => (x === undefined ? '' : Number(x).toFixed(d));
console.log(`\n${audioSeconds.toFixed(0)} s of "${song.title}" (model ${info.model_file}, ${info.index_songs} songs), CPU: ${results.cpu}\n`);
console.log('| where | front-end ms/s | network ms/s (simd) | search ms/s | whole ms/s (simd) | whole ms/s (scalar) | embed ms simd | GFLOP/s simd | GFLOP/s scalar |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of results.runs) {
    console.log(`| ${r.where} | ${f(r.frontend_ms_per_audio_s)} | ${f(r.network_ms_per_audio_s_simd)} | ${f(r.search_ms_per_audio_s_simd)} | ` +
        `${f(r.whole_ms_per_audio_s_simd)} | ${f(r.whole_ms_per_audio_s_scalar)} | ${f(r.embed_ms_simd, 3)} | ${f(r.gflops_simd)} | ${f(r.gflops_scalar)} |`);
}
console.log('\n| visit | ms to ready (first shard) | ms to whole index | shell B | wasm B | model B | index B |');
console.log('|---|---|---|---|---|---|---|');
for (const v of results.page_load ?? []) {
    const b = v.bytes_from_server;
    console.log(`| ${v.visit} | ${f(v.ms_to_ready, 0)} | ${f(v.ms_to_whole_index, 0)} | ${b.shell} | ${b.wasm} | ${b.model} | ${b.index} |`);
}
const liveNames = Object.keys(liveInputs);
console.log(`\nLive listen with the gate (music detector: ${hasMusicDetector ? 'yes' : 'no'}), continuous, ` +
    `median of ${repeats}: CPU ms per second of audio [min-max], embeddings per second of audio`);
for (const [name, what] of Object.entries(results.live_gate.inputs)) console.log(`- ${name}: ${what}`);
console.log(`\n| where | ${liveNames.join(' | ')} |`);
console.log(`|---|${liveNames.map(() => '---|').join('')}`);
for (const r of results.live_gate.runs) {
    const cells = liveNames.map((name) => {
        const x = r.inputs[name];
        return `${f(x.ms_per_audio_s)} [${f(Math.min(...x.runs_ms_per_audio_s))}-${f(Math.max(...x.runs_ms_per_audio_s))}], ` +
            `${f(x.embeddings_per_audio_s)} emb/s`;
    });
    console.log(`| ${r.where} | ${cells.join(' | ')} |`);
}
