// Soak: a long continuous listening session (songs of the demo index, with silence, synthetic
// speech and room tone between them) through the recognizer, in node (the WASM module the site
// serves) and in Chromium (the live page, fake microphone). Checks that the WASM heap stays flat
// and that the event stream is exact: one 'match' naming the right song in every song, none in
// the gaps, 'returned' only for a song heard before, one 'music-stopped' after every song.
//
//   node e2e/soak.mjs [--node-minutes 60] [--browser-minutes 10] [--json FILE] [--stop-confirm-s S]
//                     [--speech espeak]
//
// prints the figures (docs/ROBUSTNESS.md) and exits non-zero when a check fails; e2e/soak.test.mjs
// runs a short version in CI. Needs: scripts/demo.sh --build-only.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { addIndexFiles, benchSpeech, catalog, decode, indexShards, siteDir } from './helpers.mjs';
import { soakBrowser } from './soak-browser.mjs';

const RATE_HZ = 16000;
/** Seconds after a part ends in which its event may still come (a match decided on the song's
 *  last window; a stop is confirmed about 7.5 s after the music ends: the gate closes after 2 s
 *  of ~1 s patches without music, then stop_confirm_s = 5 s). */
export const TOLERANCE_S = 8;
/** Allowed growth of malloc's bytes in use once the session runs (warm-up excluded). */
export const FLAT_BYTES = 64 * 1024;

/**
 * Speech without music: recorded voices (the train set's British Hedgewars lines, as the
 * benchmarks use) when the evaluation corpus is present and `source` is not 'espeak', else
 * about 20 s of espeak-ng reading a few sentences.
 * @returns {{pcm: Float32Array, source: string}}
 */
function speechTrack(source) {
    const voices = source === 'espeak' ? null : benchSpeech(40);
    if (voices) return { pcm: voices, source: 'voices' };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-soak-'));
    const wav = path.join(dir, 'speech.wav');
    execFileSync('espeak-ng', ['-s', '150', '-w', wav,
        'Good evening and welcome back. Here is the news at nine. The weather stays mild tonight, ' +
        'with light rain in the north. Traffic is slow on the ring road after an accident near the ' +
        'bridge. Coming up after the break: the results of the cup and an interview with the mayor.']);
    const pcm = decode(wav, 0, undefined, RATE_HZ);
    fs.rmSync(dir, { recursive: true, force: true });
    return { pcm, source: 'espeak' };
}

/** Deterministic white noise generator (xorshift32, uniform in [-1, 1)). */
function noise(seed) {
    let s = seed >>> 0 || 1;
    return () => {
        s ^= s << 13; s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5; s >>>= 0;
        return s / 2147483648 - 1;
    };
}

/**
 * Where the music itself all but stops: runs of at least 2 s whose 0.5 s blocks are all below
 * -50 dBFS (a fade-out, a long rest). The recognizer may rightly report the music stopping there.
 * @returns {[number, number][]} [startS, endS] in programme time
 */
function quietStretches(x, offsetS) {
    const block = RATE_HZ / 2;
    const out = [];
    let runStart = -1;
    for (let b = 0; b * block <= x.length; b++) {
        let quiet = false;
        if ((b + 1) * block <= x.length) {
            let sum = 0;
            for (let i = b * block; i < (b + 1) * block; i++) sum += x[i] * x[i];
            quiet = 10 * Math.log10(sum / block + 1e-12) < -50;
        }
        if (quiet && runStart < 0) runStart = b;
        if (!quiet && runStart >= 0) {
            if (b - runStart >= 4) out.push([offsetS + runStart / 2, offsetS + b / 2]);
            runStart = -1;
        }
    }
    return out;
}

/**
 * The session's audio: song parts (30–49 s from the middle of a demo song, cycling through the
 * songs) each followed by a gap (6 s of digital silence, 8 s of speech, or 7 s of room tone at
 * -60 dBFS, in turn), until `minutes`. speech: 'espeak' forces synthetic speech.
 * @returns {{pcm: Float32Array, parts: {kind: 'song' | 'gap', what: string, id?: string, title?: string, startS: number, endS: number}[]}}
 */
