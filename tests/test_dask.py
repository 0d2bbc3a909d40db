"""qwen3align.dask: a LocalCluster of 2 worker processes aligning 20 files with the fixture aligner."""
import os

import numpy as np
import pytest

pytest.importorskip("distributed", reason="dask[distributed] is an optional extra (pip install 'dask[distributed]')")

import qwen3align as qa  # noqa: E402
from conftest import FIXTURES, case_dir, load_case, npy  # noqa: E402
from qwen3align import longaudio  # noqa: E402
from qwen3align.dask import FILE_COLUMNS, ROW_COLUMNS, align_files, pin_gpu  # noqa: E402

ALIGNER = os.path.join(FIXTURES, "aligner")
NAMES = ["en_short", "punct_numbers", "tiny", "en_long", "zh_mixed"]


def corpus():
    """20 items: arrays of every case, the en_short WAV by path, and one path that does not exist."""
    files, texts, langs = [], [], []
    for k in range(19):
        name = NAMES[k % len(NAMES)]
        exp = load_case(name)
        files.append(os.path.join(case_dir(name), "input.wav") if k == 5 else (npy(name, "audio16k.npy"), 16000))
        texts.append(exp["text"] if k % 2 == 0 else exp["words"])  # a transcript or a word list
    files.insert(7, "/nonexistent/missing.wav")
    texts.insert(7, "never aligned")
    return files, texts


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as c:
            yield c


def test_align_files_rows_match_local_alignment(client):
    files, texts = corpus()
    df = align_files(client, files, texts, aligner=ALIGNER, device="cpu", max_audio_seconds=30)
    assert list(df.columns) == ROW_COLUMNS
    err = df[df["error_type"].notna()]
    assert list(err["item"]) == [7] and err.iloc[0]["file"] == "/nonexistent/missing.wav"
    assert err.iloc[0]["error_type"] == "AudioError" and "missing.wav" in err.iloc[0]["error"]
    ok = df[df["error_type"].isna()]
    assert sorted(set(ok["item"])) == [i for i in range(20) if i != 7], "every other file gives rows"
    assert list(df["item"]) == sorted(df["item"]), "rows come in the order of the files"
    with qa.load_models(aligner=ALIGNER, device="cpu", max_audio_seconds=30) as local:
        for i, (f, t) in enumerate(zip(files, texts)):
            if i == 7:
                continue
            want = longaudio.align(local, f, None if isinstance(t, list) else t,
                                   words=t if isinstance(t, list) else None)
            rows = ok[ok["item"] == i]
            got = list(zip(rows["text"], rows["start"], rows["end"]))
            assert got == [(it.text, it.start, it.end) for it in want], f"item {i} differs"
            assert list(rows["word"]) == list(range(len(want)))
    loaded = client.run(lambda dask_worker: len(dask_worker.__dict__.get("_qwen3align_models", {})))
    assert sorted(loaded.values()) == [1, 1], f"one Models per worker process, got {loaded}"


def test_align_files_file_rows_and_list_output(client):
    files, texts = corpus()
    out = align_files(client, files[:8], texts[:8], aligner=ALIGNER, device="cpu", max_audio_seconds=30,
                      rows="files", as_frame=False)
    assert [r["item"] for r in out] == list(range(8))
    assert set(out[0]) == set(FILE_COLUMNS)
    assert out[7]["error_type"] == "AudioError" and out[7]["items"] is None
    assert out[2]["n_words"] == 1 and out[2]["items"][0]["text"] == "ok"


def test_pin_gpu():
    env = {}
    assert pin_gpu(3, env, n_gpus=2) == "1" and env["CUDA_VISIBLE_DEVICES"] == "1"
    env = {"CUDA_VISIBLE_DEVICES": "4,5,6"}
    assert pin_gpu(4, env) == "5"
    env = {"CUDA_VISIBLE_DEVICES": "2"}  # already pinned (dask-cuda): left alone
    assert pin_gpu(1, env) is None and env["CUDA_VISIBLE_DEVICES"] == "2"
    env = {}
    assert pin_gpu(0, env, n_gpus=0) is None and "CUDA_VISIBLE_DEVICES" not in env


def test_length_mismatch():
    with pytest.raises(ValueError, match="2 texts for 1 files"):
        align_files("tcp://127.0.0.1:1", ["a.wav"], ["a", "b"], aligner=ALIGNER)


def test_arrays_need_no_copy_to_disk(client):
    x = np.concatenate([npy("en_short", "audio16k.npy")] * 2)
    words = load_case("en_short")["words"] * 2
    df = align_files(client, [x], [words], aligner=ALIGNER, device="cpu", max_audio_seconds=30,
                     sample_rate=16000)
    assert list(df["text"]) == words and df["error_type"].isna().all()
