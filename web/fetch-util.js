// Network helpers shared by the index downloader: fetch with retry and exponential back-off,
// SHA-256 through SubtleCrypto, and a typed error that says what failed and what to do.
// Works in windows, Workers and node >= 20 (global fetch + crypto.subtle).

/** Error with a machine-readable code; `fatal` errors stop the recognizer, others do not. */
export class EarshotError extends Error {
    /**
     * @param {string} code e.g. 'network', 'shard-corrupt', 'mic-denied'
     * @param {string} message what was wrong and what to do
     * @param {{fatal?: boolean, file?: string, cause?: unknown}} [details]
     */
    constructor(code, message, details = {}) {
        super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
        this.name = 'EarshotError';
        this.code = code;
        this.fatal = details.fatal ?? true;
        this.file = details.file;
    }
}

/**
 * Lowercase hex SHA-256 of `bytes`.
 * @param {ArrayBuffer | ArrayBufferView} bytes
 * @returns {Promise<string>}
 */
export async function sha256Hex(bytes) {
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return hex(new Uint8Array(digest));
}

/** @param {Uint8Array} bytes */
export function hex(bytes) {
    let out = '';
    for (const b of bytes) out += b.toString(16).padStart(2, '0');
    return out;
}

/**
 * @typedef {object} RetryOptions
 * @property {number} [retries]      extra attempts after the first (default 4)
 * @property {number} [baseDelayMs]  first back-off delay (default 500); doubles per attempt
 * @property {number} [maxDelayMs]   back-off cap (default 8000)
 * @property {typeof fetch} [fetchImpl]
 * @property {(ms: number) => Promise<void>} [sleep]
 * @property {(info: {url: string, attempt: number, delayMs: number, reason: string}) => void} [onRetry]
 * @property {RequestInit} [init]
 */

/** Back-off before retry `attempt` (1-based): base * 2^(attempt-1), capped, +-25% jitter. */
export function backoffDelayMs(attempt, baseDelayMs = 500, maxDelayMs = 8000, random = Math.random) {
    const nominal = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
    return Math.round(nominal * (0.75 + 0.5 * random()));
}

/** HTTP statuses worth retrying: the server or a proxy may recover. */
function isTransientStatus(status) {
    return status === 408 || status === 425 || status === 429 || status >= 500;
}

/**
 * GET `url` and return its body, retrying network errors and transient HTTP statuses with
 * exponential back-off. A 4xx (other than 408/425/429) fails at once: retrying will not help.
 * @param {string} url
 * @param {RetryOptions} [options]
 * @returns {Promise<ArrayBuffer>}
 */
export async function fetchBytesWithRetry(url, options = {}) {
    return (await fetchWithRetry(url, options)).body;
}

/**
 * fetchBytesWithRetry with the answer's status and headers (a Range request's 206 and its
 * Content-Range; a server may answer 200 with the whole file instead).
 * @param {string} url
 * @param {RetryOptions} [options]
 * @returns {Promise<{status: number, headers: Headers, body: ArrayBuffer}>}
 */
export async function fetchWithRetry(url, options = {}) {
    const retries = options.retries ?? 4;
    const fetchImpl = options.fetchImpl ?? fetch;
    const sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    let lastReason = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
        if (attempt > 0) {
            const delayMs = backoffDelayMs(attempt, options.baseDelayMs, options.maxDelayMs);
            options.onRetry?.({ url, attempt, delayMs, reason: lastReason });
            await sleep(delayMs);
        }
        let response;
        try {
            response = await fetchImpl(url, { method: 'GET', credentials: 'same-origin', ...options.init });
        } catch (error) {
            lastReason = `network error (${/** @type {Error} */ (error).message || error})`;
            continue;
        }
        if (response.ok) {
            try {
                return { status: response.status, headers: response.headers, body: await response.arrayBuffer() };
            } catch (error) {
                // The connection dropped while reading the body: retry like a network error.
                lastReason = `connection lost while downloading (${/** @type {Error} */ (error).message})`;
                continue;
            }
        }
        lastReason = `HTTP ${response.status} ${response.statusText}`.trim();
        if (!isTransientStatus(response.status)) {
            throw new EarshotError('http', `Could not download ${url}: ${lastReason}. ` +
                'Check that the index and model URLs are right.', { file: url });
        }
    }
    throw new EarshotError('network', `Could not download ${url} after ${retries + 1} attempts: ` +
        `${lastReason}. Check the network connection and reload.`, { file: url });
}
