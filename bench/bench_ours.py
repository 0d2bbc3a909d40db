"""The qwen3align side of the GPU benchmark. Never imports torch (that is part of the claim).

Phases, each its own process (gpu_bench.py starts them one after another):
  parity   load both models (dtype from cfg), logits at the <timestamp> rows for the aligner
           cases, ASR first-step logits + 32 greedy ids, all from the SAME features and ids
           the transformers processor produced (<workdir>/inputs/<case>.npz) -> parity/<tag>_*.npy;
           with bf16 also checks our front end: log_mel vs Qwen3ASRFeatureExtractor (max abs diff)
           and our prompt ids vs the processor's (must be identical)
  perf     import/load times, align 10/60/300 s, ASR prefill / decode per token, throughput,
           GPU memory after load and after 300 s align + 60 s ASR + 100 mixed calls,
           allocations_after_load (must stay 0)
Our calls are synchronous, so perf_counter around a call is the device time plus host work.
"""
import faulthandler
import json
import os
import sys
import time

import numpy as np

import bench_common as bc

GREEDY_STEPS = 32


def load(cfg, aligner=True, asr=True, dtype=None):
    import qwen3align as qa

    m = cfg["models"]
    return qa.load_models(aligner=m["aligner"] if aligner else None, asr=m["asr"] if asr else None,
                          device=cfg["device"], dtype=dtype or cfg["dtype"],
                          max_audio_seconds=cfg["max_audio_seconds"],
                          max_new_tokens=cfg["max_new_tokens"])


def load_best(cfg, log, dtype=None):
    """Both models; if that fails (engine half done), the aligner alone, then the ASR alone."""
    for aligner, asr in ((True, True), (True, False), (False, True)):
        try:
            return load(cfg, aligner=aligner, asr=asr, dtype=dtype)
        except Exception as e:  # noqa: BLE001 - record and try a smaller set
            log.setdefault("load_errors", []).append(f"aligner={aligner} asr={asr}: {type(e).__name__}: {e}")
            print(f"load failed (aligner={aligner}, asr={asr}): {e}", flush=True)
    raise RuntimeError("no model could be loaded: " + "; ".join(log["load_errors"]))


def close(models):
    if models is not None and hasattr(models, "close"):
        models.close()


def report(models):
    rep = models.memory_report()
    keys = ("arena_bytes", "used_bytes", "peak_bytes", "device_total_bytes", "device_free_bytes",
            "allocations_after_load")
    out = {}
    for k in keys:
        try:
            out[k] = rep[k]
        except (KeyError, TypeError, IndexError):
            out[k] = getattr(rep, k, None)
    return out


def device_used_mib(rep):
    """(total − free) from our own cudaMemGetInfo, minus the idle baseline: cross-check of nvidia-smi."""
    total, free = rep.get("device_total_bytes"), rep.get("device_free_bytes")
    if not total or free is None:
        return None
    return (total - free) / 2**20 - float(os.environ.get("QA_BENCH_BASELINE_MIB") or 0)


def case_inputs(cfg, name):
    z = np.load(os.path.join(cfg["workdir"], "inputs", name + ".npz"))
    return (np.ascontiguousarray(z["features"], dtype=np.float32), int(z["valid_frames"]),
            np.ascontiguousarray(z["input_ids"], dtype=np.int32), [str(w) for w in z["words"]])


def align_call(models, audio, words):
    """models.align on a 16 kHz array in ONE forward (target_seconds = the clip's length: audio
    longer than the 180 s default target would otherwise take the chunked long-audio path)."""
    return models.align(audio, text=" ".join(words), language="English", sample_rate=bc.SR,
                        target_seconds=max(len(audio) / bc.SR, 1.0))


# ---------------------------------------------------------------- phase: parity

def phase_parity(cfg, log):
    tag = "ours" if cfg["dtype"] == "bfloat16" else "ours32"
    pdir = os.path.join(cfg["workdir"], "parity")
    os.makedirs(pdir, exist_ok=True)
    table = bc.case_table(cfg["tiny"])
    if tag == "ours":
        frontend_checks(cfg, log, table)
    models = None
    with bc.Stage(log, f"{tag}_load", cfg["deadline"]):
        models = load_best(cfg, log)
    if models is None:
        return
    for name, (_, _, kind) in table.items():
        with bc.Stage(log, f"{tag}_{name}", cfg["deadline"]) as st:
            st.check()
            feats, valid, ids, _ = case_inputs(cfg, name)
            if kind == "aligner":
                np.save(os.path.join(pdir, f"{tag}_{name}.npy"),
                        np.asarray(models.aligner_logits(feats, valid, ids), dtype=np.float32))
            else:
                gen, first = models.asr_generate(feats, valid, ids, max_new_tokens=GREEDY_STEPS,
                                                 min_new_tokens=GREEDY_STEPS)
                gen = np.asarray(gen, dtype=np.int32).reshape(-1)[-GREEDY_STEPS:]  # new tokens only
                np.save(os.path.join(pdir, f"{tag}_{name}_first.npy"),
                        np.asarray(first, dtype=np.float32).reshape(-1))
                np.save(os.path.join(pdir, f"{tag}_{name}_greedy.npy"), gen)
    with bc.Stage(log, f"{tag}_report", None):
        log["memory_report"] = report(models)
    close(models)


