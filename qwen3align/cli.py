"""The command line: `qwen3align align|transcribe|plan|demo` (also `python -m qwen3align`).

    qwen3align align talk.wav --text "Hello world" --aligner Qwen3-ForcedAligner-0.6B/ -o talk.srt
    qwen3align align talk.wav --aligner FA/ --asr ASR/ --format vtt     # transcribe first, then align
    qwen3align transcribe talk.wav --asr Qwen3-ASR-1.7B/ --language English
    qwen3align plan --asr Qwen3-ASR-1.7B --max-audio-seconds 600 --budget 8GiB

Exit codes: 0 ok; 2 usage; 3 bad input, audio or device (InputError, AudioError: e.g. --device cuda
with no GPU visible); 4 out of memory (also `plan --budget` when the plan does not fit); 5 model
loading or any other qwen3align error.
Errors are one readable line on stderr; progress goes to stderr (silenced by -q), results to
stdout or -o FILE.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_USAGE, EXIT_INPUT, EXIT_OOM, EXIT_ERROR = 0, 2, 3, 4, 5
FORMATS = ("json", "srt", "vtt", "textgrid", "txt")
_EXT_FORMAT = {".json": "json", ".srt": "srt", ".vtt": "vtt", ".textgrid": "textgrid", ".txt": "txt", ".tsv": "txt"}
RELEASED = ("Qwen3-ForcedAligner-0.6B", "Qwen3-ASR-1.7B")


class UsageError(Exception):
    """A command line that parses but cannot work (exit 2)."""


def budget_bytes(s: str) -> int:
    """--budget: '8GiB', '8 GB', '1.5e9' (qwen3align.memory.parse_bytes) as an argparse type."""
    from .memory import parse_bytes

    try:
        return parse_bytes(s)
    except ValueError as e:  # InputError is a ValueError
        raise argparse.ArgumentTypeError(str(e)) from None


def _common(p, device=True):
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    if device:
        p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")


def _limits(p):
    p.add_argument("--max-audio-seconds", type=float, help="plan memory for audio up to this long")
    p.add_argument("--max-new-tokens", type=int, help="ASR: the longest transcript in tokens")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = argparse.ArgumentParser(prog="qwen3align", description="Word timestamps (Qwen3-ForcedAligner) and "
                                 "transcripts (Qwen3-ASR) in C/CUDA, with every byte planned.")
    ap.add_argument("--version", action="version", version=f"qwen3align {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="{align,transcribe,plan,demo}")
    sub.required = True

    al = sub.add_parser("align", help="word timestamps for an audio file (transcribes first without text)")
    al.add_argument("audio", help="WAV/FLAC/OGG/MP3 file")
    src = al.add_mutually_exclusive_group()
    src.add_argument("--text", help="the transcript")
    src.add_argument("--text-file", help="a UTF-8 file with the transcript")
    src.add_argument("--words-file", help="pre-split words: one per line, or a JSON list")
    al.add_argument("--language", help="e.g. English, Chinese (word splitting; forced ASR language)")
    al.add_argument("--aligner", required=True, help="Qwen3-ForcedAligner checkpoint folder")
    al.add_argument("--asr", help="Qwen3-ASR checkpoint folder (needed when no text is given)")
    al.add_argument("--context", default="", help="ASR context / hot words (when transcribing)")
    al.add_argument("--format", choices=FORMATS, help="output format (default: from -o's extension, else json)")
    al.add_argument("-o", "--output", help="write here instead of stdout")
    _limits(al)
    _common(al)

    tr = sub.add_parser("transcribe", help="speech to text with Qwen3-ASR")
    tr.add_argument("audio")
    tr.add_argument("--asr", required=True, help="Qwen3-ASR checkpoint folder")
    tr.add_argument("--language", help="force the language (default: detect)")
    tr.add_argument("--context", default="", help="context / hot words given to the model")
    tr.add_argument("--format", choices=("txt", "json"), default="txt")
    tr.add_argument("-o", "--output")
    _limits(tr)
    _common(tr)

    pl = sub.add_parser("plan", help="memory needed by a model set, before loading anything")
    pl.add_argument("--aligner", help="checkpoint folder or released name (default with --asr unset: "
                    f"{RELEASED[0]})")
    pl.add_argument("--asr", help=f"checkpoint folder or released name (default with --aligner unset: {RELEASED[1]})")
    pl.add_argument("--dtype", help="compute dtype, e.g. bf16 or f32 (default: the device's)")
    pl.add_argument("--budget", type=budget_bytes, help="check against this many bytes (e.g. 8GiB); "
                    "exit 4 when it does not fit")
    _limits(pl)
    _common(pl)

    dm = sub.add_parser("demo", help="a self-contained demo (random tiny models unless "
                        "QWEN3ALIGN_ALIGNER / QWEN3ALIGN_ASR point to real ones)")
    _common(dm)
    return ap


def check_device(device: str):
    """Fail early, in words, when the device cannot work here (no GPU visible, no CUDA build):
    before any model is read. The rule itself is the library's (qwen3align.models)."""
    from .models import _resolve_device

    _resolve_device(device)


def _read_words(path):
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    if raw.lstrip().startswith("["):
        words = json.loads(raw)
        if not all(isinstance(w, str) for w in words):
            raise UsageError(f"--words-file {path}: a JSON list must hold strings")
    else:
        words = [w.strip() for w in raw.splitlines() if w.strip()]
    if not words:
        raise UsageError(f"--words-file {path}: no words in it")
    return words


