"""Align a folder of recordings on a Dask cluster: one Models per worker, a CSV of word times out.

    python examples/dask_corpus.py corpus/ --aligner Qwen3-ForcedAligner-0.6B/ --language English \
        --workers 2 --out words.csv
    python examples/dask_corpus.py corpus/ --aligner ... --asr Qwen3-ASR-1.7B/ --scheduler tcp://host:8786

Every audio file (wav, flac, ogg, mp3) is aligned with the transcript in the .txt file of the same
name; a file without one is transcribed first (needs --asr). Files that fail appear in the CSV as
rows with error_type / error set, and are listed at the end. Needs `pip install 'dask[distributed]' pandas`.
With GPUs, start one worker per GPU (each worker process is pinned to one through CUDA_VISIBLE_DEVICES).
"""
import argparse
import glob
import os
import sys

from qwen3align.dask import align_files

AUDIO = (".wav", ".flac", ".ogg", ".mp3")


def find_corpus(folder):
    files, texts = [], []
    for path in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)):
        if not path.lower().endswith(AUDIO):
            continue
        txt = os.path.splitext(path)[0] + ".txt"
        files.append(path)
        texts.append(open(txt, encoding="utf-8").read() if os.path.exists(txt) else None)
    return files, texts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--aligner", required=True)
    ap.add_argument("--asr")
    ap.add_argument("--language")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-audio-seconds", type=float, default=300.0)
    ap.add_argument("--scheduler", help="address of a running scheduler (default: a LocalCluster)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster")
    ap.add_argument("--out", default="words.csv")
    args = ap.parse_args(argv)

    files, texts = find_corpus(args.folder)
    if not files:
        sys.exit(f"no audio files under {args.folder}")
    if any(t is None for t in texts) and not args.asr:
        sys.exit("some files have no .txt transcript: give --asr to transcribe them")
    texts = texts if any(t is not None for t in texts) else None
    kw = dict(aligner=args.aligner, asr=args.asr, language=args.language, device=args.device,
              max_audio_seconds=args.max_audio_seconds)
    if args.scheduler:
        df = align_files(args.scheduler, files, texts, **kw)
    else:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True) as cluster, \
                Client(cluster) as client:
            df = align_files(client, files, texts, **kw)
    df.to_csv(args.out, index=False)
    bad = df[df["error_type"].notna()]
    print(f"{len(files)} files, {int(df['error_type'].isna().sum())} words -> {args.out}")
    for _, r in bad.iterrows():
        print(f"  failed: {r['file']}: {r['error_type']}: {r['error']}")
    return 1 if len(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