export function makeProgramme(minutes, { speech: speechSource } = {}) {
    const songs = indexShards().flatMap((s) => s.songs);
    const rows = catalog('hex-a-hop-data');
    const audio = songs.map((song) => decode(rows.find((r) => r.id === song.id).path, 0, undefined, RATE_HZ));
    const { pcm: speech, source } = speechTrack(speechSource);
    const room = noise(99);
    const total = Math.round(minutes * 60 * RATE_HZ);
    const pcm = new Float32Array(total);
    const parts = [];
    let at = 0;
    const add = (x, part) => {
        const n = Math.min(x.length, total - at);
        pcm.set(x.subarray(0, n), at);
        parts.push({ ...part, startS: at / RATE_HZ, endS: (at + n) / RATE_HZ, quiet: quietStretches(x.subarray(0, n), at / RATE_HZ) });
        at += n;
    };
    for (let k = 0; at < total; k++) {
        const i = k % songs.length;
        const seconds = 30 + (k * 7) % 20;
        const songS = audio[i].length / RATE_HZ;
        const span = Math.max(0, songS - seconds - 30);
        const startS = 15 + ((k * 37) % 100) / 100 * span;
        const from = Math.round(startS * RATE_HZ);
        add(audio[i].subarray(from, from + seconds * RATE_HZ), { kind: 'song', what: 'song', id: songs[i].id, title: songs[i].title });
        if (at >= total) break;
        // (Not 'speech over room tone': the music detector takes espeak-ng's synthetic voice over
        // -60 dBFS noise for music, so the gate stays open through it: docs/ROBUSTNESS.md.)
        const gap = ['silence', 'speech', 'room tone'][(k + Math.floor(k / 3)) % 3];
        const x = new Float32Array((gap === 'silence' ? 6 : gap === 'room tone' ? 7 : 8) * RATE_HZ);
        if (gap === 'speech') {
            const offset = (k * 3 * RATE_HZ) % Math.max(1, speech.length - x.length);
            x.set(speech.subarray(offset, offset + x.length));
        }
        if (gap === 'room tone') for (let j = 0; j < x.length; j++) x[j] += 0.0018 * room();
        add(x, { kind: 'gap', what: gap });
    }
    return { pcm, parts, speech: source };
}

/**
 * Checks an event stream against the programme. Events: {type, song, returned, atS} with atS the
 * seconds of programme audio consumed when it was decided.
 */
export function checkEvents(parts, events) {
    // The part an event belongs to: the one playing when it was decided, or the part before when
    // that one is of the event's kind and ended less than TOLERANCE_S earlier (a match decided
    // on a song's last seconds, a stop confirmed just after the next song began).
    const partAt = (t, kind) => {
        let i = parts.findIndex((p) => t < p.endS);
        if (i < 0) i = parts.length - 1;
        if (i > 0 && parts[i].kind !== kind && parts[i - 1].kind === kind && t - parts[i].startS < TOLERANCE_S) i -= 1;
        return i;
    };
    const matchesIn = parts.map(() => []);
    const stopsIn = parts.map(() => []);
    const seen = new Set();
    const problems = [];
    for (const e of events) {
        const i = partAt(e.atS, e.type === 'match' ? 'song' : 'gap');
        if (e.type === 'match') {
            matchesIn[i].push(e);
            if (e.returned !== seen.has(e.song)) {
                problems.push(`${e.atS.toFixed(1)} s: ${e.song} reported with returned=${e.returned}`);
            }
            seen.add(e.song);
        } else if (e.type === 'music-stopped') {
            stopsIn[i].push(e);
        } else {
            problems.push(`${e.atS.toFixed(1)} s: unexpected ${e.type} event`);
        }
    }
    let missed = 0, duplicates = 0, wrong = 0, falseMatches = 0, missedStops = 0, extraStops = 0;
    // A stop inside a song is right where the music all but stops (part.quiet), and so is the
    // same song reported again ("returned") after such a stop.
    const inQuiet = (p, t) => p.quiet.some(([a, b]) => t >= a && t <= b + TOLERANCE_S);
    let stopAtSongEnd = false;  // the song before the current gap faded out and was reported stopped
    parts.forEach((p, i) => {
        const where = `${p.what} at ${p.startS.toFixed(1)}-${p.endS.toFixed(1)} s`;
        if (p.kind === 'song') {
            const m = matchesIn[i];
            const rightStops = stopsIn[i].filter((e) => inQuiet(p, e.atS));
            if (m.length === 0) { missed++; problems.push(`${where}: no match (missed ${p.id})`); }
            if (m.length > 1 + rightStops.length) { duplicates += m.length - 1 - rightStops.length; problems.push(`${where}: ${m.length} matches`); }
            for (const e of m) if (e.song !== p.id) { wrong++; problems.push(`${where}: matched ${e.song}, not ${p.id}`); }
            const wrongStops = stopsIn[i].length - rightStops.length;
            if (wrongStops > 0) { extraStops += wrongStops; problems.push(`${where}: music-stopped inside the music`); }
            const last = stopsIn[i][stopsIn[i].length - 1];
            stopAtSongEnd = rightStops.length > 0 && last !== undefined && !m.some((e) => e.atS > last.atS);
        } else {
            if (matchesIn[i].length > 0) { falseMatches += matchesIn[i].length; problems.push(`${where}: match ${matchesIn[i].map((e) => e.song)}`); }
            const after = i > 0 && parts[i - 1].kind === 'song';
            const stops = stopsIn[i].length + (after && stopAtSongEnd ? 1 : 0);
            // The last gap may be cut before the stop is confirmed.
            const complete = i < parts.length - 1;
            if (after && stops === 0 && complete) { missedStops++; problems.push(`${where}: no music-stopped`); }
            if (stops > 1) { extraStops += stops - 1; problems.push(`${where}: ${stops} music-stopped`); }
            stopAtSongEnd = false;
        }
    });
    const songs = parts.filter((p) => p.kind === 'song').length;
    return { songs, gaps: parts.length - songs, matches: events.filter((e) => e.type === 'match').length,
        missed, duplicates, wrong, falseMatches, missedStops, extraStops, problems };
}

