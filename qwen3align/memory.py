"""Memory plans and reports: plan() answers "does it fit?" before any weight is read.

    import qwen3align as qa
    p = qa.plan(aligner="Qwen3-ForcedAligner-0.6B", asr="Qwen3-ASR-1.7B", device="cuda")
    print(p)                      # region table
    p["arena_bytes"]; p.fits(8 * 2**30)

A model may be a checkpoint folder, a folder holding only config.json, or a preset name
("Qwen3-ForcedAligner-0.6B", "Qwen3-ASR-1.7B", "Qwen3-ASR-0.6B"). The numbers are exactly what
load_models() with the same arguments allocates (one arena; regions weights/<model>, kv/asr,
mel/tables, workspace, and with workers=N > 1 one more kv/asr/<i> and workspace/<i> per extra
worker). On CUDA the aligner's embedding table (only gathered, a few thousand rows per request)
lives in pinned host memory instead of the arena: `host_regions` ({"host/aligner": bytes}) and
`host_bytes` list it, outside `arena_bytes`.
"""
import os
import re
from collections.abc import Mapping

__all__ = ["plan", "MemoryPlan", "MemoryReport", "parse_bytes", "format_bytes"]

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_bytes(value):
    """Bytes from an int, a float, or a string such as "8GiB", "512 MB", "1.5e9" (InputError otherwise)."""
    from .errors import InputError

    if isinstance(value, bool):
        raise InputError(f"expected a byte count, got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise InputError(f"a byte count must be positive, got {value!r}")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise InputError(f"cannot read {value!r} as a byte count (examples: 8GiB, 512MB, 1000000)")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise InputError(f"a byte count must be positive, got {value!r}")
    return n


def format_bytes(n):
    """'1.23 GiB' style (binary units)."""
    if n is None:
        return "-"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _seconds_pair(max_audio_seconds):
    from .errors import InputError

    def num(x, what):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0:
            raise InputError(f"max_audio_seconds{what} must be a positive number, got {x!r}")
        return float(x)

    if isinstance(max_audio_seconds, Mapping):
        extra = set(max_audio_seconds) - {"aligner", "asr"}
        if extra:
            raise InputError(f"max_audio_seconds keys must be 'aligner' and/or 'asr', got {sorted(extra)}")
        return (num(max_audio_seconds.get("aligner", 300.0), "['aligner']"),
                num(max_audio_seconds.get("asr", 300.0), "['asr']"))
    s = num(max_audio_seconds, "")
    return s, s


def _model_arg(x, what):
    from .errors import InputError

    if x is None:
        return None
    if isinstance(x, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(x))
        if not path.isascii():
            try:
                path.encode("utf-8")  # the C loader takes UTF-8 paths; lone surrogates cannot be
            except UnicodeEncodeError as err:
                raise InputError(f"{what} path {path!r} is not valid Unicode ({err.reason} at index "
                                 f"{err.start}); rename the folder") from None
        return path
    raise InputError(f"{what} must be a folder path or a preset name, got {type(x).__name__}")


def _resolve_dtype(dtype, device):
    from .errors import InputError

    aliases = {"float32": "float32", "fp32": "float32", "f32": "float32",
               "bfloat16": "bfloat16", "bf16": "bfloat16"}
    if dtype in (None, "auto"):
        return "float32" if device == "cpu" else "bfloat16"
    name = getattr(dtype, "name", dtype)
    if not isinstance(name, str) or name.lower() not in aliases:
        raise InputError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {dtype!r}")
    return aliases[name.lower()]


def _resolve_workers(workers, device):
    """workers= of load_models()/plan(): a positive int, or "auto" = one per physical core on the CPU
    (half the CPUs this process may use: SMT siblings share a core's FMA units, so a second GEMM on
    the same core adds little while each worker costs a workspace), at most 16; 1 on CUDA."""
    from .errors import InputError

    if workers == "auto":
        if device != "cpu":
            return 1
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(16, cpus // 2))
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 16:
        raise InputError(f"workers must be an integer in [1, 16] or 'auto', got {workers!r}")
    if workers > 1 and device != "cpu":
        raise InputError(f"workers={workers}: several workers are for the CPU; a CUDA device runs one request "
                         "at a time (use workers=1)")
    return workers


def _limits_kwargs(aligner, asr, max_audio_seconds, max_new_tokens, max_text_tokens, max_device_bytes, dtype,
                   workers=1):
    """Normalised keyword arguments shared by plan() and load_models() for the C layer."""
    from .errors import InputError

    sa, sr = _seconds_pair(max_audio_seconds)
    for name, v, lo in (("max_new_tokens", max_new_tokens, 1), ("max_text_tokens", max_text_tokens, 1)):
        if v is None and name == "max_text_tokens":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
        if v > 2**31 - 1:  # the C layer takes an int; its own (lower) caps name the real limit
            raise InputError(f"{name} {v} is absurd (at most {2**31 - 1})")
    return dict(aligner=_model_arg(aligner, "aligner"), asr=_model_arg(asr, "asr"),
                max_audio_seconds_aligner=sa, max_audio_seconds_asr=sr, max_new_tokens=max_new_tokens,
                max_text_tokens=max_text_tokens or 0,
                max_device_bytes=0 if max_device_bytes is None else parse_bytes(max_device_bytes), dtype=dtype,
                workers=workers)


def plan(aligner=None, asr=None, *, device="auto", max_audio_seconds=300.0, max_new_tokens=1024,
         max_text_tokens=None, dtype="auto", max_device_bytes=None, workers=1):
    """The memory plan of load_models() with the same arguments, computed from configs alone.

    aligner / asr: a checkpoint folder, a folder with only config.json, or a preset name.
    device: "auto" | "cpu" | "cuda" | "cuda:N" — decides dtype="auto" (float32 on the CPU,
    bfloat16 on CUDA); planning for a GPU works on a machine without one.
    workers: CPU requests that may run at once (load_models); each adds a workspace (and, with the
    ASR model, a KV cache) region: workspace/1, kv/asr/1, ...
    """
    from . import _qwen3align
    from .errors import InputError
    from .models import _resolve_device

    if aligner is None and asr is None:
        raise InputError("give at least one of aligner= and asr=")
    dev = _resolve_device(device, require=False)
    kw = _limits_kwargs(aligner, asr, max_audio_seconds, max_new_tokens, max_text_tokens, max_device_bytes,
                        _resolve_dtype(dtype, "cpu" if dev == "cpu" else "cuda"), _resolve_workers(workers, dev))
    d = _qwen3align._plan(**kw, device=dev)
    d["device"] = dev
    return MemoryPlan(d)


def _visible_devices():
    """[(name, free_bytes, total_bytes)] for the CPU and each CUDA device the build can see."""
    from . import _qwen3align

    out = []
    info = _qwen3align._device_info("cpu")
    out.append((info["name"], info["free_bytes"], info["total_bytes"]))
    from .models import _cuda_device_count

    for i in range(_cuda_device_count()):
        info = _qwen3align._device_info(f"cuda:{i}")
        out.append((info["name"], info["free_bytes"], info["total_bytes"]))
    return out


class _Table(Mapping):
    """Read-only mapping over the C layer's dict, printable as a table."""

    def __init__(self, data):
        self._d = dict(data)

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)

    def _limits_line(self):
        lim = self._d["limits"]
        secs = " / ".join(f"{k} {v:g} s" for k, v in lim["max_audio_seconds"].items())
        cap = lim.get("max_device_bytes")
        return (f"limits: max_audio_seconds {secs}, max_new_tokens {lim['max_new_tokens']}, "
                f"max_text_tokens {lim['max_text_tokens']}, dtype {lim['dtype']}"
                + (f", max_device_bytes {format_bytes(cap)}" if cap else "")
                + (f", workers {lim['workers']}" if lim.get("workers", 1) > 1 else ""))

    def _html(self, title, header, rows):
        cells = "".join(f"<th>{h}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return (f"<div><b>{title}</b><table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"
                f"<small>{self._limits_line()}</small></div>")


    def _host_lines(self):
        """Printable lines of the pinned host weights (not part of the arena), if any."""
        return [f"  {n:<20}{b:>16,}{'':>4}{format_bytes(b):>12}  (pinned host memory, not in the arena)"
                for n, b in self._d.get("host_regions", {}).items()]


class MemoryPlan(_Table):
    """Keys: arena_bytes, regions (name -> bytes), host_bytes, host_regions (pinned host memory outside the
    arena, name -> bytes), limits, models (per-model details), device."""

    def fits(self, budget_bytes=None):
        """[(device_name, free_bytes, fits)] for a budget (bytes or "8GiB"), else each visible device."""
        need = self._d["arena_bytes"]
        if budget_bytes is not None:
            b = parse_bytes(budget_bytes)
            return [("budget", b, need <= b)]
        return [(name, free, need <= free) for name, free, _ in _visible_devices()]

    def _rows(self):
        rows = [(name, b, format_bytes(b)) for name, b in self._d["regions"].items()]
        rows.append(("total (one arena)", self._d["arena_bytes"], format_bytes(self._d["arena_bytes"])))
        return rows

    def __str__(self):
        lines = [f"qwen3align memory plan (device {self._d.get('device', '?')})",
                 f"  {'region':<20}{'bytes':>16}{'':>4}{'size':>12}"]
        lines += [f"  {n:<20}{b:>16,}{'':>4}{h:>12}" for n, b, h in self._rows()]
        lines += self._host_lines()
        for kind, m in self._d.get("models", {}).items():
            lines.append(f"  {kind}: {m.get('name', '')} {m['audio_tokens']} audio tokens, "
                         f"{m['seq_tokens']} positions per request")
        lines.append(self._limits_line())
        return "\n".join(lines)

    def __repr__(self):
        return f"<MemoryPlan {format_bytes(self._d['arena_bytes'])} on {self._d.get('device', '?')}>"

    def _repr_html_(self):
        host = [(f"{n} (pinned host, not in the arena)", f"{b:,}", format_bytes(b))
                for n, b in self._d.get("host_regions", {}).items()]
        return self._html("qwen3align memory plan", ("region", "bytes", "size"),
                          [(n, f"{b:,}", h) for n, b, h in self._rows()] + host)


class MemoryReport(_Table):
    """Keys: arena_bytes, used_bytes, peak_bytes, regions (name -> bytes), regions_used, regions_peak,
    host_bytes, host_regions (pinned host weights outside the arena), device, device_total_bytes,
    device_free_bytes, allocations_after_load, limits, cuda."""

    def _rows(self):
        used, peak = self._d["regions_used"], self._d["regions_peak"]
        rows = [(n, format_bytes(b), format_bytes(used[n]), format_bytes(peak[n])) for n, b in self._d["regions"].items()]
        rows.append(("total (one arena)", format_bytes(self._d["arena_bytes"]), format_bytes(self._d["used_bytes"]),
                     format_bytes(self._d["peak_bytes"])))
        return rows

    def __str__(self):
        d = self._d
        lines = [f"qwen3align memory report (device {d['device']})",
                 f"  {'region':<20}{'planned':>14}{'used':>14}{'peak':>14}"]
        lines += [f"  {a:<20}{b:>14}{c:>14}{e:>14}" for a, b, c, e in self._rows()]
        lines += [f"  {n:<20}{format_bytes(b):>14}{format_bytes(b):>14}{'':>14}  (pinned host memory, not in the arena)"
                  for n, b in d.get("host_regions", {}).items()]
        lines.append(f"  device free {format_bytes(d['device_free_bytes'])} of {format_bytes(d['device_total_bytes'])}; "
                     f"host allocations since load: {d['allocations_after_load']}")
        lines.append(self._limits_line())
        return "\n".join(lines)

    def __repr__(self):
        return f"<MemoryReport arena {format_bytes(self._d['arena_bytes'])} on {self._d['device']}>"

    def _repr_html_(self):
        d = self._d
        device = (f"<small>device {d['device']}: free {format_bytes(d['device_free_bytes'])} of "
                  f"{format_bytes(d['device_total_bytes'])}; host allocations since load: "
                  f"{d['allocations_after_load']}</small><br>")
        table = self._html("qwen3align memory report", ("region", "planned", "used", "peak"), self._rows())
        return table.replace("<small>", device + "<small>", 1)
