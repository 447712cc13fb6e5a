"""A voice-like WAV for browsers' fake microphones.

Chromium's own fake microphone plays a steady tone, which Opus takes for music
and codes in CELT: no in-band FEC below ~8 % loss, so every lost packet is
concealed. A citizen talks. This is a crude talker instead: a glottal pulse
train with a wandering pitch through two formant resonators per syllable, four
syllables a second, with pauses between phrases, which libopus codes as speech
(SILK or hybrid, with FEC once loss is reported).
"""

from __future__ import annotations

import math
import random
import wave
from pathlib import Path

RATE = 16000
#: (F1, F2) of the vowels it cycles through, in Hz
VOWELS = ((700, 1200), (300, 2300), (500, 900), (400, 2000), (600, 1700))


def _resonator(frequency: float, bandwidth: float = 80) -> tuple[float, float]:
    radius = math.exp(-math.pi * bandwidth / RATE)
    return 2 * radius * math.cos(2 * math.pi * frequency / RATE), -radius * radius


def _voiced(t: float) -> bool:
    """Syllables 70 % of their quarter second, in 1.5 s phrases with a pause
    after every third syllable of the second phrase."""
    syllable = int(t * 4)
    in_syllable = (t * 4) % 1 < 0.7
    first_phrase = int(t / 1.5) % 2 == 0
    return in_syllable and (first_phrase or syllable % 3 != 0)


def voice_samples(seconds: float, seed: int = 14) -> list[int]:
    noise = random.Random(seed)
    samples = []
    phase = y1 = y2 = z1 = z2 = 0.0
    for n in range(int(seconds * RATE)):
        t = n / RATE
        f1, f2 = VOWELS[int(t * 4) % len(VOWELS)]
        phase += (120 + 30 * math.sin(2 * math.pi * 0.7 * t)) / RATE
        pulse = phase >= 1
        phase -= int(phase)
        x = (3000.0 if pulse and _voiced(t) else 0.0) + noise.gauss(0, 30)
        a1, a2 = _resonator(f1)
        b1, b2 = _resonator(f2)
        y = x + a1 * y1 + a2 * y2
        y2, y1 = y1, y
        z = y + b1 * z1 + b2 * z2
        z2, z1 = z1, z
        samples.append(max(-32000, min(32000, int(z * 0.02))))
    return samples


def voice_wav(path: Path, seconds: float = 6.0) -> Path:
    """Write a 16 kHz mono 16-bit WAV of ``seconds`` of the talker (Chromium
    loops it: ``--use-file-for-fake-audio-capture``)."""
    data = b"".join(
        s.to_bytes(2, "little", signed=True) for s in voice_samples(seconds)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(data)
    return path
