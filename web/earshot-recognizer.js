// <earshot-recognizer index="index/manifest.json" model="models/earshot.emod"> — a listen button,
// a live level meter, the result card and the index status line, around createRecognizer().
// Attributes: index, model (required); listen-seconds (default 15); continuous (boolean: keep
// listening, show each new song, "Back to" a song that returns, "Music stopped" in between);
// index-mode ("lazy": fetch per listen only the parts of the index it needs; default "full"),
// lazy-cache-mb (the Cache API budget of those parts, default 64), lazy-params (advanced: a JSON
// object of the core's lazy parameters, RecognizerOptions.lazyParams, e.g. '{"more_candidates":
// 0}') and hot-index (lazy mode: a whole index of the most played songs, loaded first and
// matched without the network).
// Re-dispatches the recognizer's events (ready, progress, match, nomatch, music-stopped, error)
// from the element, bubbling and composed, so a page can react without touching the library.
// Styles come from earshot-recognizer.css (a <link>: no inline styles, strict CSP friendly).

import { createRecognizer, EarshotError } from './earshot.js';

/** The lazy-params attribute: a JSON object, or a 'config' error saying what is wrong. */
function parseLazyParams(text) {
    try {
        return JSON.parse(text);
    } catch (error) {
        throw new EarshotError('config', `lazy-params must be a JSON object (${error.message})`);
    }
}

const TEMPLATE = `
<link rel="stylesheet" href="${new URL('./earshot-recognizer.css', import.meta.url).href}">
<section class="recognizer" data-state="loading">
  <button class="listen" type="button" disabled aria-describedby="hint">
    <span class="listen-icon" aria-hidden="true"></span>
    <span class="listen-label">Loading…</span>
  </button>
  <div class="meter" role="meter" aria-label="Microphone level" aria-valuemin="0" aria-valuemax="1" aria-valuenow="0">
    <div class="meter-fill"></div>
  </div>
  <p class="hint" id="hint" aria-live="polite">Preparing the song index…</p>
  <article class="result" hidden aria-live="polite">
    <p class="result-kicker">It's</p>
    <h2 class="result-title"></h2>
    <p class="result-album"></p>
    <dl class="result-facts">
      <div><dt>Position</dt><dd class="result-position"></dd></div>
      <div><dt>Confidence</dt><dd class="result-confidence"></dd></div>
      <div><dt>Heard</dt><dd class="result-heard"></dd></div>
    </dl>
    <div class="confidence-bar" aria-hidden="true"><div class="confidence-fill"></div></div>
  </article>
  <article class="nomatch" hidden aria-live="polite">
    <h2>No match</h2>
    <p>This doesn't sound like any song in the index. Try again closer to the music.</p>
  </article>
  <div class="errors" role="alert"></div>
  <p class="status" aria-live="polite"><span class="status-dot"></span><span class="status-text">Index: loading…</span></p>
</section>`;