/** Memory samples [{audioS, allocatedBytes, heapBytes}]: growth after the first `warmupS`. */
export function checkMemory(samples, warmupS) {
    const steady = samples.filter((s) => s.audioS >= warmupS);
    if (steady.length < 2) return { growthBytes: 0, heapGrowthBytes: 0, samples: samples.length, flat: true };
    const alloc = steady.map((s) => s.allocatedBytes);
    const growthBytes = Math.max(...alloc) - steady[0].allocatedBytes;
    const heapGrowthBytes = steady[steady.length - 1].heapBytes - steady[0].heapBytes;
    return { growthBytes, heapGrowthBytes, firstBytes: steady[0].allocatedBytes, lastBytes: alloc[alloc.length - 1],
        samples: samples.length, flat: growthBytes <= FLAT_BYTES && heapGrowthBytes === 0 };
}

/**
 * Streams the programme through the site's WASM module in node: continuous live mode, 2048-sample
 * blocks (what an AudioWorklet batch of 16 render quanta gives at 16 kHz... rounded), memory
 * sampled every 30 s of audio.
 */
export async function soakNode(programme, { blockSamples = 2048, params = {} } = {}) {
    const { default: createModule } = await import(path.join(siteDir, 'wasm/earshot-core.mjs'));
    const module = await createModule({ wasmBinary: fs.readFileSync(path.join(siteDir, 'wasm/earshot-core.wasm')) });
    const engine = new module.Engine();
    const must = (status) => { if (!status.ok) throw new Error(status.message); };
    must(engine.loadModel(fs.readFileSync(path.join(siteDir, 'models/earshot.emod'))));
    addIndexFiles(engine);
    must(engine.createRecognizer('simd', JSON.stringify({ ...params, live: true, continuous: true })));
    const address = engine.inputPointer(blockSamples);
    const events = [];
    const memory = [];
    const sample = (audioS) => {
        const m = JSON.parse(engine.memoryInfo());
        memory.push({ audioS, allocatedBytes: m.allocated_bytes, heapBytes: m.heap_bytes });
    };
    const { pcm } = programme;
    const t0 = process.cpuUsage();
    let nextSampleS = 0;
    for (let i = 0; i < pcm.length; i += blockSamples) {
        const piece = pcm.subarray(i, Math.min(pcm.length, i + blockSamples));
        module.HEAPF32.set(piece, address >> 2);
        must(engine.push(piece.length));
        for (let text = engine.pollEvent(); text; text = engine.pollEvent()) {
            const e = JSON.parse(text);
            events.push({ type: e.type, song: e.song ?? null, returned: Boolean(e.returned), atS: e.answer_s });
        }
        const audioS = (i + piece.length) / RATE_HZ;
        if (audioS >= nextSampleS) {
            sample(audioS);
            nextSampleS += 30;
        }
    }
    const cpu = process.cpuUsage(t0);
    sample(pcm.length / RATE_HZ);
    return { events, memory, cpuMsPerAudioSecond: (cpu.user + cpu.system) / 1000 / (pcm.length / RATE_HZ) };
}

