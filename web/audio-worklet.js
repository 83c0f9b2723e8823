// AudioWorklet processor: runs on the audio rendering thread and only copies samples.
// It gathers the mono input into chunks of ~64 ms and transfers each chunk to the recognizer
// Worker through a MessagePort (the network never runs on the audio thread), and sends the
// level (RMS and peak, linear) of every ~32 ms to the main thread for the meter.
//
// Messages on this.port (from the main thread):
//   {type: 'connect', port: MessagePort}  where audio chunks go (the Worker's end)
//   {type: 'stop'}                        stop processing (the node may then be collected)
// Messages posted:
//   to the Worker port:  {type: 'audio', samples: Float32Array, sampleRate: number}
//   on this.port:        {type: 'level', rms: number, peak: number}

const CHUNK_SECONDS = 0.064;
const LEVEL_SECONDS = 0.032;

class EarshotCaptureProcessor extends AudioWorkletProcessor {
    constructor() {
        super();
        // `sampleRate` is the AudioWorkletGlobalScope's context rate.
        this.chunkSamples = Math.max(128, Math.round(sampleRate * CHUNK_SECONDS / 128) * 128);
        this.levelSamples = Math.max(128, Math.round(sampleRate * LEVEL_SECONDS));
        this.chunk = new Float32Array(this.chunkSamples);
        this.filled = 0;
        this.levelSumSquares = 0;
        this.levelPeak = 0;
        this.levelCount = 0;
        /** @type {MessagePort | null} */
        this.out = null;
        this.running = true;
        this.port.onmessage = (event) => {
            const message = event.data;
            if (message.type === 'connect') this.out = message.port;
            else if (message.type === 'stop') this.running = false;
        };
    }

    /** @param {Float32Array[][]} inputs */
    process(inputs) {
        const channels = inputs[0];
        if (!this.running) return false;
        if (!channels || channels.length === 0) return true;  // input not connected yet
        const mono = channels[0];  // the node is channelCount 1 / 'explicit': already down-mixed
        for (let i = 0; i < mono.length; i++) {
            const x = mono[i];
            this.levelSumSquares += x * x;
            const a = x < 0 ? -x : x;
            if (a > this.levelPeak) this.levelPeak = a;
        }
        this.levelCount += mono.length;
        if (this.levelCount >= this.levelSamples) {
            this.port.postMessage({
                type: 'level',
                rms: Math.sqrt(this.levelSumSquares / this.levelCount),
                peak: this.levelPeak,
            });
            this.levelSumSquares = 0;
            this.levelPeak = 0;
            this.levelCount = 0;
        }
        let offset = 0;
        while (offset < mono.length) {
            const n = Math.min(mono.length - offset, this.chunkSamples - this.filled);
            this.chunk.set(mono.subarray(offset, offset + n), this.filled);
            this.filled += n;
            offset += n;
            if (this.filled === this.chunkSamples) {
                if (this.out) {
                    const samples = this.chunk;
                    this.out.postMessage({ type: 'audio', samples, sampleRate }, [samples.buffer]);
                    this.chunk = new Float32Array(this.chunkSamples);
                }
                this.filled = 0;
            }
        }
        return true;
    }
}

registerProcessor('earshot-capture', EarshotCaptureProcessor);
