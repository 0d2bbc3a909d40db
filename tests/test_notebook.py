"""examples/quickstart.ipynb executed with nbclient on the fixture models (the notebook's first cell
defaults to ../shared/fixtures), its rich outputs checked against the reference timestamps; then, in
the same kernel, a long call is stopped with Jupyter's kernel interrupt (a real SIGINT) and the models
must still give the same results."""
import html
import json
import os
import re
import signal
import threading
import time

import pytest

from conftest import FIXTURES, REPO, load_case

nbformat = pytest.importorskip("nbformat", reason="optional extra (pip install '.[notebook]'); make test installs it")
nbclient = pytest.importorskip("nbclient", reason="optional extra (pip install '.[notebook]'); make test installs it")
pytest.importorskip("ipykernel", reason="optional extra (pip install '.[notebook]'); make test installs it")
if not os.path.isdir(os.path.join(FIXTURES, "aligner")):
    pytest.skip("fixture models not found (../shared/fixtures)", allow_module_level=True)

NOTEBOOK = os.path.join(REPO, "examples", "quickstart.ipynb")
# helper J's cooperative cancellation (engine polls for Ctrl-C between layers); without it a signal
# is only seen once the running C call returns
ENGINE_CANCELS = os.path.exists(os.path.join(REPO, "csrc", "core", "cancel.h"))


@pytest.fixture(scope="module")
def kernel():
    """The executed notebook (all cells but the last, models.close()) and its still-running client."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("QWEN3ALIGN_")}
    nb = nbformat.read(NOTEBOOK, as_version=4)
    last = nb.cells.pop()
    assert "models.close()" in last.source
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.join(REPO, "examples")}})
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
        yield client, nb
        run(client, nb, "models.close()")
    os.environ.update(saved)


def interrupt(client):
    """Kernel -> Interrupt: SIGINT to the kernel process, as jupyter_client does for ipykernel on POSIX
    (the manager's own interrupt_kernel is a coroutine of the loop that execute_cell is blocking)."""
    os.kill(client.km.provisioner.pid, signal.SIGINT)


def run(client, nb, source, interrupt_after=None):
    """Execute one more cell; with interrupt_after, send the kernel interrupt that many seconds in."""
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["raises-exception"]  # an error is an output to inspect, not a test abort
    nb.cells.append(cell)
    timer = threading.Timer(interrupt_after, interrupt, (client,)) if interrupt_after else None
    if timer:
        timer.start()
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        if timer:
            timer.cancel()
    return cell


def outputs(cell, kind):
    return [o["data"][kind] for o in cell.outputs if kind in o.get("data", {})]


def errors(cell):
    return [o["ename"] for o in cell.outputs if o["output_type"] == "error"]


def stdout(cell):
    return "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == "stdout")


def cell_with(nb, needle):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def test_quickstart_outputs(kernel):
    client, nb = kernel
    case = load_case("en_short")
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        assert not errors(cell), (cell.source, cell.outputs)
    # the Alignment's table (Alignment._repr_html_) shows the reference word times
    page = outputs(cell_with(nb, "result = models.align"), "text/html")[0]
    rows = re.findall(r"<tr><td>\d+</td><td>(.*?)</td><td>([\d.]+)</td><td>([\d.]+)</td>", page)
    assert [html.unescape(r[0]) for r in rows] == case["words"]
    for (_, s, e), it in zip(rows, case["items"]):
        assert abs(float(s) - it["start"]) < 1e-3 and abs(float(e) - it["end"]) < 1e-3, (rows, case["items"])
    srt = stdout(cell_with(nb, "to_srt"))
    assert srt.startswith("1\n") and "-->" in srt
    assert outputs(cell_with(nb, "result.plot"), "image/png"), "no figure from Alignment.plot"
    plan = outputs(cell_with(nb, "qa.plan("), "text/html")[0]
    assert "weights/aligner" in plan and "weights/asr" in plan and "total (one arena)" in plan
    report = outputs(cell_with(nb, "models.memory_report()"), "text/html")[0]
    assert "weights/asr" in report and "host allocations since load" in report


def test_kernel_interrupt_keeps_models_usable(kernel):
    client, nb = kernel
    case = load_case("en_long")
    setup = run(client, nb, f"""
import time
LONG = {os.path.join(case['_dir'], 'input.wav')!r}
_t = time.perf_counter(); models.transcribe(LONG, max_new_tokens=256); full = time.perf_counter() - _t
before = (models.align(AUDIO, text=TEXT, language=LANGUAGE).to_json(), models.transcribe(AUDIO, max_new_tokens=12).tokens,
          dict(models.memory_report()["regions_used"]))
print(json.dumps({{"full": full}}))""")
    assert not errors(setup), setup.outputs
    full = json.loads(stdout(setup))["full"]

    # a loop of calls (the usual notebook case): the interrupt stops it between or inside calls
    t0 = time.perf_counter()
    loop = run(client, nb, "for _ in range(1000):\n    models.transcribe(LONG, max_new_tokens=256)",
               interrupt_after=0.5 * full)
    assert errors(loop) == ["KeyboardInterrupt"], loop.outputs
    assert time.perf_counter() - t0 < 1.5 * full + 5.0

    # one long call: with the engine's cancellation it stops within a layer, not at the call's end
    one = run(client, nb, "_t = time.perf_counter()\ntry:\n    models.transcribe(LONG, max_new_tokens=256)\n"
                          "finally:\n    stopped = time.perf_counter() - _t", interrupt_after=0.25 * full)
    assert errors(one) == ["KeyboardInterrupt"], one.outputs
    after = run(client, nb, """
again = (models.align(AUDIO, text=TEXT, language=LANGUAGE).to_json(), models.transcribe(AUDIO, max_new_tokens=12).tokens,
         dict(models.memory_report()["regions_used"]))
print(json.dumps({"same": again == before, "stopped": stopped, "closed": models.closed}))""")
    assert not errors(after), after.outputs
    got = json.loads(stdout(after))
    assert got["same"] and not got["closed"], got  # same words, tokens and arena use as before
    if ENGINE_CANCELS:
        assert got["stopped"] < 0.25 * full + 0.5, f"interrupt took {got['stopped']:.2f} s of a {full:.2f} s call"
    elif got["stopped"] < 0.75 * full:
        pytest.fail(f"stopped after {got['stopped']:.2f} s of {full:.2f} s: the engine cancels; update ENGINE_CANCELS")
