"""Progress on stderr for work that takes a while (the CLI and the demo use it).

    with progress("aligning talk.wav"):          # silent for the first 2 s, then a live elapsed-time line
        result = models.align(...)               # (the engine releases the GIL, so a thread can draw)

    bar = ProgressBar(total=3, label="demo")      # known number of steps
    bar.update("loading"); ...; bar.close()

On a terminal the line is redrawn in place; on a pipe or file one line is printed when the work
passes the delay and one when it ends, so logs stay readable. quiet=True prints nothing.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

__all__ = ["progress", "ProgressBar", "format_seconds"]

_SPIN = "|/-\\"


def format_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {s % 60:04.1f} s"


@contextmanager
def progress(label: str, *, quiet: bool = False, delay: float = 2.0, stream=None, interval: float = 0.2):
    """Show `label` and the elapsed time on stderr while the block runs, once it has run `delay` s."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        yield
        return
    tty = bool(getattr(stream, "isatty", lambda: False)())
    done = threading.Event()
    shown = []
    t0 = time.perf_counter()

    def draw():
        if done.wait(delay):
            return
        shown.append(True)
        if not tty:
            stream.write(f"{label} …\n")
            stream.flush()
            return
        k = 0
        while not done.is_set():
            stream.write(f"\r{_SPIN[k % 4]} {label} … {format_seconds(time.perf_counter() - t0)}\x1b[K")
            stream.flush()
            k += 1
            done.wait(interval)

    th = threading.Thread(target=draw, name="qwen3align-progress", daemon=True)
    th.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        done.set()
        th.join()
        if shown:
            end = "done" if ok else "failed"
            stream.write(("\r" if tty else "") + f"{label}: {end} in {format_seconds(time.perf_counter() - t0)}"
                         + ("\x1b[K\n" if tty else "\n"))
            stream.flush()


class ProgressBar:
    """A step counter drawn as `[####----] 2/4 label: step` on stderr (one line per step off a tty)."""

    def __init__(self, total: int, label: str = "", *, quiet: bool = False, stream=None, width: int = 24):
        self.total, self.label, self.quiet, self.width = max(int(total), 1), label, quiet, width
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.n = 0
        self.t0 = time.perf_counter()

    def update(self, step: str = "", n: int = 1):
        self.n = min(self.n + n, self.total)
        if self.quiet:
            return
        fill = int(self.width * self.n / self.total)
        line = f"[{'#' * fill}{'-' * (self.width - fill)}] {self.n}/{self.total} {self.label}"
        line += f": {step}" if step else ""
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def close(self):
        if not self.quiet and self.tty:
            self.stream.write(f"  ({format_seconds(time.perf_counter() - self.t0)})\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class ChunkProgress:
    """A `progress(stage, done, total)` callback for Models.align/transcribe/align_batch that draws
    one ProgressBar per stage with more than one step (chunks of long audio, items of a batch)."""

    def __init__(self, *, quiet: bool = False, stream=None):
        self.quiet, self.stream = quiet, stream
        self.stage, self.bar, self.done = None, None, 0

    def __call__(self, stage: str, done: int, total: int):
        if total <= 1:
            return
        if stage != self.stage or self.bar is None:
            self.close()
            self.stage, self.done = stage, 0
            self.bar = ProgressBar(total, stage, quiet=self.quiet, stream=self.stream)
        if done > self.done:
            self.bar.update(f"{done} of {total}", n=done - self.done)
            self.done = done
        if done >= total:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