/** "1:07" */
export function formatPosition(seconds) {
    const s = Math.max(0, Math.round(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** "1.2 MB", "830 kB", "512 B" (decimal units, like browsers show downloads). */
export function formatBytes(bytes) {
    if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
    if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
    return `${bytes} B`;
}

/**
 * Confidence shown to people, 0..1: how far the score is above the no-match threshold, on the
 * way to a perfect score of 1 (scores are mean cosine similarities).
 */
export function confidenceOf(score, threshold) {
    if (!(threshold < 1)) return score >= threshold ? 1 : 0;
    return Math.min(1, Math.max(0, 0.5 + 0.5 * (score - threshold) / (1 - threshold)));
}

export class EarshotRecognizerElement extends HTMLElement {
    static get observedAttributes() { return ['index', 'model']; }

    constructor() {
        super();
        this.attachShadow({ mode: 'open' }).innerHTML = TEMPLATE;
        const $ = (selector) => /** @type {HTMLElement} */ (this.shadowRoot.querySelector(selector));
        this.ui = {
            root: $('.recognizer'), button: /** @type {HTMLButtonElement} */ ($('.listen')),
            label: $('.listen-label'), meter: $('.meter'), meterFill: $('.meter-fill'), hint: $('.hint'),
            result: $('.result'), kicker: $('.result-kicker'), title: $('.result-title'), album: $('.result-album'),
            position: $('.result-position'), confidence: $('.result-confidence'), heard: $('.result-heard'),
            confidenceFill: $('.confidence-fill'), nomatch: $('.nomatch'), errors: $('.errors'),
            status: $('.status'), statusText: $('.status-text'),
        };
        /** @type {import('./earshot.js').EarshotRecognizer | null} */
        this.recognizer = null;
        this.level = 0;
        this.ui.button.addEventListener('click', () => this.toggle());
        this.onControllerChange = () => this.renderStatus();
    }

    connectedCallback() {
        navigator.serviceWorker?.addEventListener('controllerchange', this.onControllerChange);
        if (!this.recognizer && !this.creating) this.create();
    }

    disconnectedCallback() {
        navigator.serviceWorker?.removeEventListener('controllerchange', this.onControllerChange);
        this.recognizer?.destroy();
        this.recognizer = null;
    }

    attributeChangedCallback(name, oldValue, newValue) {
        if (oldValue !== null && oldValue !== newValue && this.isConnected) {
            this.recognizer?.destroy();
            this.recognizer = null;
            this.create();
        }
    }

    /** @param {string} state loading | idle | listening | error */
    setState(state) {
        this.ui.root.dataset.state = state;
        const labels = { loading: 'Loading…', idle: 'Listen', listening: 'Stop', error: 'Unavailable' };
        this.ui.label.textContent = labels[state] ?? state;
        this.ui.button.disabled = state === 'loading' || state === 'error';
        this.ui.button.setAttribute('aria-pressed', String(state === 'listening'));
    }

    async create() {
        const index = this.getAttribute('index');
        const model = this.getAttribute('model');
        if (!index || !model) {
            this.showError({ code: 'config', message: '<earshot-recognizer> needs index and model attributes.', fatal: true });
            return;
        }
        this.creating = true;
        this.setState('loading');
        try {
            const lazyCache = this.getAttribute('lazy-cache-mb');
            const lazyParams = this.getAttribute('lazy-params');
            const recognizer = await createRecognizer({
                indexUrl: index, modelUrl: model,
                indexMode: this.getAttribute('index-mode') === 'lazy' ? 'lazy' : 'full',
                lazyCacheMB: lazyCache === null ? undefined : Number(lazyCache),
                lazyParams: lazyParams === null ? undefined : parseLazyParams(lazyParams),
                hotIndexUrl: this.getAttribute('hot-index') ?? undefined,
                maxListenSeconds: Number(this.getAttribute('listen-seconds') ?? 15),
                continuous: this.hasAttribute('continuous'),
            });
            this.recognizer = recognizer;
            for (const type of ['ready', 'progress', 'match', 'nomatch', 'music-stopped', 'error', 'listening', 'level']) {
                recognizer.addEventListener(type, (event) => {
                    this.handle(type, /** @type {CustomEvent} */ (event).detail);
                    if (type !== 'level') {
                        this.dispatchEvent(new CustomEvent(type, { detail: /** @type {CustomEvent} */ (event).detail, bubbles: true, composed: true }));
                    }
                });
            }
        } catch (error) {
            this.showError({ code: error.code ?? 'startup', message: error.message, fatal: true });
            this.dispatchEvent(new CustomEvent('error', { detail: { code: error.code, message: error.message, fatal: true }, bubbles: true, composed: true }));
        } finally {
            this.creating = false;
        }
    }

    handle(type, detail) {
        if (detail?.lazy && this.recognizer?.progress) {  // lazy mode: the cache grew with this listen
            this.recognizer.progress.lazyCachedBytes = detail.lazy.cachedBytes;
            this.renderStatus();
        }
        switch (type) {
            case 'ready':
                this.setState('idle');
                this.ui.hint.textContent = 'Press Listen and hold your device near the music.';
                break;
            case 'progress':
                this.renderStatus();
                break;
            case 'listening':
                if (detail.listening) {
                    this.setState('listening');
                    this.ui.result.hidden = true;
                    this.ui.nomatch.hidden = true;
                    this.ui.hint.textContent = 'Listening…';
                    delete this.ui.root.dataset.music;
                    this.clearErrors(['mic-denied', 'mic-missing', 'mic-busy', 'mic-error', 'mic-unsupported', 'audio']);
                } else {
                    if (this.ui.root.dataset.state !== 'error') this.setState(this.recognizer?.isReady ? 'idle' : 'loading');
                    this.level = 0;
                    this.setLevel(0);
                }
                break;
            case 'level':
                this.setLevel(detail.rms);
                break;
            case 'match':
                this.showMatch(detail);
                break;
            case 'nomatch':
                this.ui.result.hidden = true;
                this.ui.nomatch.hidden = false;
                this.ui.hint.textContent = `Listened for ${Math.round(detail.listenedSeconds)} s.`;
                break;
            case 'music-stopped':
                // Continuous mode: the last song stays on the card, in the past tense.
                this.ui.root.dataset.music = 'stopped';
                if (!this.ui.result.hidden) this.ui.kicker.textContent = 'It was';
                this.ui.hint.textContent = 'Music stopped. Still listening for the next song…';
                break;
            case 'error':
                this.showError(detail);
                break;
            default:
                break;
        }
    }

    async toggle() {
        const r = this.recognizer;
        if (!r) return;
        if (r.listening) {
            r.stop();
            this.ui.hint.textContent = 'Stopped.';
            return;
        }
        try {
            await r.start();
        } catch {
            // The 'error' event already shows it.
        }
    }

    setLevel(rms) {
        // dBFS mapped to 0..1 over [-60, 0] dB; the meter falls back smoothly.
        const db = 20 * Math.log10(Math.max(rms, 1e-6));
        const target = Math.min(1, Math.max(0, (db + 60) / 60));
        this.level = target > this.level ? target : 0.8 * this.level + 0.2 * target;
        this.ui.meterFill.style.transform = `scaleX(${this.level.toFixed(3)})`;
        this.ui.meter.setAttribute('aria-valuenow', this.level.toFixed(2));
    }

    showMatch(detail) {
        const confidence = confidenceOf(detail.score, detail.threshold);
        this.ui.nomatch.hidden = true;
        this.ui.result.hidden = false;
        this.ui.root.dataset.music = 'playing';
        this.ui.kicker.textContent = detail.returned ? 'Back to' : "It's";
        this.ui.title.textContent = detail.title || detail.id || 'Unknown title';
        this.ui.album.textContent = detail.album || '';
        this.ui.position.textContent = formatPosition(detail.offsetSeconds);
        this.ui.confidence.textContent = `${Math.round(confidence * 100)}%`;
        this.ui.confidence.title = `score ${detail.score.toFixed(3)}, threshold ${detail.threshold.toFixed(3)}`;
        this.ui.heard.textContent = `${detail.listenedSeconds.toFixed(1)} s`;
        this.ui.confidenceFill.style.transform = `scaleX(${confidence.toFixed(3)})`;
        this.ui.hint.textContent = this.recognizer?.options.continuous
            ? 'Still listening: a new song will show here.' : 'Press Listen for another song.';
    }

    /** @param {{code: string, message: string, fatal: boolean, file?: string}} detail */
    showError(detail) {
        const item = document.createElement('p');
        item.className = `error ${detail.fatal ? 'fatal' : 'warning'}`;
        item.dataset.code = detail.code;
        item.textContent = detail.message;
        // One message per code and file: repeated failures do not pile up.
        for (const old of this.ui.errors.querySelectorAll('.error')) {
            if (old.dataset.code === detail.code && old.textContent === detail.message) old.remove();
        }
        this.ui.errors.append(item);
        if (detail.fatal) {
            this.setState('error');
            this.ui.hint.textContent = 'earshot cannot run: see the message below.';
        }
        this.renderStatus();
    }

    /** @param {string[]} codes */
    clearErrors(codes) {
        for (const el of this.ui.errors.querySelectorAll('.error')) {
            if (codes.includes(el.dataset.code ?? '')) el.remove();
        }
    }

    renderStatus() {
        const p = this.recognizer?.progress;
        if (!p) return;
        if (p.indexMode === 'lazy') {
            // Every song is searchable; its parts are fetched when it is heard.
            const hot = p.hotSongs ? ` · ${p.hotSongs} hot songs loaded (${formatBytes(p.hotBytes)})` : '';
            this.ui.statusText.textContent = `Index: ${p.songsTotal} songs${hot} · lazy: ${formatBytes(p.bytesLoaded)} loaded` +
                (p.done ? `, ${formatBytes(p.lazyCachedBytes ?? 0)} cached · needs the network for songs not heard before` : ' · loading…');
            this.ui.status.dataset.offline = 'false';
            this.ui.status.dataset.done = String(Boolean(p.done));
            return;
        }
        const offline = p.offlineReady && Boolean(navigator.serviceWorker?.controller);
        const parts = [
            `${p.songsLoaded} of ${p.songsTotal} songs`,
            `${p.shardsLoaded}/${p.shardsTotal} ${p.indexVersion === 2 ? 'blocks' : 'shards'}`,
            p.done ? formatBytes(p.bytesLoaded) : `${formatBytes(p.bytesLoaded)} of ${formatBytes(p.bytesTotal)}`,
        ];
        if (p.shardsFailed) parts.push(`${p.shardsFailed} rejected`);
        parts.push(p.done ? (offline ? 'offline-ready' : 'online only') : 'loading…');
        this.ui.statusText.textContent = `Index: ${parts.join(' · ')}`;
        this.ui.status.dataset.offline = String(offline);
        this.ui.status.dataset.done = String(Boolean(p.done));
    }
}

if (!customElements.get('earshot-recognizer')) {
    customElements.define('earshot-recognizer', EarshotRecognizerElement);
}
