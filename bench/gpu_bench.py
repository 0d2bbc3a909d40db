#!/usr/bin/env python3
"""GPU parity + benchmark of qwen3align against transformers 5.17 (issues 5 and 6). One entry point.

    python3 bench/gpu_bench.py                       # full run on the GPU box (< 8 min)
    python3 bench/gpu_bench.py --quick               # fewer repetitions / clips
    python3 bench/gpu_bench.py --only ours           # only our engine (reference models still made)
    python3 bench/gpu_bench.py --device cpu --tiny   # CPU smoke test with fixture-sized models
    python3 bench/gpu_bench.py --publish DIR         # here: DIR/results.json -> bench/results.json,
                                                     #       DIR/RESULTS_section.md appended to bench/RESULTS.md
Stages run in separate processes (reference models, transformers inputs / parity / perf, ours
parity / perf, ours FP32) so GPU memory never mixes and one crash does not stop the rest; a global
time budget skips what no longer fits. Results: <out>/results.json, <out>/RESULTS_section.md,
<out>/gpu_bench.log (out = $OUT or bench/out), and the markdown printed last.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import bench_common as bc  # noqa: E402
import bench_report as br  # noqa: E402

# phase -> (worker, argument, seconds it may take at most on the box, minimum budget to start)
PHASES = (
    ("models", "make", None, 200, 30),
    ("ref_inputs", "ref", "inputs", 90, 20),
    ("ref_parity", "ref", "parity", 120, 30),
    ("ours_parity", "ours", "parity", 90, 15),
    ("ours_perf", "ours", "perf", 150, 20),
    ("imports", "imports", None, 60, 10),
    ("ref_perf", "ref", "perf", 180, 40),
    ("ours_fp32", "ours", "parity", 60, 15),
)
LOG_LOCK = threading.Lock()


class Terminated(Exception):
    """SIGTERM (e.g. an outer `timeout`): stop the current worker, still write the report."""


def _on_sigterm(signum, frame):
    raise Terminated(f"signal {signum}")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="fixture-sized models (CPU smoke test)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("ref", "ours"))
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole run")
    ap.add_argument("--workdir", default=None, help="default /tmp/qa_bench (/tmp/qa_tiny with --tiny)")
    ap.add_argument("--models-dir", default=os.environ.get("QA_MODELS_DIR", "shared/models"))
    ap.add_argument("--fixtures-dir", default=os.environ.get("QA_FIXTURES_DIR", "shared/fixtures"))
    ap.add_argument("--out", default=os.environ.get("OUT") or os.path.join(HERE, "out"))
    ap.add_argument("--ref-python", default=sys.executable)
    ap.add_argument("--ours-python", default=sys.executable)
    ap.add_argument("--max-audio-seconds", type=float, default=300.0)
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--append-results", action="store_true", help="also append to bench/RESULTS.md")
    ap.add_argument("--publish", metavar="DIR", help="copy fetched results into bench/ and exit")
    return ap.parse_args(argv)


def log_line(out_dir, text):
    with LOG_LOCK:
        sys.stdout.write(text)
        sys.stdout.flush()
        with open(os.path.join(out_dir, "gpu_bench.log"), "a", encoding="utf-8") as f:
            f.write(text)


def child_env(args):
    env = dict(os.environ)
    # QA_BENCH_PATH_FIRST: a folder searched before the repo (tests of this harness with a stub engine)
    first = [env["QA_BENCH_PATH_FIRST"]] if env.get("QA_BENCH_PATH_FIRST") else []
    rest = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join(first + [HERE, REPO] + rest)
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", TQDM_DISABLE="1", TRANSFORMERS_VERBOSITY="error",
               TOKENIZERS_PARALLELISM="false")
    return env


def run_child(argv, timeout, args, name):
    """Run one worker in its own session, stream its output, kill its group at the timeout."""
    log_line(args.out, f"\n===== {name}: {' '.join(argv[:3])} (timeout {timeout:.0f} s)\n")
    t0 = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=child_env(args), cwd=REPO, start_new_session=True, errors="replace")
    reader = threading.Thread(target=lambda: [log_line(args.out, ln) for ln in proc.stdout], daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        rc = "timeout"
    except BaseException:  # Terminated / Ctrl-C: never leave the worker running
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    reader.join(timeout=5)
    took = time.time() - t0
    log_line(args.out, f"===== {name}: rc={rc} in {took:.1f} s\n")
    return {"rc": rc, "s": round(took, 1)}


def import_times(args, cfg):
    """Fresh interpreters; the time of the import statement itself (interpreter start excluded)."""
    probe = "import time;t=time.perf_counter();{};print(time.perf_counter()-t)"
    stmts = {}
    if args.only != "ref":
        stmts["qwen3align_bare"] = (args.ours_python, "import qwen3align", 5)
        stmts["qwen3align"] = (args.ours_python, "import qwen3align;qwen3align.load_models", 5)
    if args.only != "ours":
        stmts["transformers"] = (args.ref_python, "import torch,transformers;"
                                 "transformers.Qwen3ASRForConditionalGeneration", 1 if args.quick else 3)
    res = {}
    for key, (py, stmt, reps) in stmts.items():
        ts = []
        for _ in range(reps):
            if time.time() > cfg["deadline"]:
                break
            try:
                out = subprocess.run([py, "-c", probe.format(stmt)], capture_output=True, text=True,
                                     timeout=60, env=child_env(args), cwd=cfg["workdir"])
                ts.append(float(out.stdout.strip().splitlines()[-1]))
            except subprocess.SubprocessError as e:
                res[key + "_error"] = f"{type(e).__name__}: {e}"
                break
            except (ValueError, IndexError):
                res[key + "_error"] = (out.stderr.strip().splitlines() or ["no output"])[-1]
                break
        res[key + "_import_s"] = bc.median(ts)
    bc.save_json(os.path.join(cfg["workdir"], "imports.json"), res)
    print(f"imports: {res}", flush=True)
    return res


def model_paths(workdir):
    d = os.path.join(workdir, "models")
    return {"aligner": os.path.join(d, "Qwen3-ForcedAligner-0.6B"),
            "aligner_hf": os.path.join(d, "Qwen3-ForcedAligner-0.6B-hf"),
            "asr": os.path.join(d, "Qwen3-ASR-1.7B"), "asr_hf": os.path.join(d, "Qwen3-ASR-1.7B-hf")}


def wanted(phase, worker, args):
    if args.only == "ref" and worker == "ours":
        return False
    if args.only == "ours" and phase in ("ref_parity", "ref_perf"):
        return False
    return True


def run_phases(args, cfg, t_end, status):
    for phase, worker, arg, cap, min_left in PHASES:
        if not wanted(phase, worker, args):
            continue
        left = t_end - time.time()
        if left < min_left:
            status[phase] = {"rc": "skipped (time budget)"}
            log_line(args.out, f"\n===== {phase}: skipped, {left:.0f} s left\n")
            continue
        cap = cap * (0.5 if args.quick else 1.0)
        pcfg = dict(cfg, deadline=time.time() + min(cap, left) - 15)
        if phase == "ours_fp32":
            pcfg["dtype"] = "float32"
        if worker == "imports":
            status[phase] = {"rc": 0}
            import_times(args, pcfg)
            continue
        if worker == "make":
            argv = [args.ref_python, os.path.join(HERE, "make_hf_reference_models.py"),
                    "--out", os.path.join(cfg["workdir"], "models"), "--device", cfg["device"],
                    "--models-dir", args.models_dir, "--fixtures-dir", args.fixtures_dir] + \
                (["--tiny"] if args.tiny else [])
        else:
            py = args.ref_python if worker == "ref" else args.ours_python
            argv = [py, os.path.join(HERE, f"bench_{worker}.py"), arg, json.dumps(pcfg)]
        status[phase] = run_child(argv, min(cap, left) + 30, args, phase)
    return status


def clean_stale(workdir, only):
    """Drop the previous run's outputs of the engines this run redoes (--only keeps the other's)."""
    prefixes = {"ref": ("ref_", "tf"), "ours": ("ours",)}
    redo = prefixes[only] if only else prefixes["ref"] + prefixes["ours"]
    for folder in (workdir, os.path.join(workdir, "parity")):
        if os.path.isdir(folder):
            for fn in os.listdir(folder):
                if fn.endswith((".json", ".npy")) and fn.startswith(redo):
                    os.remove(os.path.join(folder, fn))
    if os.path.exists(os.path.join(workdir, "imports.json")):
        os.remove(os.path.join(workdir, "imports.json"))


def card_info(device):
    if not device.startswith("cuda"):
        return {"card": "cpu"}
    rows = bc.nvidia_smi("name,memory.total,memory.used,driver_version") or [["unknown", "", "", ""]]
    r = rows[0] + [""] * 4
    return {"card": r[0], "memory_total_mib": r[1], "baseline_used_mib": r[2], "driver": r[3]}


def publish(src):
    """Copy a run's results into bench/. The GPU box runs a copy of this working tree without its git
    history, so its commit id is unreliable: the id recorded is this tree's HEAD (publish right after
    the run, before committing anything else)."""
    res = bc.load_json(os.path.join(src, "results.json"), {})
    with open(os.path.join(src, "RESULTS_section.md"), encoding="utf-8") as f:
        section = f.read()
    head = br.git_head()
    if head and res.get("commit") != head:
        section = section.replace(f"(commit {res.get('commit')},", f"(commit {head},", 1)
        res["commit"] = head
    bc.save_json(os.path.join(HERE, "results.json"), res)
    with open(os.path.join(HERE, "RESULTS.md"), "a", encoding="utf-8") as f:
        f.write("\n" + section)
    print(f"bench/results.json updated; section appended to bench/RESULTS.md from {src} (commit {head})")
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.publish:
        return publish(args.publish)
    t_start = time.time()
    t_end = t_start + args.budget
    workdir = args.workdir or ("/tmp/qa_tiny" if args.tiny else "/tmp/qa_bench")
    os.makedirs(workdir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    open(os.path.join(args.out, "gpu_bench.log"), "w").close()
    env = card_info(args.device)
    if env.get("baseline_used_mib"):
        os.environ["QA_BENCH_BASELINE_MIB"] = env["baseline_used_mib"]
    clean_stale(workdir, args.only)
    cfg = {"workdir": workdir, "device": args.device, "tiny": args.tiny, "quick": args.quick or args.tiny,
           "dtype": "bfloat16", "models": model_paths(workdir),
           "fixtures": os.path.abspath(os.path.join(REPO, args.fixtures_dir))
           if not os.path.isabs(args.fixtures_dir) else args.fixtures_dir,
           "max_audio_seconds": args.max_audio_seconds, "max_new_tokens": args.max_new_tokens}
    log_line(args.out, f"gpu_bench: {env} workdir={workdir} budget={args.budget:.0f} s\n")
    signal.signal(signal.SIGTERM, _on_sigterm)
    status = {}
    try:
        status = run_phases(args, cfg, t_end, status)
    except (Terminated, KeyboardInterrupt) as e:
        status["interrupted"] = {"rc": f"{type(e).__name__}: {e}"}
        log_line(args.out, f"\n===== interrupted ({e}): writing the report with what exists\n")
    results, md = br.build(workdir, env, status, args, time.time() - t_start)
    bc.save_json(os.path.join(args.out, "results.json"), results)
    with open(os.path.join(args.out, "RESULTS_section.md"), "w", encoding="utf-8") as f:
        f.write(md)
    if args.append_results:
        bc.save_json(os.path.join(HERE, "results.json"), results)
        with open(os.path.join(HERE, "RESULTS.md"), "a", encoding="utf-8") as f:
            f.write("\n" + md)
    log_line(args.out, "\n" + md + f"\n(files in {args.out}; total {time.time() - t_start:.0f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
