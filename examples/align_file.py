#!/usr/bin/env python3
"""Align a known transcript to one audio file and write subtitles.

    python examples/align_file.py talk.wav "The transcript of the talk." --aligner Qwen3-ForcedAligner-0.6B/ -o talk.srt

The output format follows -o's extension (.srt, .vtt, .TextGrid, .json). Without --aligner it uses
$QWEN3ALIGN_ALIGNER, or the demo's tiny random-weight model (the times are then meaningless).
"""
import argparse
import os

import qwen3align as qa


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("audio")
    ap.add_argument("text")
    ap.add_argument("--aligner", default=os.environ.get("QWEN3ALIGN_ALIGNER"))
    ap.add_argument("--language", default=None, help="e.g. English, Chinese (default: split on spaces)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("-o", "--output", default="out.srt")
    a = ap.parse_args()
    if a.aligner is None:
        from qwen3align.demo import demo_models

        a.aligner = demo_models()[0]
        print("no --aligner given: using a tiny RANDOM-weight model, the times are meaningless")
    with qa.load_models(aligner=a.aligner, device=a.device) as models:
        result = models.align(a.audio, text=a.text, language=a.language)
        print(models.memory_report())
    for item in result:
        print(f"{item.start:8.3f} {item.end:8.3f}  {item.text}")
    ext = os.path.splitext(a.output)[1].lower()
    writer = {".vtt": result.to_vtt, ".textgrid": result.to_textgrid, ".json": lambda: result.to_json(indent=2)}
    with open(a.output, "w", encoding="utf-8") as f:
        f.write(writer.get(ext, result.to_srt)())
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
