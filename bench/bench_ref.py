"""The transformers side of the GPU benchmark (the parity oracle and the speed baseline).

Run by gpu_bench.py as separate processes, one per phase, so their GPU memory never mixes:
  inputs  features (Qwen3ASRFeatureExtractor) + prompt ids (Qwen3ASRProcessor) for every case,
          saved to <workdir>/inputs/<case>.npz; plus the fixture check (transformers on
          shared/fixtures/*-hf reproduces the stored reference logits)
  parity  FP32 truth (eager attention, TF32 off) and BF16 (sdpa, what users run) logits at the
          <timestamp> rows, ASR first-step logits and 32 greedy ids -> <workdir>/parity/tf*.npy
  perf    BF16 load times, align 10/60/300 s, ASR prefill/decode, throughput, GPU memory
Each phase writes <workdir>/ref_<phase>.json. Chat templates: the prompt layouts of
MODEL_FACTS §7.2 (aligner) and §8.1 (ASR), written here as Jinja for the stock processor.
"""
import faulthandler
import json
import os
import sys
import time

import numpy as np
import torch
import transformers as T

import bench_common as bc

ALIGNER_TEMPLATE = (
    "{{- '<|audio_start|><|audio_pad|><|audio_end|>' -}}"
    "{%- for m in messages -%}{%- for c in m.content -%}{%- if c.type == 'text' -%}"
    "{{- c.text + '<timestamp><timestamp>' -}}{%- endif -%}{%- endfor -%}{%- endfor -%}")
ASR_TEMPLATE = (
    "{%- set ns = namespace(sys='') -%}"
    "{%- for m in messages -%}{%- if m.role == 'system' -%}{%- for c in m.content -%}"
    "{%- if c.type == 'text' -%}{%- set ns.sys = ns.sys + c.text -%}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}{%- endfor -%}"
    "{{- '<|im_start|>system\\n' + ns.sys + '<|im_end|>\\n<|im_start|>user\\n"
    "<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\\n<|im_start|>assistant\\n' -}}"
    "{%- for m in messages -%}{%- if m.role == 'assistant' -%}{%- for c in m.content -%}"
    "{%- if c.type == 'text' -%}{{- c.text -}}{%- endif -%}{%- endfor -%}{%- endif -%}{%- endfor -%}")
GREEDY_STEPS = 32


def make_processor(folder, kind):
    tok = T.AutoTokenizer.from_pretrained(folder)
    return T.Qwen3ASRProcessor(feature_extractor=T.Qwen3ASRFeatureExtractor(), tokenizer=tok,
                               chat_template=ALIGNER_TEMPLATE if kind == "aligner" else ASR_TEMPLATE)


def aligner_inputs(proc, audio, words):
    inp, _ = proc.prepare_forced_aligner_inputs(audio, " ".join(words), language="English")
    return inp


def asr_inputs(proc, audio):
    return proc.apply_transcription_request(audio, language=None, prompt=None)


def to_dev(inp, device, dtype):
    out = {}
    for k in ("input_ids", "attention_mask", "input_features", "input_features_mask"):
        v = inp[k].to(device)
        out[k] = v.to(dtype) if k == "input_features" else v
    return out


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(device, fn):
    """Seconds of fn() on the device: CUDA events on GPU, perf_counter on CPU."""
    if str(device).startswith("cuda"):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / 1000.0
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_timed(device, fn, reps, warmup, deadline):
    for _ in range(warmup):
        timed(device, fn)
    ts = []
    for _ in range(reps):
        if ts and time.time() > deadline:
            break
        ts.append(timed(device, fn))
    return bc.median(ts), len(ts)


def load(kind, folder, device, dtype, attn):
    cls = T.Qwen3ASRForTokenClassification if kind == "aligner" else T.Qwen3ASRForConditionalGeneration
    if str(device).startswith("cuda"):
        try:  # straight to the GPU, as users load (needs accelerate, which the box has)
            return cls.from_pretrained(folder, dtype=dtype, attn_implementation=attn,
                                       device_map=device).eval()
        except (ValueError, ImportError):
            pass
    m = cls.from_pretrained(folder, dtype=dtype, attn_implementation=attn)
    return m.to(device).eval()


