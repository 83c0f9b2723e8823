"""Training augmentation: degradations that model a phone or laptop microphone 1-3 m from a
loudspeaker, applied in batched torch ops on waveforms at the front-end's sample rate (Degrader),
and SpecAugment-style masks on the log-mel patches (spec_mask).

Chain for the positive view (each stage drawn per item):
  room (synthetic RIR, FFT convolution over a pre-roll so tails enter naturally) ->
  device (loudspeaker and microphone: a smooth random response of a few resonances and dips,
  from a precomputed bank; off unless p_device > 0) ->
  band-limit (4th-order Butterworth band-pass, magnitude and phase, from a precomputed bank) ->
  EQ tilt (+-6 dB linear in log-frequency) -> soft clip (tanh, 0-12 dB drive) ->
  additive noise (-5..+15 dB SNR by default, RMS over the segment) ->
  level (-30..-12 dBFS RMS) -> 16-bit quantisation.
"""

import math

import numpy as np
import scipy.signal
import torch

from .frontend import DEFAULT_PARAMS

RATE_HZ = DEFAULT_PARAMS["sample_rate_hz"]
# The fixed ranges of the chain (the training record describes them from here).
RT60_MIN_S = 0.2                   # rooms draw RT60 in RT60_MIN_S..rt60_max
RT60_MAX_S = 1.0                   # default rt60_max
DRR_DB_RANGE = (-6.0, 6.0)         # direct-to-reverberant ratio of the impulse responses
TILT_DB = 6.0                      # EQ tilt drawn in -TILT_DB..+TILT_DB
CLIP_DRIVE_DB_RANGE = (0.0, 12.0)  # soft-clip drive
SNR_DB_RANGE = (-5.0, 15.0)        # default additive-noise SNR
LEVEL_DBFS_RANGE = (-30.0, -12.0)  # output RMS level
RIR_S = 0.75                       # default impulse response length
RIR_SAMPLES = int(round(RIR_S * RATE_HZ))


def synthetic_rir_bank(n, length, rng, rt60_range=(RT60_MIN_S, RT60_MAX_S),
                       drr_db_range=DRR_DB_RANGE, rt60_log=False):
    """[n, length] float32 room impulse responses with unit energy and the direct path at
    sample 0: exponentially decaying Gaussian noise (RT60 drawn uniformly, or log-uniformly
    with rt60_log, so that long halls do not crowd out ordinary rooms), a few early
    reflections, mild high-frequency damping of the tail, and the reverberant part (after
    2.5 ms) rescaled to a drawn direct-to-reverberant ratio."""
    bank = np.zeros((n, length), dtype=np.float64)
    t = np.arange(length) / RATE_HZ
    direct_len = int(0.0025 * RATE_HZ)
    for i in range(n):
        if rt60_log:
            rt60 = math.exp(rng.uniform(math.log(rt60_range[0]), math.log(rt60_range[1])))
        else:
            rt60 = rng.uniform(*rt60_range)
        onset = int(rng.uniform(0.003, 0.02) * RATE_HZ)  # first reflections 1-7 m later
        tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60)
        tail[:onset] = 0.0
        for _ in range(rng.integers(2, 8)):  # sparse early reflections
            k = int(rng.uniform(onset, onset + 0.05 * RATE_HZ))
            if k < length:
                tail[k] += rng.uniform(-1, 1) * 3.0 * np.exp(-6.9078 * t[k] / rt60)
        cutoff = rng.uniform(2500, 7500)  # air and wall absorption
        b, a = scipy.signal.butter(1, cutoff, fs=RATE_HZ)
        tail = scipy.signal.lfilter(b, a, tail)
        tail[:direct_len] = 0.0
        drr_db = rng.uniform(*drr_db_range)
        reverb_energy = 10 ** (-drr_db / 10)
        tail *= math.sqrt(reverb_energy / max(np.sum(tail ** 2), 1e-20))
        h = tail
        h[0] = 1.0
        bank[i] = h / math.sqrt(np.sum(h ** 2))
    return bank.astype(np.float32)