def frontend_checks(cfg, log, table):
    """Our log_mel and prompt ids against what the transformers processor produced."""
    import qwen3align as qa

    res = log.setdefault("frontend", {})
    tok = None
    with bc.Stage(log, "frontend_tokenizer", None):
        tok = qa.Tokenizer(cfg["models"]["aligner"])
    for name, (secs, seed, kind) in table.items():
        with bc.Stage(log, f"frontend_{name}", cfg["deadline"]) as st:
            st.check()
            feats, valid, ids, words = case_inputs(cfg, name)
            audio = bc.audio_cached(cfg["workdir"], name, secs, seed)
            r = res.setdefault(name, {})
            ours, our_valid = qa.log_mel(audio)
            ours = np.asarray(ours, dtype=np.float32)
            r["valid_frames_equal"] = int(our_valid) == valid
            if ours.shape == feats.shape:
                r["mel_max_abs"] = float(np.abs(ours - feats).max())
            else:
                r["mel_shape"] = [list(ours.shape), list(feats.shape)]
            if ours.ndim == 2 and ours.shape[0] == feats.shape[0] and ours.shape[1] >= valid:
                r["mel_max_abs_valid"] = float(np.abs(ours[:, :valid] - feats[:, :valid]).max())
            n_audio = int(qa.audio_token_count(our_valid))
            r["audio_tokens_equal"] = n_audio == int((ids == 151676).sum())
            if tok is not None:
                mine = qa.aligner_prompt_ids(tok, words, n_audio) if kind == "aligner" else \
                    qa.asr_prompt_ids(tok, n_audio, language=None, context="")
                r["ids_equal"] = bool(np.array_equal(np.asarray(mine, dtype=np.int64), ids.astype(np.int64)))
            print(f"  frontend {name}: {r}", flush=True)


# ---------------------------------------------------------------- phase: perf

def phase_perf(cfg, log):
    res = log.setdefault("metrics", {})
    dl, q = cfg["deadline"], cfg["quick"]
    with bc.Stage(log, "load_times", dl) as st:
        st.check()
        first = time.perf_counter()
        close(load(cfg, asr=False))  # first load pays for the CUDA context
        res["first_load_aligner_s_incl_context"] = time.perf_counter() - first
        for kind in ("aligner", "asr"):
            ts = []
            for _ in range(3 if q else 5):
                t0 = time.perf_counter()
                m = load(cfg, aligner=kind == "aligner", asr=kind == "asr")
                ts.append(time.perf_counter() - t0)
                close(m)
            res[f"load_{kind}_s"] = bc.median(ts)
    models = load_best(cfg, log)
    res["mem_after_load"] = bc.gpu_memory_mib()
    res["report_after_load"] = report(models)
    res["gpu_used_mib_after_load"] = bc.footprint_mib(res["mem_after_load"])
    res["report_used_mib_after_load"] = device_used_mib(res["report_after_load"])
    res["allocations_after_load"] = res["report_after_load"].get("allocations_after_load")
    reps = 5 if q else 12
    perf_align(cfg, log, res, models, reps)
    perf_asr(cfg, log, res, models, reps)
    perf_throughput(cfg, log, res, models)
    perf_mixed(cfg, log, res, models)
    res["mem_after_work"] = bc.gpu_memory_mib()
    res["report_after_work"] = report(models)
    res["gpu_used_mib_after_work"] = bc.footprint_mib(res["mem_after_work"])
    res["report_used_mib_after_work"] = device_used_mib(res["report_after_work"])
    res["allocations_after_load"] = res["report_after_work"].get("allocations_after_load")
    close(models)


