#!/bin/sh
# Regenerates the tiny audio fixtures of tests/native/audio_test.cc in tests/data/audio/.
# Needs /usr/bin/python3 (numpy, soundfile) and ffmpeg (libvorbis, libopus, libmp3lame).
#
# The source is a 0.3 s "arpeggio": A4 (440 Hz), C#5 (554.37 Hz), E5 (659.26 Hz), 0.1 s each,
# with 4 decaying harmonics and a 5 ms attack, peak about -6 dBFS. The test checks which
# note dominates each 0.1 s, so lossy codecs pass as long as they keep the pitch.
set -eu
cd "$(dirname "$0")/data"
mkdir -p audio
cd audio
rm -f ./*.wav ./*.flac ./*.ogg ./*.opus ./*.mp3

/usr/bin/python3 - <<'EOF'
import numpy as np
import soundfile as sf

def arpeggio(rate, seconds_per_note=0.1):
    notes = [440.0, 554.37, 659.26]
    n = int(round(seconds_per_note * rate))
    t = np.arange(n) / rate
    env = np.minimum(1.0, t / 0.005) * np.exp(-t / 0.08)
    out = []
    for f in notes:
        x = sum(0.5 ** h * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(4))
        out.append(0.5 * env * x / 1.875)
    return np.concatenate(out)

mono16 = arpeggio(16000)
sf.write("arpeggio_16k.wav", mono16, 16000, subtype="PCM_16")
# Stereo: left = arpeggio, right = half of it; the mono mix must be 0.75 * arpeggio.
sf.write("arpeggio_stereo_16k.wav", np.stack([mono16, 0.5 * mono16], axis=1), 16000,
         subtype="PCM_16")
# 44.1 kHz FLAC for the resampling test.
sf.write("arpeggio_44k.flac", arpeggio(44100), 44100, subtype="PCM_16")
EOF

sox arpeggio_16k.wav arpeggio_16k.flac  # sox: no 8 KB padding block, unlike ffmpeg
ffmpeg -nostdin -loglevel error -i arpeggio_16k.wav -c:a libvorbis -q:a 0 arpeggio_16k.ogg
ffmpeg -nostdin -loglevel error -i arpeggio_16k.wav -c:a libopus -b:a 24k arpeggio_16k.opus
ffmpeg -nostdin -loglevel error -i arpeggio_16k.wav -c:a libmp3lame -b:a 32k arpeggio_16k.mp3

# Broken inputs: a WAV cut in the middle of its data, a text file named .wav, an empty file,
# and an MP3 whose frames after the first 400 bytes are garbage.
head -c 3000 arpeggio_16k.wav > truncated.wav
printf 'this is not audio, just text renamed to .wav\n' > text.wav
: > empty.wav
head -c 400 arpeggio_16k.mp3 > garbage.mp3
/usr/bin/python3 -c "import sys; sys.stdout.buffer.write(bytes((i * 97 + 13) % 256 for i in range(2000)))" >> garbage.mp3

ls -l
