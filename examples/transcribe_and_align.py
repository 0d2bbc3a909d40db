#!/usr/bin/env python3
"""Transcribe with Qwen3-ASR, then give every word a time with Qwen3-ForcedAligner.

    python examples/transcribe_and_align.py talk.wav --aligner FA/ --asr Qwen3-ASR-1.7B/

Both models live in one planned memory arena: `qwen3align plan --asr ... --max-audio-seconds ...`
tells beforehand whether they fit. Without --aligner/--asr it uses $QWEN3ALIGN_ALIGNER /
$QWEN3ALIGN_ASR, or the demo's tiny random-weight models (outputs are then meaningless).
"""
import argparse
import os

import qwen3align as qa


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("audio")
    ap.add_argument("--aligner", default=os.environ.get("QWEN3ALIGN_ALIGNER"))
    ap.add_argument("--asr", default=os.environ.get("QWEN3ALIGN_ASR"))
    ap.add_argument("--language", default=None, help="force the language (default: detect)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-audio-seconds", type=float, default=300)
    ap.add_argument("--max-new-tokens", type=int, default=1024, help="the longest transcript, in tokens")
    a = ap.parse_args()
    if a.aligner is None or a.asr is None:
        from qwen3align.demo import demo_models

        fa, asr, _ = demo_models()
        a.aligner, a.asr = a.aligner or fa, a.asr or asr
        print("using tiny RANDOM-weight models where none was given: outputs are meaningless")
    limits = dict(max_audio_seconds=a.max_audio_seconds, max_new_tokens=a.max_new_tokens)
    print(qa.plan(aligner=a.aligner, asr=a.asr, **limits))
    with qa.load_models(aligner=a.aligner, asr=a.asr, device=a.device, **limits) as m:
        transcript = m.transcribe(a.audio, language=a.language)
        print(f"[{transcript.language}] {transcript}")
        result = m.align(a.audio, text=str(transcript), language=a.language or transcript.language)
    print(result.to_srt())


if __name__ == "__main__":
    main()
