// Streaming sample-rate converter: any input rate -> the model's rate (16 kHz), mono float32.
// Windowed-sinc interpolation (Blackman window, `halfTaps` zero crossings each side) with the
// cutoff at 0.45 * min(inRate, outRate), so downsampling from 44.1/48 kHz does not alias.
// The kernel is tabulated at `phases` sub-sample positions and interpolated linearly between
// them, so nothing is allocated or evaluated with Math.sin per sample.
//
// Used by the Worker only when the AudioContext did not give us the model rate itself
// (browsers that refuse `new AudioContext({sampleRate: 16000})` or resample badly).

export class StreamingResampler {
    /**
     * @param {number} inRateHz  input sample rate, Hz (e.g. 48000)
     * @param {number} outRateHz output sample rate, Hz (e.g. 16000)
     * @param {{halfTaps?: number, phases?: number}} [options]
     */
    constructor(inRateHz, outRateHz, options = {}) {
        if (!(inRateHz > 0) || !(outRateHz > 0)) {
            throw new RangeError(`sample rates must be positive, got ${inRateHz} -> ${outRateHz}`);
        }
        this.inRateHz = inRateHz;
        this.outRateHz = outRateHz;
        /** input samples advanced per output sample */
        this.step = inRateHz / outRateHz;
        const cutoff = 0.45 * Math.min(1, outRateHz / inRateHz);  // cycles per input sample
        this.cutoff = cutoff;
        // Kernel half-width in input samples: halfTaps zero crossings of the cutoff sinc.
        this.halfTaps = options.halfTaps ?? 16;
        this.halfWidth = Math.ceil(this.halfTaps / (2 * cutoff));
        this.phases = options.phases ?? 256;
        // table[p * (2*halfWidth+1) + k] = h((k - halfWidth) - p/phases), p in [0, phases]
        const width = 2 * this.halfWidth + 1;
        this.width = width;
        this.table = new Float32Array((this.phases + 1) * width);
        for (let p = 0; p <= this.phases; p++) {
            for (let k = 0; k < width; k++) {
                const x = k - this.halfWidth - p / this.phases;  // input samples from centre
                this.table[p * width + k] = this.kernel(x);
            }
        }
        // History of input samples not yet fully consumed (grows only when fed big blocks).
        this.buffer = new Float32Array(4096 + width);
        this.bufferLength = 0;
        // Position (in input samples, relative to buffer[0]) of the next output sample's centre.
        // Starts at halfWidth so the first output has a full left context (of zeros).
        this.position = this.halfWidth;
        this.bufferLength = this.halfWidth;  // leading zeros
    }

    /** @param {number} x distance from the kernel centre in input samples */
    kernel(x) {
        const R = this.halfWidth;
        if (Math.abs(x) >= R) return 0;
        const fc = this.cutoff;
        const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
        const t = (x + R) / (2 * R);  // 0..1 across the window
        const blackman = 0.42 - 0.5 * Math.cos(2 * Math.PI * t) + 0.08 * Math.cos(4 * Math.PI * t);
        return sinc * blackman;
    }

    /** Output samples that `nIn` more input samples would produce at most. */
    maxOutput(nIn) {
        return Math.ceil((this.bufferLength + nIn) / this.step) + 2;
    }

    /**
     * Feeds input samples; returns the output samples now computable (a new Float32Array view,
     * valid until the next call if `out` is given).
     * @param {Float32Array} input
     * @param {Float32Array} [out] optional destination with room for maxOutput(input.length)
     * @returns {Float32Array}
     */
    process(input, out) {
        if (this.inRateHz === this.outRateHz) return input;
        const needed = this.bufferLength + input.length;
        if (needed > this.buffer.length) {
            const bigger = new Float32Array(Math.max(needed, 2 * this.buffer.length));
            bigger.set(this.buffer.subarray(0, this.bufferLength));
            this.buffer = bigger;
        }
        this.buffer.set(input, this.bufferLength);
        this.bufferLength += input.length;

        const dst = out ?? new Float32Array(this.maxOutput(0));
        const R = this.halfWidth;
        const width = this.width;
        const table = this.table;
        const buf = this.buffer;
        let n = 0;
        let pos = this.position;
        while (pos + R < this.bufferLength && n < dst.length) {
            const base = Math.floor(pos);
            const frac = (pos - base) * this.phases;
            const p = Math.floor(frac);
            const w = frac - p;
            const row0 = p * width;
            const row1 = row0 + width;
            let acc = 0;
            const start = base - R;
            for (let k = 0; k < width; k++) {
                const h = table[row0 + k] + w * (table[row1 + k] - table[row0 + k]);
                acc += h * buf[start + k];
            }
            // Scale: the sinc with cutoff fc has DC gain 2*fc*(1/(2*fc)) = 1 per input sample.
            dst[n++] = acc;
            pos += this.step;
        }
        // Drop input that no future output needs (keep R samples of left context).
        const drop = Math.max(0, Math.floor(pos) - R);
        if (drop > 0) {
            buf.copyWithin(0, drop, this.bufferLength);
            this.bufferLength -= drop;
            pos -= drop;
        }
        this.position = pos;
        return dst.subarray(0, n);
    }

    /** Forgets all input (e.g. between listening sessions). */
    reset() {
        this.buffer.fill(0);
        this.bufferLength = this.halfWidth;
        this.position = this.halfWidth;
    }
}
