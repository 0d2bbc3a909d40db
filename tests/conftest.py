"""Shared test helpers: fixture paths (../shared/fixtures) and a tolerance check that prints evidence."""
import json
import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# $QA_SHARED; or ../shared next to the checkout (developers, CI); or shared/ inside the repository
# (the trimmed copy bench/pack_gpu.sh makes for the GPU box)
SHARED = os.environ.get("QA_SHARED") or next(
    (d for d in (os.path.join(REPO, "..", "shared"), os.path.join(REPO, "shared")) if os.path.isdir(os.path.join(d, "fixtures"))),
    os.path.join(REPO, "..", "shared"))
SHARED = os.path.abspath(SHARED)
FIXTURES = os.path.join(SHARED, "fixtures")
MODELS = os.path.join(SHARED, "models")
CASES = json.load(open(os.path.join(FIXTURES, "index.json")))["cases"] if os.path.exists(FIXTURES) else []


def case_dir(name):
    return os.path.join(FIXTURES, "cases", name)


def load_case(name):
    """expected.json of a case plus a loader for its .npy files."""
    d = case_dir(name)
    with open(os.path.join(d, "expected.json"), encoding="utf-8") as f:
        exp = json.load(f)
    exp["_dir"] = d
    return exp


def npy(case, fname):
    return np.load(os.path.join(case_dir(case), fname))


def rel_err(out, ref):
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


def assert_close_rel(out, ref, tol, what=""):
    """‖out−ref‖/‖ref‖ ≤ tol; on failure (and with -s always) show max abs error and where."""
    out = np.asarray(out)
    ref = np.asarray(ref)
    assert out.shape == ref.shape, f"{what}: shape {out.shape}, expected {ref.shape}"
    r = rel_err(out, ref)
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    where = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    print(f"{what}: rel err {r:.3e}, max abs {diff.max() if diff.size else 0:.3e} at {where}")
    assert r <= tol, f"{what}: relative error {r:.3e} > {tol:.1e} (max abs {diff.max():.3e} at {where})"


@pytest.fixture(scope="session")
def fixtures_dir():
    if not os.path.isdir(FIXTURES):
        pytest.fail(f"reference fixtures not found at {FIXTURES}")
    return FIXTURES