def bandpass_bank(n, n_fft, rng, low_range=(100.0, 300.0), high_range=(3500.0, 7500.0)):
    """[n, n_fft//2+1] complex64 frequency responses of 4th-order Butterworth band-passes
    (the eval chain uses 150 Hz-7 kHz; we draw around it, down to a narrow phone band)."""
    freqs = np.arange(n_fft // 2 + 1) * RATE_HZ / n_fft
    out = np.zeros((n, len(freqs)), dtype=np.complex64)
    for i in range(n):
        low = rng.uniform(*low_range)
        high = min(rng.uniform(*high_range), 7900.0)
        sos = scipy.signal.butter(4, [low, high], btype="bandpass", fs=RATE_HZ, output="sos")
        _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=RATE_HZ)
        out[i] = h.astype(np.complex64)
    return out


def device_response_bank(n, n_fft, rng):
    """[n, n_fft//2+1] float32 magnitude responses of a loudspeaker and a microphone in a row:
    per device, 1-4 resonances or dips (Gaussian in log-frequency, +-3..10 dB, 0.2-1.5
    octaves wide, centred 150 Hz-7 kHz) and, half of the time, a small speaker's low-frequency
    roll-off (2nd-order high-pass at 150-600 Hz). Zero phase: the room and band-pass carry the
    phase."""
    freqs = np.arange(n_fft // 2 + 1) * RATE_HZ / n_fft
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    out = np.zeros((n, len(freqs)), dtype=np.float32)
    for i in range(n):
        gain_db = np.zeros(len(freqs))
        for _device in range(2):
            for _ in range(rng.integers(1, 5)):
                centre = rng.uniform(np.log2(0.15), np.log2(7.0))
                width = rng.uniform(0.2, 1.5) / 2.355  # FWHM in octaves -> sigma
                gain_db += rng.choice([-1.0, 1.0]) * rng.uniform(3.0, 10.0) * np.exp(
                    -0.5 * ((octaves - centre) / width) ** 2)
        gain = 10 ** (gain_db / 20)
        if rng.random() < 0.5:
            fc = rng.uniform(150.0, 600.0)
            ratio = np.maximum(freqs, 1e-3) / fc
            gain *= ratio ** 2 / np.sqrt(1 + ratio ** 4)
        out[i] = gain
    return out


def synthetic_noise(rng, n):
    """[n] float32 environmental noise of no particular source, to widen the train set's noise
    types (city recordings, voices and 16 ambience loops): Gaussian noise coloured by a spectral
    slope of -6..+1.5 dB per octave (brown to slightly blue: wind, surf, rain, fans, hiss) and
    a random resonance, with a slow random loudness envelope (0-12 dB deep, a few random points
    per second) and, half of the time, a train of decaying clicks (drops, crackle, footsteps:
    3-300 per second).
    RMS is arbitrary (the degrader sets the SNR). numpy draws from `rng`."""
    n_fft = _fast_fft_size(n)
    freqs = np.arange(n_fft // 2 + 1) * RATE_HZ / n_fft
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    gain_db = rng.uniform(-6.0, 1.5) * octaves
    centre, width = rng.uniform(np.log2(0.1), np.log2(6.0)), rng.uniform(0.3, 2.0)
    gain_db += rng.uniform(0.0, 12.0) * np.exp(-0.5 * ((octaves - centre) / width) ** 2)
    spec = np.fft.rfft(rng.standard_normal(n_fft)) * 10 ** (gain_db / 20)
    x = np.fft.irfft(spec, n=n_fft)[:n]
    if rng.random() < 0.5:
        rate = np.exp(rng.uniform(np.log(3.0), np.log(300.0)))
        clicks = np.zeros(n)
        k = rng.integers(0, n, rng.poisson(rate * n / RATE_HZ))
        clicks[k] = rng.standard_normal(len(k)) * rng.pareto(2.0, len(k))
        burst = rng.standard_normal(int(0.006 * RATE_HZ)) * np.exp(
            -np.arange(int(0.006 * RATE_HZ)) / (rng.uniform(0.0005, 0.003) * RATE_HZ))
        clicks = np.convolve(clicks, burst)[:n]
        c_rms, x_rms = np.sqrt(np.mean(clicks ** 2)), np.sqrt(np.mean(x ** 2))
        if c_rms > 0:
            x = x + clicks * x_rms / c_rms * 10 ** (rng.uniform(-10.0, 10.0) / 20)
    # slow loudness envelope in dB: 2 + (0.3..6 per second) random points, linearly interpolated
    n_ctrl = max(2, int(n / RATE_HZ * rng.uniform(0.3, 6.0)) + 2)
    ctrl = rng.standard_normal(n_ctrl)
    env_db = np.interp(np.linspace(0, n_ctrl - 1, n), np.arange(n_ctrl), ctrl)
    env_db = (env_db - env_db.mean()) * (rng.uniform(0.0, 12.0) / max(np.ptp(env_db), 1e-6))
    return (x * 10 ** (env_db / 20)).astype(np.float32)


def _fast_fft_size(n):
    best = None
    for odd in (1, 3, 5, 7, 9, 15):
        size = odd
        while size < n:
            size *= 2
        best = size if best is None else min(best, size)
    return best


class Degrader:
    """Batched positive-view degradation. Call with raw windows [B, pre + L] (float32, the
    first `pre` samples are pre-roll) and noise segments [B, L]; returns [B, L]."""

    def __init__(self, seed, pre_samples, seg_samples, n_rirs=512, rir_samples=RIR_SAMPLES,
                 n_bandpass=256, p_room=0.75, p_bandpass=0.8, p_tilt=0.8, p_clip=0.5,
                 p_noise=0.9, snr_db_range=SNR_DB_RANGE, level_dbfs_range=LEVEL_DBFS_RANGE,
                 rt60_range=(RT60_MIN_S, RT60_MAX_S), drr_db_range=DRR_DB_RANGE, rt60_log=False,
                 p_device=0.0, n_devices=256):
        assert pre_samples >= rir_samples - 1, "pre-roll must cover the RIR (no wrap-around)"
        rng = np.random.default_rng(seed)
        self.pre, self.seg = pre_samples, seg_samples
        # FFT length: a 2^k * small size >= pre + seg (27762 = 2*3*7*661 is slow to FFT).
        self.n_fft = _fast_fft_size(pre_samples + seg_samples)
        rirs = synthetic_rir_bank(n_rirs, rir_samples, rng, rt60_range, drr_db_range, rt60_log)
        self.rir_f = torch.from_numpy(np.fft.rfft(rirs, n=self.n_fft).astype(np.complex64))
        self.bandpass_f = torch.from_numpy(bandpass_bank(n_bandpass, self.n_fft, rng))
        # Drawn after the other banks, so that p_device=0 leaves every other draw as it was.
        self.device_f = (torch.from_numpy(device_response_bank(n_devices, self.n_fft, rng))
                         if p_device > 0 else None)
        freqs = np.arange(self.n_fft // 2 + 1) * RATE_HZ / self.n_fft
        # Tilt shape in [-0.5, 0.5]: linear in log-frequency between 150 Hz and 7 kHz.
        pos = (np.log(np.clip(freqs, 150.0, 7000.0)) - math.log(150.0)) / math.log(7000 / 150)
        self.tilt_shape = torch.from_numpy((pos - 0.5).astype(np.float32))
        self.p = dict(room=p_room, bandpass=p_bandpass, tilt=p_tilt, clip=p_clip, noise=p_noise,
                      device=p_device)
        self.snr_db_range = snr_db_range
        self.level_dbfs_range = level_dbfs_range

    def __call__(self, raw, noise, generator):
        b = raw.shape[0]
        g = generator

        def draw(p):
            return torch.rand(b, generator=g) < p

        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(b, generator=g)

        # Normalise the source to unit RMS over the segment (songs differ in level).
        seg = raw[:, self.pre:]
        raw = raw / seg.square().mean(1, keepdim=True).sqrt().clamp_min(1e-4)

        # Linear part in one FFT: RIR x device x band-pass x tilt. The draws are made in the
        # chain's order; the products are taken only on the rows that use each stage, and the
        # real gains (tilt, device) folded into one, since these [B, n_fft/2] products are most
        # of a step's augmentation time.
        spec = torch.fft.rfft(raw, n=self.n_fft)  # zero-padded; pre-roll >= RIR: no wrap
        use_room = draw(self.p["room"])
        rir_i = torch.randint(len(self.rir_f), (b,), generator=g)
        if self.device_f is not None:
            use_dev = draw(self.p["device"])
            dev_i = torch.randint(len(self.device_f), (b,), generator=g)
        use_bp = draw(self.p["bandpass"])
        bp_i = torch.randint(len(self.bandpass_f), (b,), generator=g)
        tilt_db = uniform(-TILT_DB, TILT_DB) * draw(self.p["tilt"])
        gain = torch.exp(tilt_db[:, None] * (math.log(10.0) / 20.0) * self.tilt_shape[None])
        if self.device_f is not None:
            rows = use_dev.nonzero()[:, 0]
            gain[rows] *= self.device_f[dev_i[rows]]
        rows = use_room.nonzero()[:, 0]
        spec[rows] *= self.rir_f[rir_i[rows]]
        rows = use_bp.nonzero()[:, 0]
        spec[rows] *= self.bandpass_f[bp_i[rows]]
        spec *= gain
        x = torch.fft.irfft(spec, n=self.n_fft)[:, self.pre:self.pre + self.seg]

        # Soft clip: peak 1, then tanh(drive * x), drive 0-12 dB.
        use_clip = draw(self.p["clip"])
        drive = torch.pow(10.0, uniform(*CLIP_DRIVE_DB_RANGE) / 20.0)
        peak = x.abs().amax(1, keepdim=True).clamp_min(1e-6)
        clipped = torch.tanh(drive[:, None] * x / peak)
        x = torch.where(use_clip[:, None], clipped, x)

        # Additive noise at a drawn SNR (RMS over the segment).
        use_noise = draw(self.p["noise"])
        snr_db = uniform(*self.snr_db_range)
        x_rms = x.square().mean(1).sqrt().clamp_min(1e-8)
        n_rms = noise.square().mean(1).sqrt().clamp_min(1e-8)
        noise_gain = x_rms / n_rms * torch.pow(10.0, -snr_db / 20.0) * use_noise
        x = x + noise_gain[:, None] * noise

        # Level, peak-limited to 0.99, then 16-bit quantisation.
        level = torch.pow(10.0, uniform(*self.level_dbfs_range) / 20.0)
        gain = level / x.square().mean(1).sqrt().clamp_min(1e-8)
        gain = torch.minimum(gain, 0.99 / x.abs().amax(1).clamp_min(1e-8))
        x = x * gain[:, None]
        return torch.round(x * 32768.0) / 32768.0


# The mask geometry of train.py --spec-mask: n_freq mel bands of 0..freq_max bins and n_time runs
# of 0..time_max frames. Checkpoints record it (config "spec_mask_shape").
SPEC_MASK_SHAPE = {"n_freq": 2, "freq_max": 10, "n_time": 1, "time_max": 8}


def describe_spec_mask(shape):
    def count(n, noun):
        return f"{n} {noun}" + ("s" if n != 1 else "")
    return (f"{count(shape['n_freq'], 'mel band')} of up to {shape['freq_max']} bins, "
            f"{count(shape['n_time'], 'run')} of up to {shape['time_max']} frames")


def spec_mask(x, generator, p, shape=SPEC_MASK_SHAPE):
    """SpecAugment-style masking (Park et al. 2019; also offered by the training code published
    with Chang et al. 2021): each item of log-mel patches x [b, frames, mels] is masked with
    probability p, by the mel bands and frame runs of `shape` (SPEC_MASK_SHAPE's keys), all
    set to the item's mean (zero after the network's patch-mean normalisation). Noise that
    drowns a few bands or a burst of frames then costs the embedding less. Returns a new
    tensor."""
    b, n_frames, n_mels = x.shape
    mean = x.mean(dim=(1, 2), keepdim=True)
    chosen = torch.rand(b, generator=generator) < p
    masked = torch.zeros_like(x, dtype=torch.bool)
    for size, count, limit, axis in ((n_mels, shape["n_freq"], shape["freq_max"], 2),
                                     (n_frames, shape["n_time"], shape["time_max"], 1)):
        pos = torch.arange(size)
        for _ in range(count):
            width = torch.randint(0, limit + 1, (b,), generator=generator)
            start = (torch.rand(b, generator=generator) * (size - width + 1)).long()
            run = (pos[None, :] >= start[:, None]) & (pos[None, :] < (start + width)[:, None])
            masked |= run[:, None, :] if axis == 2 else run[:, :, None]
    masked &= chosen[:, None, None]
    return torch.where(masked, mean.expand_as(x), x)