def _load_kwargs(a, **models):
    kw = {k: v for k, v in models.items() if v is not None}
    kw["device"] = a.device
    if a.max_audio_seconds is not None:
        kw["max_audio_seconds"] = a.max_audio_seconds
    if a.max_new_tokens is not None:
        kw["max_new_tokens"] = a.max_new_tokens
    return kw


def format_alignment(res, fmt: str) -> str:
    if fmt == "json":
        return res.to_json(indent=2) + "\n"
    if fmt == "srt":
        return res.to_srt()
    if fmt == "vtt":
        return res.to_vtt()
    if fmt == "textgrid":
        return res.to_textgrid()
    return "".join(f"{it.start:.3f}\t{it.end:.3f}\t{it.text}\n" for it in res)


def _emit(text: str, output):
    if output:
        with open(output, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def cmd_align(a) -> int:
    import qwen3align as qa

    from .progress import ChunkProgress, progress

    text = words = None
    if a.text is not None:
        text = a.text
    elif a.text_file:
        with open(a.text_file, encoding="utf-8") as f:
            text = f.read()
    elif a.words_file:
        words = _read_words(a.words_file)
    if text is None and words is None and not a.asr:
        raise UsageError("align needs the transcript (--text, --text-file or --words-file) "
                         "or --asr to transcribe first")
    fmt = a.format or _EXT_FORMAT.get(os.path.splitext(a.output or "")[1].lower(), "json")
    check_device(a.device)
    name = os.path.basename(a.audio)
    with progress("loading models", quiet=a.quiet):
        models = qa.load_models(**_load_kwargs(a, aligner=a.aligner, asr=a.asr))
    with models:
        kw = {"language": a.language}
        if text is not None:
            kw["text"] = text
        elif words is not None:
            kw["words"] = words
        elif a.context:
            kw["context"] = a.context
        with progress(f"aligning {name}" if (text or words) else f"transcribing and aligning {name}", quiet=a.quiet):
            res = models.align(a.audio, progress=ChunkProgress(quiet=a.quiet), **kw)
    for w in getattr(res, "warnings", ()):
        print(f"qwen3align: warning: {w}", file=sys.stderr)
    _emit(format_alignment(res, fmt), a.output)
    return EXIT_OK


def cmd_transcribe(a) -> int:
    import qwen3align as qa

    from .progress import ChunkProgress, progress

    check_device(a.device)
    with progress("loading the ASR model", quiet=a.quiet):
        models = qa.load_models(**_load_kwargs(a, asr=a.asr))
    with models:
        with progress(f"transcribing {os.path.basename(a.audio)}", quiet=a.quiet):
            res = models.transcribe(a.audio, language=a.language, context=a.context,
                                    progress=ChunkProgress(quiet=a.quiet))
    out = res.to_json(indent=2) + "\n" if a.format == "json" else str(res) + "\n"
    _emit(out, a.output)
    return EXIT_OK


def cmd_plan(a) -> int:
    import qwen3align as qa

    aligner, asr = a.aligner, a.asr
    if aligner is None and asr is None:
        aligner, asr = RELEASED
    kw = _load_kwargs(a, aligner=aligner, asr=asr)
    if a.dtype:
        kw["dtype"] = a.dtype
    plan = qa.plan(**kw)
    print(plan)
    if a.budget is not None:
        ok = _all_fit(plan.fits(a.budget))
        print(f"{'fits' if ok else 'does NOT fit'} in a budget of {a.budget:,} bytes ({a.budget / 2**30:.2f} GiB)")
        return EXIT_OK if ok else EXIT_OOM
    return EXIT_OK


def _all_fit(verdict) -> bool:
    # MemoryPlan.fits gives [(device, free_bytes, fits)]; a plain bool is accepted too
    return verdict if isinstance(verdict, bool) else all(row[-1] for row in verdict)


def cmd_demo(a) -> int:
    from .demo import run_demo

    return run_demo(device=a.device, quiet=a.quiet)


def _exit_code(e: BaseException) -> int:
    from . import errors

    if isinstance(e, errors.OutOfMemoryError):
        return EXIT_OOM
    if isinstance(e, (errors.InputError, errors.AudioError)):
        return EXIT_INPUT
    return EXIT_ERROR


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return f"qwen3align: error: {msg}"


def main(argv=None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)  # exits 2 on usage errors, 0 on --help/--version
    run = {"align": cmd_align, "transcribe": cmd_transcribe, "plan": cmd_plan, "demo": cmd_demo}[a.command]
    try:
        return run(a)
    except UsageError as e:
        ap.print_usage(sys.stderr)
        print(_one_line(e), file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a missing --text-file, an unwritable -o: input problems, told plainly
        print(_one_line(f"{e.strerror or e}: {e.filename}" if e.filename else e), file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("qwen3align: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        try:
            from .errors import Qwen3AlignError
        except ImportError:  # the extension itself is missing: report that, not a traceback
            print(_one_line(e), file=sys.stderr)
            return EXIT_ERROR
        if isinstance(e, Qwen3AlignError):
            print(_one_line(e), file=sys.stderr)
            return _exit_code(e)
        if os.environ.get("QWEN3ALIGN_TRACEBACK"):
            raise
        print(_one_line(f"internal error: {type(e).__name__}: {e} "
                        "(set QWEN3ALIGN_TRACEBACK=1 to see where)"), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