def release():
    """Give cached blocks back after the caller dropped its model references."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def ts_logits(model, inp):
    out = model(**inp).logits[0]
    return out[inp["input_ids"][0] == bc.TIMESTAMP_ID].float().cpu().numpy()


def asr_first_and_greedy(model, inp):
    first = model(**inp, use_cache=True, logits_to_keep=1).logits[0, -1].float().cpu().numpy()
    n = inp["input_ids"].shape[1]
    g = model.generate(**inp, max_new_tokens=GREEDY_STEPS, min_new_tokens=GREEDY_STEPS, do_sample=False)
    return first, g[0, n:].cpu().numpy().astype(np.int32)


def load_case_inputs(cfg, name):
    z = np.load(os.path.join(cfg["workdir"], "inputs", name + ".npz"))
    inp = {"input_ids": torch.from_numpy(z["input_ids"].astype(np.int64))[None],
           "input_features": torch.from_numpy(z["features"])[None],
           "input_features_mask": torch.from_numpy(
               (np.arange(z["features"].shape[1]) < int(z["valid_frames"])).astype(np.int32))[None]}
    inp["attention_mask"] = torch.ones_like(inp["input_ids"])
    return inp


# ---------------------------------------------------------------- phase: inputs

def phase_inputs(cfg, log):
    os.makedirs(os.path.join(cfg["workdir"], "inputs"), exist_ok=True)
    procs = {k: make_processor(cfg["models"][k + "_hf"], k) for k in ("aligner", "asr")}
    for name, (secs, seed, kind) in bc.case_table(cfg["tiny"]).items():
        with bc.Stage(log, f"inputs_{name}", cfg["deadline"]):
            audio = bc.audio_cached(cfg["workdir"], name, secs, seed)
            words = bc.words_for(secs, seed)
            inp = aligner_inputs(procs[kind], audio, words) if kind == "aligner" else \
                asr_inputs(procs[kind], audio)
            feats = inp["input_features"][0].numpy().astype(np.float32)
            valid = int(inp["input_features_mask"][0].sum())
            ids = inp["input_ids"][0].numpy().astype(np.int32)
            np.savez(os.path.join(cfg["workdir"], "inputs", name + ".npz"), features=feats,
                     valid_frames=valid, input_ids=ids, words=np.array(words if kind == "aligner" else []))
            log.setdefault("cases", {})[name] = {"seconds": secs, "kind": kind, "valid_frames": valid,
                                                 "n_ids": len(ids), "n_words": len(words),
                                                 "n_audio_tokens": int((ids == 151676).sum())}
    with bc.Stage(log, "fixture_check", cfg["deadline"]):
        log["fixture_check"] = fixture_check(cfg["fixtures"])


def fixture_check(fixtures):
    """transformers (FP32, CPU) on the -hf fixtures vs the stored reference: proves the harness."""
    res = {}
    if not os.path.isdir(fixtures):
        return {"skipped": f"no fixtures at {fixtures}"}
    al = load("aligner", os.path.join(fixtures, "aligner-hf"), "cpu", torch.float32, "eager")
    asr = load("asr", os.path.join(fixtures, "asr-hf"), "cpu", torch.float32, "eager")
    pa = make_processor(os.path.join(fixtures, "aligner-hf"), "aligner")
    ps = make_processor(os.path.join(fixtures, "asr-hf"), "asr")
    for case in sorted(os.listdir(os.path.join(fixtures, "cases"))):
        d = os.path.join(fixtures, "cases", case)
        exp = json.load(open(os.path.join(d, "expected.json"), encoding="utf-8"))
        audio = np.load(os.path.join(d, "audio16k.npy"))
        r = {}
        with torch.inference_mode():
            inp, _ = pa.prepare_forced_aligner_inputs(audio, exp["text"], language=exp.get("language"))
            r["features_max_abs"] = float(np.abs(inp["input_features"][0].numpy()
                                                 - np.load(os.path.join(d, "input_features.npy"))).max())
            r["aligner_ids_equal"] = bool(np.array_equal(
                inp["input_ids"][0].numpy(), np.load(os.path.join(d, "aligner_input_ids.npy"))))
            lg = ts_logits(al, to_dev(inp, "cpu", torch.float32))
            r["aligner_logits_rel_err"] = bc.rel_err(lg, np.load(os.path.join(d, "aligner_logits_at_timestamps.npy")))
            r["aligner_classes_equal"] = bool(np.array_equal(
                lg.argmax(-1), np.load(os.path.join(d, "aligner_raw_classes.npy"))))
            si = ps.apply_transcription_request(audio, language=exp.get("asr_language"),
                                                prompt=exp.get("asr_context") or None)
            r["asr_ids_equal"] = bool(np.array_equal(si["input_ids"][0].numpy(),
                                                     np.load(os.path.join(d, "asr_prompt_ids.npy"))))
            first = asr(**to_dev(si, "cpu", torch.float32), logits_to_keep=1).logits[0, -1].numpy()
            r["asr_first_logits_rel_err"] = bc.rel_err(first, np.load(os.path.join(d, "asr_first_logits.npy")))
        res[case] = r
        print(f"  fixture {case}: {r}", flush=True)
    return res


# ---------------------------------------------------------------- phase: parity

def phase_parity(cfg, log):
    dev = cfg["device"]
    pdir = os.path.join(cfg["workdir"], "parity")
    os.makedirs(pdir, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32 truth means FP32 (issue 5)
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    log["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    aligner_cases = [n for n, v in bc.case_table(cfg["tiny"]).items() if v[2] == "aligner"]
    for tag, dtype, attn in (("tf32", torch.float32, "eager"), ("tfbf16", torch.bfloat16, "sdpa")):
        with bc.Stage(log, f"parity_aligner_{tag}", cfg["deadline"]) as st:
            st.check()
            m = load("aligner", cfg["models"]["aligner_hf"], dev, dtype, attn)
            with torch.inference_mode():
                for name in aligner_cases:
                    inp = to_dev(load_case_inputs(cfg, name), dev, dtype)
                    np.save(os.path.join(pdir, f"{tag}_{name}.npy"), ts_logits(m, inp))
            del m
            release()
        with bc.Stage(log, f"parity_asr_{tag}", cfg["deadline"]) as st:
            st.check()
            m = load("asr", cfg["models"]["asr_hf"], dev, dtype, attn)
            with torch.inference_mode():
                first, greedy = asr_first_and_greedy(m, to_dev(load_case_inputs(cfg, "asr60"), dev, dtype))
            np.save(os.path.join(pdir, f"{tag}_asr60_first.npy"), first)
            np.save(os.path.join(pdir, f"{tag}_asr60_greedy.npy"), greedy)
            del m
            release()


# ---------------------------------------------------------------- phase: perf

def phase_perf(cfg, log):
    dev, dl, q = cfg["device"], cfg["deadline"], cfg["quick"]
    res = log.setdefault("metrics", {})
    bf = torch.bfloat16
    if dev.startswith("cuda"):
        torch.zeros(1, device=dev)  # context outside the load timings
        res["context_mem"] = bc.gpu_memory_mib()
    with bc.Stage(log, "load_times", dl) as st:
        st.check()
        for kind in ("aligner", "asr"):
            ts = []
            for _ in range(2 if q else 3):
                t0 = time.perf_counter()
                m = load(kind, cfg["models"][kind + "_hf"], dev, bf, "sdpa")
                sync(dev)
                ts.append(time.perf_counter() - t0)
                del m
                release()
            res[f"load_{kind}_s"] = bc.median(ts)
    al = load("aligner", cfg["models"]["aligner_hf"], dev, bf, "sdpa")
    asr = load("asr", cfg["models"]["asr_hf"], dev, bf, "sdpa")
    sync(dev)
    res["mem_after_load"] = bc.gpu_memory_mib()
    res["gpu_used_mib_after_load"] = bc.footprint_mib(res["mem_after_load"])
    procs = {k: make_processor(cfg["models"][k + "_hf"], k) for k in ("aligner", "asr")}
    reps = 5 if q else 12
    with torch.inference_mode():
        perf_align(cfg, log, res, al, procs["aligner"], reps)
        perf_asr(cfg, log, res, asr, reps)
        perf_throughput(cfg, log, res, al, procs["aligner"])
        perf_mixed(cfg, log, res, al, asr, procs)
    sync(dev)
    res["mem_after_work"] = bc.gpu_memory_mib()
    res["gpu_used_mib_after_work"] = bc.footprint_mib(res["mem_after_work"])
    if dev.startswith("cuda"):
        res["torch_max_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
        res["torch_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20


def perf_align(cfg, log, res, model, proc, reps):
    dev = cfg["device"]
    for name, (secs, seed, kind) in bc.case_table(cfg["tiny"]).items():
        if kind != "aligner":
            continue
        with bc.Stage(log, f"align_{name}", cfg["deadline"]) as st:
            st.check()
            inp = to_dev(load_case_inputs(cfg, name), dev, torch.bfloat16)
            res[f"align_ms_{name[2:]}s_model"] = 1e3 * median_timed(
                dev, lambda: model(**inp), reps, 2, cfg["deadline"])[0]
            audio, words = bc.audio_cached(cfg["workdir"], name, secs, seed), bc.words_for(secs, seed)

            def e2e():
                x = to_dev(aligner_inputs(proc, audio, words), dev, torch.bfloat16)
                lg = model(**x).logits
                proc.decode_forced_alignment(lg, x["input_ids"], [words], bc.TIMESTAMP_ID)
            res[f"align_ms_{name[2:]}s"] = 1e3 * median_timed(dev, e2e, max(3, reps // 3), 1,
                                                              cfg["deadline"])[0]


def perf_asr(cfg, log, res, model, reps):
    dev = cfg["device"]
    with bc.Stage(log, "asr_prefill", cfg["deadline"]) as st:
        st.check()
        inp = to_dev(load_case_inputs(cfg, "asr60"), dev, torch.bfloat16)
        res["asr_prefill_60s_ms"] = 1e3 * median_timed(
            dev, lambda: model(**inp, use_cache=True, logits_to_keep=1), reps, 2, cfg["deadline"])[0]
    with bc.Stage(log, "asr_decode", cfg["deadline"]) as st:
        st.check()
        n = 17 if cfg["quick"] else 33

        def gen(k):
            return lambda: model.generate(**inp, max_new_tokens=k, min_new_tokens=k, do_sample=False)
        t1 = median_timed(dev, gen(1), 3, 1, cfg["deadline"])[0]
        tn = median_timed(dev, gen(n), 3, 1, cfg["deadline"])[0]
        res["asr_decode_ms_per_token"] = 1e3 * (tn - t1) / (n - 1)


def perf_throughput(cfg, log, res, model, proc):
    """Many 60 s clips end to end (processor + forward + decode), batched 8 at a time."""
    dev = cfg["device"]
    with bc.Stage(log, "align_throughput", cfg["deadline"]) as st:
        st.check()
        secs = bc.throughput_clip_seconds(cfg["tiny"])
        clips = bc.throughput_clips(cfg["workdir"], cfg["tiny"], cfg["quick"])
        k, batch = len(clips), 8

        def run_all():
            for i in range(0, k, batch):
                part = clips[i:i + batch]
                x, wl = proc.prepare_forced_aligner_inputs([c[0] for c in part],
                                                           [" ".join(c[1]) for c in part],
                                                           language="English")
                x = to_dev(x, dev, torch.bfloat16)
                proc.decode_forced_alignment(model(**x).logits, x["input_ids"], wl, bc.TIMESTAMP_ID)
        run_all()  # warm-up
        t = timed(dev, run_all)
        res["align_throughput_audio_s_per_s"] = k * secs / t
        res["align_throughput_batch"] = batch


def perf_mixed(cfg, log, res, al, asr, procs):
    """Issue 5's memory workload: 300 s align + 60 s ASR + 100 mixed calls."""
    dev = cfg["device"]
    with bc.Stage(log, "mixed_calls", cfg["deadline"]) as st:
        st.check()
        done = 0
        for kind, audio, words in bc.mixed_workload(cfg):
            if kind == "align":
                al(**to_dev(aligner_inputs(procs["aligner"], audio, words), dev, torch.bfloat16))
            else:
                x = to_dev(asr_inputs(procs["asr"], audio), dev, torch.bfloat16)
                asr.generate(**x, max_new_tokens=4, min_new_tokens=4, do_sample=False)
            done += 1
        sync(dev)
        res["mixed_calls_done"] = done


PHASES = {"inputs": phase_inputs, "parity": phase_parity, "perf": phase_perf}


def main():
    cfg = json.loads(sys.argv[2])
    phase = sys.argv[1]
    log = {"phase": phase, "torch": torch.__version__, "transformers": T.__version__}
    out = os.path.join(cfg["workdir"], f"ref_{phase}.json")
    faulthandler.enable()
    bc.AUTOSAVE = (out, log)
    T.logging.set_verbosity_error()
    try:
        with bc.Stage(log, f"ref_{phase}", None):
            PHASES[phase](cfg, log)
    finally:
        bc.save_json(out, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