def perf_align(cfg, log, res, models, reps):
    for name, (secs, seed, kind) in bc.case_table(cfg["tiny"]).items():
        if kind != "aligner":
            continue
        with bc.Stage(log, f"align_{name}", cfg["deadline"]) as st:
            st.check()
            feats, valid, ids, words = case_inputs(cfg, name)
            res[f"align_ms_{name[2:]}s_model"] = 1e3 * bc.time_calls(
                lambda: models.aligner_logits(feats, valid, ids), reps, 2, cfg["deadline"])[0]
            audio = bc.audio_cached(cfg["workdir"], name, secs, seed)
            # end to end through the public path: on CUDA align() hands the samples to the engine, which
            # uploads them and computes log_mel on the device (issue #5), then encoder and decoder
            res[f"align_ms_{name[2:]}s"] = 1e3 * bc.time_calls(
                lambda: align_call(models, audio, words), reps, 2, cfg["deadline"])[0]
            if hasattr(models, "aligner_logits_from_audio") and max(len(audio), 8000) // 160 == valid:
                # samples -> logits: device mel + model, without the Python frontend
                x = np.ascontiguousarray(audio, dtype=np.float32)
                res[f"align_ms_{name[2:]}s_from_audio"] = 1e3 * bc.time_calls(
                    lambda: models.aligner_logits_from_audio(x, ids), reps, 2, cfg["deadline"])[0]


def perf_asr(cfg, log, res, models, reps):
    feats, valid, ids, _ = case_inputs(cfg, "asr60")

    def gen(k):
        return lambda: models.asr_generate(feats, valid, ids, max_new_tokens=k, min_new_tokens=k)
    with bc.Stage(log, "asr_prefill", cfg["deadline"]) as st:
        st.check()
        res["asr_prefill_60s_ms"] = 1e3 * bc.time_calls(gen(1), reps, 2, cfg["deadline"])[0]
    with bc.Stage(log, "asr_decode", cfg["deadline"]) as st:
        st.check()
        n = 65 if cfg["quick"] else 129
        t1 = bc.time_calls(gen(1), 5, 1, cfg["deadline"])[0]
        tn = bc.time_calls(gen(n), 5, 1, cfg["deadline"])[0]
        res["asr_decode_ms_per_token"] = 1e3 * (tn - t1) / (n - 1)


def perf_throughput(cfg, log, res, models):
    with bc.Stage(log, "align_throughput", cfg["deadline"]) as st:
        st.check()
        secs = bc.throughput_clip_seconds(cfg["tiny"])
        clips = bc.throughput_clips(cfg["workdir"], cfg["tiny"], cfg["quick"])
        k = len(clips)
        batch = getattr(models, "align_batch", None)
        if batch is not None:
            def run_all():
                batch([{"audio": c[0], "words": c[1], "language": "English", "sample_rate": bc.SR}
                       for c in clips])
            res["align_throughput_mode"] = "align_batch"
        else:
            def run_all():
                for audio, words in clips:
                    align_call(models, audio, words)
            res["align_throughput_mode"] = "sequential align()"
        try:
            run_all()  # warm-up
        except TypeError:
            if batch is None:
                raise

            def run_all():  # align_batch with another signature: fall back, say so
                for audio, words in clips:
                    align_call(models, audio, words)
            res["align_throughput_mode"] = "sequential align() (align_batch signature differs)"
            run_all()
        t0 = time.perf_counter()
        run_all()
        res["align_throughput_audio_s_per_s"] = k * secs / (time.perf_counter() - t0)


def perf_mixed(cfg, log, res, models):
    """Issue 5's memory workload: 300 s align + 60 s ASR + 100 mixed calls of other lengths."""
    import qwen3align as qa

    with bc.Stage(log, "mixed_calls", cfg["deadline"]) as st:
        st.check()
        tok = qa.Tokenizer(cfg["models"]["asr"])
        done = 0
        for kind, audio, words in bc.mixed_workload(cfg):
            if kind == "align":
                align_call(models, audio, words)
            else:
                feats, valid = qa.log_mel(audio)
                ids = qa.asr_prompt_ids(tok, qa.audio_token_count(valid), language=None, context="")
                models.asr_generate(feats, valid, np.asarray(ids, dtype=np.int32), max_new_tokens=4,
                                    min_new_tokens=4)
            done += 1
        res["mixed_calls_done"] = done


PHASES = {"parity": phase_parity, "perf": phase_perf}


def main():
    phase, cfg = sys.argv[1], json.loads(sys.argv[2])
    log = {"phase": phase, "dtype": cfg["dtype"]}
    suffix = "" if cfg["dtype"] == "bfloat16" else "_fp32"
    out = os.path.join(cfg["workdir"], f"ours_{phase}{suffix}.json")
    faulthandler.enable()  # a crash in the engine prints where Python was
    bc.AUTOSAVE = (out, log)
    try:
        with bc.Stage(log, f"ours_{phase}{suffix}", None):
            PHASES[phase](cfg, log)
        log["torch_imported"] = "torch" in sys.modules  # must stay False
    finally:
        bc.save_json(out, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
