"""Align a corpus on a Dask cluster: one Models per worker process, loaded once.

    from distributed import Client, LocalCluster
    from qwen3align.dask import align_files
    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
        df = align_files(client, ["a.wav", "b.wav"], ["text of a", "text of b"],
                         aligner="Qwen3-ForcedAligner-0.6B/", language="English")

Needs the optional dependency `dask[distributed]` (pip install 'qwen3align[dask]').

A Models object owns device memory and cannot be pickled, so it never travels: a WorkerPlugin
(`ModelsPlugin`) calls load_models() in each worker process when it is registered (and on workers
that join later) and closes the models at teardown. Tasks carry only a file path or an array and
its text, and find the worker's models by the plugin's key. On a machine with GPUs each worker
process is pinned to one GPU through CUDA_VISIBLE_DEVICES (worker i gets GPU i mod #GPUs) unless
the worker already sees exactly one GPU (dask-cuda's LocalCUDACluster pins them that way); give the
cluster at most as many workers as GPUs and one thread per worker.

A failing file does not lose the batch: its task returns an error row (file, error type, message).
"""
from __future__ import annotations

import hashlib
import os
import zlib

__all__ = ["ModelsPlugin", "align_files", "ROW_COLUMNS", "FILE_COLUMNS"]

ROW_COLUMNS = ["file", "item", "word", "text", "start", "end", "confidence", "error_type", "error"]
FILE_COLUMNS = ["file", "item", "language", "duration", "n_words", "text", "items", "chunks", "error_type",
                "error"]

try:
    from distributed import Client, get_worker
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as _e:  # optional extra
    raise ImportError("qwen3align.dask needs dask.distributed: pip install 'dask[distributed]' "
                      "(or pip install 'qwen3align[dask]')") from _e


def _gpu_count():
    """GPUs of this host without initialising CUDA (the driver's /proc entries)."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def _worker_slot(worker):
    """A small integer per worker: LocalCluster names workers 0, 1, ...; otherwise a hash."""
    name = getattr(worker, "name", None)
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        return int(name)
    return zlib.crc32(str(getattr(worker, "address", name)).encode())


def pin_gpu(slot, environ=os.environ, n_gpus=None):
    """Set CUDA_VISIBLE_DEVICES to one GPU for worker `slot` (before anything initialises CUDA).
    Leaves it alone when it already names one device or there is no GPU. Returns the value set or None."""
    vis = environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in vis.split(",") if v.strip()] if vis is not None else None
    if ids is not None and len(ids) <= 1:
        return None
    if ids is None:
        n = _gpu_count() if n_gpus is None else n_gpus
        ids = [str(i) for i in range(n)]
    if not ids:
        return None
    environ["CUDA_VISIBLE_DEVICES"] = ids[slot % len(ids)]
    return environ["CUDA_VISIBLE_DEVICES"]


class ModelsPlugin(WorkerPlugin):
    """Loads one qwen3align Models per worker process (load_models(**config)) and closes it at teardown."""

    idempotent = True  # registering the same configuration again keeps the loaded models

    def __init__(self, **config):
        self.config = dict(config)
        digest = hashlib.sha1(repr(sorted(self.config.items())).encode()).hexdigest()[:12]
        self.key = f"qwen3align-{digest}"
        self.name = self.key

    def setup(self, worker):
        from .models import load_models

        if self.config.get("device", "auto") != "cpu":
            pin_gpu(_worker_slot(worker))
        store = worker.__dict__.setdefault("_qwen3align_models", {})
        if self.key not in store:
            store[self.key] = load_models(**self.config)

    def teardown(self, worker):
        models = worker.__dict__.get("_qwen3align_models", {}).pop(self.key, None)
        if models is not None:
            models.close()


def _label(item, i):
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return f"<item {i}>"


def _error_rows(label, i, exc, rows):
    base = {c: None for c in (ROW_COLUMNS if rows == "words" else FILE_COLUMNS)}
    base.update(file=label, item=i, error_type=type(exc).__name__, error=str(exc))
    return [base]


def _result_rows(label, i, res, rows):
    if rows == "files":
        return [{"file": label, "item": i, "language": res.language, "duration": res.duration,
                 "n_words": len(res), "text": res.text, "items": [it.to_dict() for it in res],
                 "chunks": res.chunks, "error_type": None, "error": None}]
    return [{"file": label, "item": i, "word": k, "text": it.text, "start": it.start, "end": it.end,
             "confidence": it.confidence, "error_type": None, "error": None} for k, it in enumerate(res)]


def _align_task(key, i, item, text, language, sample_rate, rows):
    """Runs on a worker: align one file with the worker's models; errors become an error row."""
    label = _label(item, i)
    try:
        models = get_worker().__dict__.get("_qwen3align_models", {}).get(key)
        if models is None:
            raise RuntimeError(f"no qwen3align models on this worker for {key} (plugin not registered)")
        from .longaudio import align

        words = text if isinstance(text, (list, tuple)) else None
        res = align(models, item, None if words is not None else text, language, words=words,
                    sample_rate=sample_rate)
        return _result_rows(label, i, res, rows)
    except Exception as exc:  # one bad file must not lose the batch
        return _error_rows(label, i, exc, rows)


def _client(client_or_address):
    if isinstance(client_or_address, Client):
        return client_or_address, False
    return Client(client_or_address), True


def align_files(client_or_address, files, texts=None, *, aligner=None, asr=None, language=None, device="auto",
                sample_rate=None, rows="words", as_frame=True, **load_kwargs):
    """Align many recordings on a Dask cluster; returns a pandas DataFrame (or a list of dicts when
    as_frame is False or pandas is missing).

    client_or_address: a distributed.Client, or a scheduler address / cluster for Client(...).
    files: paths, 1-D arrays (give sample_rate=) or (array, rate) tuples. texts: None (ASR then
    align; needs asr=), or one entry per file: a transcript str or a list of words.
    rows="words": one row per aligned word (ROW_COLUMNS); rows="files": one row per file
    (FILE_COLUMNS, items as a list of dicts). A file that fails gives one row with error_type and
    error set (the other fields None). load_kwargs go to load_models (max_audio_seconds, dtype, ...).
    """
    if rows not in ("words", "files"):
        raise ValueError(f"rows must be 'words' or 'files', got {rows!r}")
    files = list(files)
    if texts is None:
        texts = [None] * len(files)
    texts = list(texts)
    if len(texts) != len(files):
        raise ValueError(f"align_files: {len(texts)} texts for {len(files)} files")
    client, owned = _client(client_or_address)
    try:
        plugin = ModelsPlugin(aligner=aligner, asr=asr, device=device, **load_kwargs)
        client.register_plugin(plugin)
        futures = client.map(_align_task, [plugin.key] * len(files), range(len(files)), files, texts,
                             [language] * len(files), [sample_rate] * len(files), [rows] * len(files),
                             pure=False)
        out = [r for part in client.gather(futures) for r in part]
    finally:
        if owned:
            client.close()
    if not as_frame:
        return out
    try:
        import pandas as pd
    except ImportError:
        return out
    return pd.DataFrame(out, columns=ROW_COLUMNS if rows == "words" else FILE_COLUMNS)