function parseArgs(argv) {
    const o = { nodeMinutes: 60, browserMinutes: 10, json: null, params: {}, speech: undefined };
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--node-minutes') o.nodeMinutes = Number(argv[++i]);
        else if (argv[i] === '--browser-minutes') o.browserMinutes = Number(argv[++i]);
        else if (argv[i] === '--json') o.json = argv[++i];
        else if (argv[i] === '--speech') o.speech = argv[++i];  // 'espeak': synthetic even with the corpus
        else if (argv[i] === '--stop-confirm-s') o.params.stop_confirm_s = Number(argv[++i]);  // node only
        else throw new Error(`unknown argument ${argv[i]}`);
    }
    return o;
}

function report(name, audioMinutes, check, mem, extra) {
    console.log(`${name}: ${audioMinutes} min of audio, ${check.songs} songs, ${check.gaps} gaps (speech: ${check.speech}); ` +
        `${check.matches} matches: missed ${check.missed}, duplicate ${check.duplicates}, wrong ${check.wrong}, ` +
        `in gaps ${check.falseMatches}; music-stopped missed ${check.missedStops}, extra ${check.extraStops}`);
    console.log(`  memory: ${mem.samples} samples, in use ${(mem.firstBytes / 1048576).toFixed(2)} -> ` +
        `${(mem.lastBytes / 1048576).toFixed(2)} MB, growth ${mem.growthBytes} B, heap growth ${mem.heapGrowthBytes} B` +
        `${extra ? `; ${extra}` : ''}`);
    for (const p of check.problems.slice(0, 20)) console.log(`  ! ${p}`);
}

/** Whether a soak passed every check. */
export function passed(check, mem) {
    return check.missed + check.duplicates + check.wrong + check.falseMatches + check.missedStops + check.extraStops === 0 &&
        check.problems.length === 0 && mem.flat;
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const o = parseArgs(process.argv.slice(2));
    const results = {};
    let ok = true;
    if (o.nodeMinutes > 0) {
        const programme = makeProgramme(o.nodeMinutes, { speech: o.speech });
        const t0 = Date.now();
        const run = await soakNode(programme, { params: o.params });
        const check = { ...checkEvents(programme.parts, run.events), speech: programme.speech };
        const mem = checkMemory(run.memory, 120);
        report('node', o.nodeMinutes, check, mem,
            `${run.cpuMsPerAudioSecond.toFixed(2)} ms CPU per s of audio, ${((Date.now() - t0) / 1000).toFixed(0)} s wall`);
        results.node = { minutes: o.nodeMinutes, check, memory: mem, cpuMsPerAudioSecond: run.cpuMsPerAudioSecond };
        ok &&= passed(check, mem);
    }
    if (o.browserMinutes > 0) {
        const programme = makeProgramme(o.browserMinutes, { speech: o.speech });
        const run = await soakBrowser(programme);
        const check = { ...checkEvents(programme.parts, run.events), speech: programme.speech };
        const mem = checkMemory(run.memory, 60);
        report('chromium', o.browserMinutes, check, mem, `${run.audioSeconds.toFixed(0)} s of audio heard`);
        for (const e of run.pageErrors) console.log(`  ! page error: ${e}`);
        results.chromium = { minutes: o.browserMinutes, check, memory: mem, audioSeconds: run.audioSeconds, pageErrors: run.pageErrors };
        ok &&= passed(check, mem) && run.pageErrors.length === 0;
    }
    if (o.json) fs.writeFileSync(o.json, JSON.stringify(results, null, 2));
    process.exit(ok ? 0 : 1);
}
