"""The HTML report: built from hand-written stores, parsed for every section, opened in headless Chromium."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from report_outline import Outline, outline

from nnbench import hookimpl
from nnbench.analysis import frames as analysis
from nnbench.contract.trial import Skipped
from nnbench.loading.plugins import PluginLoadWarning, make_plugin_manager
from nnbench.reporting import Report, ReportSection, build_report, plots, write_run_report
from nnbench.reporting import html as html_module

XSS = "<script>alert(1)</script>"
XSS_IMG = '<img src=x onerror="alert(2)">'

def BUILTINS() -> Any:  # noqa: N802 - reads as the thing it makes
    """A plugin manager with the built-in plugins only: the built-in sections come through their hook."""
    return make_plugin_manager(load_entry_points=False)

SECTIONS = ["leaderboard", "aggregates", "comparisons", "statistics", "effects", "interactions", "convergence", "speed",
            "robustness", "overview"]


class Contributor:
    """A plugin whose report section carries markup in every field."""

    @hookimpl
    def report_sections(self, trials: pd.DataFrame) -> list[ReportSection]:
        figure = Figure(figsize=(3, 2))
        figure.subplots().plot([1, 2, 3], [1, 4, 9])
        return [ReportSection(f"Plugin {XSS}", f"{len(trials)} trials seen.\n\nSecond {XSS_IMG} paragraph.",
                              pd.DataFrame({"name": [XSS], "value": [1.5]}), figure)]


class Broken:
    @hookimpl
    def report_sections(self) -> list[ReportSection]:
        raise RuntimeError(f"no luck {XSS}")


def rich_results(trial_result: Callable[..., Any]) -> list[Any]:
    """2 tasks x 4 activations (one named like a script) x 2 optimizers x 3 seeds, one failed trial."""
    activations = {"relu": 0.05, "tanh": 0.0, "gelu": 0.04, XSS: -0.03}
    results = []
    for task in ("spirals", "sine"):
        for (activation, bonus), (optimizer, lr, gain) in zip(
                [*activations.items()] * 2, [("sgd", 0.05, 0.0)] * 4 + [("adam", 1e-3, 0.06)] * 4, strict=True):
            for seed in range(3):
                score = 0.7 + bonus + gain + 0.01 * seed
                metric = score if task == "spirals" else 1.2 - score
                results.append(trial_result(task, activation, optimizer, lr, seed, metric, epochs=4,
                                            train_time=0.4 + 0.1 * seed, throughput=5000.0 + seed))
    results.append(trial_result("spirals", "relu", "adam", 1e-3, 3, float("nan"), status="failed",
                                error=f"Traceback ...\nValueError: bad <b>input</b> {XSS}"))
    return results


@pytest.fixture(scope="module")
def rich_report(tmp_path_factory: pytest.TempPathFactory, trial_result: Callable[..., Any],
                store_writer: Callable[..., Any]) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("report")
    skipped = [Skipped({"task": "sine", "arch": "cnn"}, f"architecture cnn reads images {XSS_IMG}")]
    grid = {"task": ["spirals", "sine"], "activation": ["relu", XSS], "seeds": 3, "references": {"spirals": [0.5, 1]}}
    pm = BUILTINS()
    pm.register(Contributor(), name="contributor")
    pm.register(Broken(), name="broken")
    with (store_writer(folder / "rich.db", rich_results(trial_result), skipped=skipped, grid=grid) as store,
          warnings.catch_warnings(record=True) as caught):
        warnings.simplefilter("always")
        path = write_run_report(store, ["run-1"], folder / "out", plugin_manager=pm)
    assert any(issubclass(w.category, PluginLoadWarning) and "broken" in str(w.message) for w in caught)
    yield path.read_text(encoding="utf-8"), path


def test_every_section_is_present_and_filled(rich_report: tuple[str, Path]) -> None:
    html, path = rich_report
    assert path.name == "index.html"
    page = outline(html)
    assert list(page.sections)[: len(SECTIONS)] == SECTIONS
    s = page.sections
    assert "testhost" in s["overview"]["text"] and "2.13.0" in s["overview"]["text"] and s["overview"]["tables"] == 4
    assert "49 trials (48 ok, 1 failed) and 1 skipped combination;" in s["overview"]["text"]
    assert s["leaderboard"]["tables"] == 2
    assert s["leaderboard"]["h3"] == ["spirals: test accuracy, higher is better", "sine: test rmse, lower is better"]
    assert s["effects"]["images"] == 2 and s["effects"]["h3"] == ["activation", "optimizer"]
    assert s["effects"]["notes"] == ["not varied, so no effect to show: loss (never changed with the other axes held "
                                     "fixed: each task used its own), arch (only fnn), lr (each optimizer at its own "
                                     "learning rate), schedule (only constant), clip (only none), validation (only "
                                     "split), shuffle (only true), protocol (only default)"]
    assert s["interactions"]["images"] == 1 and s["interactions"]["h3"] == ["activation × optimizer"]
    assert s["convergence"]["images"] == 1
    stats = s["statistics"]
    # Two tasks: mean ranks over them, and a note that a test over tasks needs six.
    assert stats["images"] == 0 and stats["tables"] == 2 and stats["h3"] == ["activation", "optimizer"]
    assert stats["notes"] == ["compared on at most 2 tasks: a test over tasks needs at least 6, so the per-task "
                              "comparisons are the evidence"] * 2
    assert "Nemenyi" in stats["text"] and "Holm" in stats["text"]  # what the section does instead, and why
    assert "learning-rate" not in s and "Learning-rate sensitivity" in page.left_out  # nothing to show
    assert "Tuned against default" in page.left_out and "micro-benchmarks" in page.left_out
    assert s["aggregates"]["tables"] == 1 and s["aggregates"]["images"] == 1
    assert "No bands: they need at least 10 seeds on every task" in s["aggregates"]["text"]
    assert "spirals: accuracy 0.5 → 0, 1 → 1 (the task's reference)" in s["aggregates"]["text"]
    assert "sine: rmse" in s["aggregates"]["text"] and "worst and best configuration mean" in s["aggregates"]["text"]
    assert s["comparisons"]["h3"] == ["activation", "optimizer"] and s["comparisons"]["tables"] == 2
    assert "adam is better than sgd on 2 of 2 tasks: spirals and sine" in s["comparisons"]["text"]
    assert "Rests on 3 paired seeds per comparison, over 2 tasks; family-wise error rate 0.05 (Holm) over its 12 " \
           "difference tests" in s["comparisons"]["text"]
    activation, optimizer, warning = page.findings
    # Every seed puts relu 0.01 above gelu: at three seeds the t-interval still spans zero, so undecided.
    assert activation.startswith(f"activation: tanh and {XSS} are worse than relu on 2 of 2 tasks")
    assert "not enough seeds to tell relu from gelu on 2 of 2 tasks" in s["comparisons"]["text"]
    assert "3 paired seeds" in activation and "Holm-adjusted p" in activation
    assert optimizer.startswith("optimizer: adam is better than sgd") and "fairness warnings" in warning
    assert s["speed"]["images"] == 1 and s["speed"]["tables"] == 1
    assert any("only one device ran (cpu)" in note for note in s["speed"]["notes"])
    assert any("peak memory was not measured" in note for note in s["speed"]["notes"])
    assert s["robustness"]["tables"] == 3 and "ValueError: bad <b>input</b>" in s["robustness"]["text"]
    assert "architecture cnn reads images" in s["robustness"]["text"]


def test_strings_from_the_store_grid_and_plugins_are_escaped(rich_report: tuple[str, Path]) -> None:
    html, _ = rich_report
    page = outline(html)
    assert page.dangerous == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and XSS not in html
    assert XSS in page.sections["leaderboard"]["text"]  # shown as text
    assert XSS in page.sections["overview"]["text"]  # the grid
    plugin = page.sections["plugin-1"]
    assert plugin["h2"] == f"Plugin {XSS}" and plugin["tables"] == 1 and plugin["images"] == 1
    assert f"Second {XSS_IMG} paragraph." in plugin["text"]
    assert plugin["notes"] == ["contributed by plugin contributor"]
    broken = page.sections["plugin-2"]
    assert broken["notes"] == [f"plugin 'broken' failed to build its report sections: RuntimeError: no luck {XSS}"]
    assert "default-src 'none'" in html and "script-src 'sha256-" in html  # no fetches; the page's script only
    assert page.scripts == [html_module.PAGE_SCRIPT]


def test_absent_data_is_said_in_one_line(tmp_path: Path, trial_result: Callable[..., Any],
                                         store_writer: Callable[..., Any]) -> None:
    with store_writer(tmp_path / "one.db", [trial_result(seed=0, metric=0.8)]) as store:
        page = outline(build_report(store, ["run-1"], BUILTINS()).html)
    # Sections with nothing to show are left out of the page and named in one line, each with its reason.
    assert list(page.sections) == ["leaderboard", "convergence", "speed", "robustness", "overview"]
    left_out = page.left_out_sections()
    assert left_out["Effect of each axis"].startswith("not varied, so no effect to show: activation (only relu), "
                                                      "optimizer (only adam)")
    assert left_out["Interactions"] == "fewer than two axes were varied, so there are no interactions to show"
    assert left_out["Statistics across tasks"] == "no axis was compared, so there is nothing to test across tasks"
    assert left_out["Comparisons"].startswith("no axis was varied") and "Across tasks" in left_out
    assert page.findings == [] and not any(name.startswith("plugin") for name in page.sections)
    assert page.sections["convergence"]["images"] == 1 and page.sections["leaderboard"]["tables"] == 1


def test_two_runs_on_two_devices_are_reported_together(tmp_path: Path, trial_result: Callable[..., Any],
                                                       store_writer: Callable[..., Any]) -> None:
    for run, device, seconds in (("run-cpu", "cpu", 2.0), ("run-gpu", "cuda:0", 0.5)):
        results = [trial_result(activation=a, seed=s, device=device, train_time=seconds, peak_memory=None
                                if device == "cpu" else 2**20) for a in ("relu", "tanh") for s in range(3)]
        store_writer(tmp_path / "two.db", results, run_id=run).close()
    with store_writer(tmp_path / "two.db", [], run_id="run-empty") as store:
        page = outline(build_report(store, ["run-cpu", "run-gpu"], BUILTINS()).html)
    overview, speed = page.sections["overview"], page.sections["speed"]
    assert "2 runs from" in overview["text"] and "run-cpu" in overview["text"] and "run-gpu" in overview["text"]
    assert "run-empty" not in overview["text"]
    assert speed["notes"] == [] and speed["tables"] == 2
    assert "4.00×" in speed["text"] and "1.0 MiB" in speed["text"]  # speed-up and peak memory


def test_a_twelve_trial_report_is_light(tmp_path: Path, trial_result: Callable[..., Any],
                                        store_writer: Callable[..., Any]) -> None:
    results = [trial_result("sine", activation, optimizer, lr, seed, 0.3 - gain - seed / 100, epochs=5)
               for activation, gain in (("relu", 0.05), ("tanh", 0.0)) for optimizer, lr in (("sgd", 0.05),
                                                                                           ("adam", 1e-3))
               for seed in range(3)]
    with store_writer(tmp_path / "twelve.db", results) as store:
        html = build_report(store, ["run-1"], BUILTINS()).html
    page = outline(html)
    assert len(results) == 12 and len(html) < 250_000, len(html)
    assert list(page.sections)[0] == "leaderboard"  # the answer first: findings, then the leaderboard
    assert page.findings[0].startswith("activation: relu is better than tanh on sine")
    assert page.findings[1].startswith("optimizer: ")


def test_a_run_without_trials_still_gives_a_report(tmp_path: Path, store_writer: Callable[..., Any]) -> None:
    with store_writer(tmp_path / "empty.db", []) as store:
        page = outline(build_report(store, ["run-1"], BUILTINS()).html)
    left_out = page.left_out_sections()
    assert left_out["Leaderboard"] == "no trials were stored for these runs"
    assert left_out["Speed"] == "no trial trained a full epoch, so there are no timings"
    assert page.sections["robustness"]["notes"][0] == "all 0 trials finished ok"


def test_twenty_levels_get_room_and_every_label() -> None:
    levels = [f"activation_with_a_long_name_{i}" for i in range(20)]
    trials = pd.DataFrame({"task": "spirals", "activation": levels * 3, "metric": [i / 60 for i in range(60)],
                           "metric_name": "accuracy", "status": "ok"})
    figure = plots.effect(trials, analysis.level_summary(trials, "activation"), "activation")
    ax = figure.axes[0]
    assert figure.get_figheight() >= 0.3 * 20
    assert len(ax.get_yticklabels()) == 20 and ax.get_xlabel() == "test accuracy (higher is better)"
    image = plots.to_image(figure, "twenty levels")
    assert image.uri.startswith("data:image/svg+xml;base64,") and not figure.axes  # released
    assert image.name == "twenty-levels" and image.svg == ""  # a small SVG is shown, and downloaded as it is


def test_a_large_figure_is_shown_as_a_png_laid_out_once_for_both_files(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    laid_out = []
    execute = ConstrainedLayoutEngine.execute
    monkeypatch.setattr(ConstrainedLayoutEngine, "execute",
                        lambda self, fig: (laid_out.append(fig), execute(self, fig)))
    figure = Figure(figsize=(4, 3), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(range(20_000), [i % 97 for i in range(20_000)], marker=".")
    ax.set_title("many points")
    image = plots.to_image(figure, "many points")
    assert image.uri.startswith("data:image/png;base64,") and image.svg.startswith("data:image/svg+xml;base64,")
    assert len(laid_out) == 1  # the SVG's layout, kept for the PNG


def test_report_object_saves_and_shows_in_notebooks(tmp_path: Path) -> None:
    report = Report("<html><body>a & b</body></html>")
    path = report.save(tmp_path / "deep" / "folder" / "r.html")
    assert path.read_text() == report.html
    frame = report._repr_html_()  # a page made elsewhere, without its inline form: framed
    assert frame.startswith("<iframe srcdoc=\"&lt;html&gt;") and "a &amp; b" in frame and " sandbox " in frame
    assert Report("<html></html>", lambda: "<div>inline</div>")._repr_html_() == "<div>inline</div>"
    assert "inline" not in repr(Report("<html></html>", lambda: "<div>inline</div>"))


def test_report_package_imports_no_plotting_and_building_imports_no_torch(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [trial_result(activation=a, seed=s, metric=0.5 + s / 10) for a in ("relu", "tanh") for s in range(2)]
    store_writer(tmp_path / "small.db", results).close()
    script = f"""
import sys
import matplotlib
import numpy as np
matplotlib.use("pdf")  # as a user or notebook might have chosen
import nnbench, nnbench.reporting
loaded = [m for m in ("seaborn", "matplotlib.pyplot", "torch", "scipy") if m in sys.modules]
assert not loaded, loaded
from nnbench.loading.plugins import make_plugin_manager
from nnbench.storage.store import ResultStore
from nnbench.reporting import build_report
pm = make_plugin_manager(load_entry_points=False)
html = build_report(ResultStore({str(tmp_path / "small.db")!r}), ["run-1"], pm).html
assert "torch" not in sys.modules, "building a report imported torch"
assert matplotlib.get_backend() == "pdf", "the report changed the process's backend"
print(len(html))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert matplotlib.rcParams["font.size"] == 10.0  # rc changes stay inside each figure


# -- in a real browser ----------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-pipe"]
SORT_CHECK = """(() => {
  const table = document.querySelector("#leaderboard table");
  const headers = Array.from(table.tHead.rows[0].cells);
  const column = headers.findIndex(th => th.textContent.startsWith("mean"));
  const values = () => Array.from(table.tBodies[0].rows).map(row => parseFloat(row.cells[column].textContent));
  const before = values();
  headers[column].click();
  const ascending = values();
  headers[column].click();
  return JSON.stringify({before, ascending, descending: values(), sort: headers[column].getAttribute("aria-sort")});
})()"""
PAGE_CHECK = """JSON.stringify({
  images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width]),
  sections: Array.from(document.querySelectorAll("main > section")).map(s => s.id),
  scripts: document.scripts.length,
  downloads: Array.from(document.querySelectorAll("a.download")).map(a => [a.hidden, a.href.slice(0, 26), a.download]),
  height: document.documentElement.scrollHeight,
  shown: document.body.innerText.includes(XSS),
})""".replace("XSS", json.dumps(XSS))


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (it reads fd 3 and writes fd 4,
    NUL-separated JSON): no websocket, no port, no extra package."""

    def __init__(self, chromium: str, profile: Path) -> None:
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        # Copies above fd 9 make the dup2s onto fds 3 and 4 safe whatever numbers os.pipe() chose.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        actions = [(os.POSIX_SPAWN_DUP2, high[0], 3), (os.POSIX_SPAWN_DUP2, high[1], 4),
                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
        argv = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.pid = os.posix_spawn(chromium, argv, os.environ, file_actions=actions)
        for fd in (to_browser, from_browser, *high):
            os.close(fd)
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._next_id = 0

    def send(self, method: str, session: str | None = None, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        reply = self._read_until(lambda m: m.get("id") == self._next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait_for(self, event: str, timeout: float = 30) -> dict[str, Any]:
        seen = next((e for e in self.events if e["method"] == event), None)
        return seen or self._read_until(lambda m: m.get("method") == event, timeout)

    def _read_until(self, wanted: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium exited before answering")
            self._buffer += chunk

    def open(self, url: str) -> str:
        """A new page at ``url``, loaded, with its page, runtime and log events on; returns its session."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session: str = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session)
        self.send("Page.navigate", session, url=url)
        self.wait_for("Page.loadEventFired")
        return session

    def evaluate(self, session: str, expression: str) -> Any:
        """The value of ``expression`` (a script returning JSON text) in the page, decoded."""
        return json.loads(self.send("Runtime.evaluate", session, expression=expression,
                                    returnByValue=True)["result"]["value"])

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close", timeout=10)
        deadline = time.monotonic() + 10
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.05)
        os.close(self._to_browser)
        os.close(self._from_browser)


def test_report_renders_in_headless_chromium(rich_report: tuple[str, Path], tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed; install it with `apt-get install -y chromium` "
                    "(CI installs it in .ci/run)")
    _, path = rich_report
    browser = DevTools(chromium, tmp_path / "profile")
    try:
        session = browser.open(path.as_uri())
        page = browser.evaluate(session, PAGE_CHECK)
        sorted_ = browser.evaluate(session, SORT_CHECK)
    finally:
        browser.close()
    assert page["sections"][: len(SECTIONS)] == SECTIONS
    assert page["scripts"] == 1 and page["shown"], "only the page's own script runs; the script-like name is text"
    # The aggregates' profiles, effects 2, interactions, convergence, speed, the plugin's figure (two tasks: no
    # diagram over tasks).
    assert len(page["images"]) == 7
    # Every figure offers its SVG: the script fills in the link from the shown SVG (and shows the link).
    assert len(page["downloads"]) == 7
    assert all(not hidden and href == "data:image/svg+xml;base64," and name.endswith(".svg")
               for hidden, href, name in page["downloads"]), page["downloads"]
    # A click on a heading sorts by that column (numbers as numbers), a second click reverses it.
    # (The failed trial ran 3 epochs, not 4: a configuration of its own without a mean, which sorts last.)
    before = sorted_["before"]
    assert before[-1] is None and before[:-1] == sorted(before[:-1], reverse=True)  # the leaderboard's order
    assert sorted_["ascending"] == [*sorted(before[:-1]), None] and sorted_["descending"] == before
    assert sorted_["sort"] == "descending"
    assert all(complete and natural > 0 and shown > 0 for complete, natural, shown in page["images"]), page["images"]
    assert page["height"] > 3000
    errors = [e["params"] for e in browser.events
              if (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or e["method"] in ("Runtime.exceptionThrown", "Page.javascriptDialogOpening")]
    assert errors == []


NOTEBOOK_HOST = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body { font-size: 11px; } p { margin: 40px 0; color: rgb(1, 2, 3); font-size: 9px; } table { font-size: 30px; }
h2 { font-size: 50px; }
</style></head><body><p id="before">a notebook's own paragraph</p>
<div class="output">FIRST</div><div class="output">SECOND</div><p id="after">another cell</p></body></html>"""
FRAGMENT_CHECK = """(() => {
  const reports = Array.from(document.querySelectorAll("div.nnbench-report"));
  const style = (element, property) => getComputedStyle(element)[property];
  const own = report => Array.from(report.querySelectorAll("[id]")).map(e => e.id);
  const links = report => Array.from(report.querySelectorAll("a[href^='#']")).map(a => a.getAttribute("href").slice(1));
  const table = reports[1].querySelector("section[id$='-leaderboard'] table");
  const headers = Array.from(table.tHead.rows[0].cells);
  const column = headers.findIndex(th => th.textContent.startsWith("mean"));
  headers[column].click();
  const other = reports[0].querySelector("section[id$='-leaderboard'] th:nth-child(" + (column + 1) + ")");
  return JSON.stringify({
    count: reports.length,
    heights: reports.map(r => [r.getBoundingClientRect().height, r.scrollHeight]),
    outside: [style(document.getElementById("before"), "marginTop"), style(document.getElementById("after"), "color")],
    inside: [style(reports[0].querySelector("p"), "marginTop"), style(reports[0].querySelector("h2"), "fontSize"),
             style(reports[0].querySelector("table"), "fontSize"), style(reports[0].querySelector("p"), "color"),
             style(reports[0].querySelector("p"), "fontSize")],
    ids: reports.map(own),
    unresolved: reports.map(r => links(r).filter(id => !own(r).includes(id))),
    sorted: [headers[column].getAttribute("aria-sort"), other.getAttribute("aria-sort")],
    images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),
  });
})()"""


def test_the_inline_report_fits_its_content_and_keeps_to_itself(rich_report: tuple[str, Path], tmp_path: Path,
                                                                 store_writer: Callable[..., Any]) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed; install it with `apt-get install -y chromium` "
                    "(CI installs it in .ci/run)")
    _, path = rich_report
    from nnbench.storage.store import ResultStore

    with ResultStore(path.parent.parent / "rich.db", readonly=True) as store:
        shown = [build_report(store, ["run-1"], BUILTINS()) for _ in range(2)]
    fragments = [report._repr_html_() for report in shown]
    assert all(f.startswith('<div class="nnbench-report" id="nnbench-') and "<iframe" not in f and "<body" not in f
               for f in fragments)
    assert len(fragments[0]) < 1.05 * len(shown[0].html)  # no escaped copy of the page
    host = tmp_path / "notebook.html"
    host.write_text(NOTEBOOK_HOST.replace("FIRST", fragments[0]).replace("SECOND", fragments[1]), encoding="utf-8")
    browser = DevTools(chromium, tmp_path / "profile")
    try:
        page = browser.evaluate(browser.open(host.as_uri()), FRAGMENT_CHECK)
    finally:
        browser.close()
    assert page["count"] == 2
    # As high as the content (no frame with a fixed height, nothing clipped), and that is a long page.
    assert all(height > 3000 and abs(height - scroll) < 2 for height, scroll in page["heights"]), page["heights"]
    assert page["outside"] == ["40px", "rgb(1, 2, 3)"]  # the notebook's own styles hold around the report
    margin, heading, table, color, size = page["inside"]  # the report's own styles hold inside it
    assert margin != "40px" and heading != "50px" and table != "30px" and color != "rgb(1, 2, 3)" and size == "15px"
    assert not set(page["ids"][0]) & set(page["ids"][1])  # two reports, two sets of ids
    assert page["unresolved"] == [[], []]  # every in-page link leads inside its own report
    assert page["sorted"] == ["ascending", None]  # a click sorts that report's table only
    assert page["images"] and all(page["images"])


def test_report_styles_are_scoped_to_one_element() -> None:
    css = """:root { --ink: #000; }
* { box-sizing: border-box; }
body { margin: 0; }
/* a comment { with a brace } */
th, td.num { padding: 1px; }
@media print {
  body { font-size: 10pt; }
  nav.toc, a.download { display: none; }
}
"""
    scoped = html_module.scoped_css(css, "#r")
    assert scoped == ("#r { --ink: #000; }\n#r * { box-sizing: border-box; }\n#r { margin: 0; }\n"
                      "#r th, #r td.num { padding: 1px; }\n@media print {\n#r { font-size: 10pt; }\n"
                      "#r nav.toc, #r a.download { display: none; }\n}\n")
    with pytest.raises(ValueError, match="unbalanced"):
        html_module.scoped_css("p { margin: 0;", "#r")


# -- fair comparisons: the tuning protocol, time-to-target and performance profiles ----------------

FAIR_SECTIONS = ["leaderboard", "aggregates", "comparisons", "statistics", "effects", "interactions", "convergence",
                 "learning-rate", "speed", "robustness", "tuning", "time-to-target", "performance-profile", "overview"]
TUNING_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]  # budget 5, log-spaced over the declared range 1e-4 .. 1
# Final validation (and test) metric per task, optimizer and protocol; the tuned learning rate.
FAIR_PLAN = {("spirals", "adam"): (0.85, 0.92, 1e-2), ("spirals", "sgd"): (0.7, 0.9, 1e-1),
             ("sine", "adam"): (0.28, 0.2, 1e-2), ("sine", "sgd"): (0.5, 0.25, 1.0)}  # sgd on sine: range edge
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05}


def fair_results(protocol_result: Callable[..., Any]) -> list[Any]:
    """2 tasks x 2 optimizers, each untuned (3 seeds), tuned over 5 learning rates at seed 0, and
    rerun at the best over 3 seeds; validation curves climb to the final metric over 4 epochs."""
    results = []
    for (task, optimizer), (default, tuned, best_lr) in FAIR_PLAN.items():
        shape = [0.6, 0.8, 0.95, 1.0] if task == "spirals" else [2.0, 1.5, 1.1, 1.0]
        times = [0.2] * 4 if optimizer == "adam" else [0.1] * 4
        for seed in range(3):
            for role, lr, final in (("default", DEFAULT_LR[optimizer], default), ("final", best_lr, tuned)):
                value = final + (0.01 * seed if task == "spirals" else -0.001 * seed)
                results.append(protocol_result(task, optimizer, lr, seed, value, role=role, budget=5,
                                               val=[value * f for f in shape], epoch_times=times))
        for index, lr in enumerate(TUNING_GRID):
            miss = abs(math.log10(lr) - math.log10(best_lr)) * 0.05
            value = tuned - miss if task == "spirals" else tuned + miss
            results.append(protocol_result(task, optimizer, lr, 0, value, role="tune", budget=5, index=index,
                                           val=[value * f for f in shape], epoch_times=times))
    return results


class Rows(Outline):
    """The outline, plus the number of table body rows per section and the fair-comparison box."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self.aside = ""
        self._in_aside = False
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        if tag == "aside" and dict(attrs).get("id") == "fair-comparison":
            self._in_aside = True
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self.current is not None:
            section = next(name for name, value in self.sections.items() if value is self.current)
            self.rows[section] = self.rows.get(section, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        super().handle_endtag(tag)
        if tag == "aside":
            self._in_aside = False
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        super().handle_data(data)
        if self._in_aside:
            self.aside += data


@pytest.fixture(scope="module")
def fair_report(tmp_path_factory: pytest.TempPathFactory, protocol_result: Callable[..., Any],
                store_writer: Callable[..., Any]) -> str:
    folder = tmp_path_factory.mktemp("fair")
    grid = {"task": ["spirals", "sine"], "optimizer": ["adam", "sgd"], "tune": ["lr"], "budget": 5, "seeds": 3,
            "targets": {"spirals": 0.8, "sine": 0.3}}
    with store_writer(folder / "fair.db", fair_results(protocol_result), grid=grid) as store:
        return build_report(store, ["run-1"], BUILTINS()).html


def test_fair_comparison_sections_and_box(fair_report: str) -> None:
    page = Rows()
    page.feed(fair_report)
    assert list(page.sections) == FAIR_SECTIONS, list(page.sections)
    assert page.dangerous == []
    assert fair_report.index('href="#fair-comparison"') < fair_report.index('href="#overview"')
    assert fair_report.index('<aside id="fair-comparison"') < fair_report.index('<section id="overview"')
    box = " ".join(page.aside.split())
    assert box.startswith("Fair comparison")
    assert ("sine: sgd / tuned: the selected learning rate 1 lies at the upper edge of its search range "
            "0.0001 – 1") in box
    assert "spirals: tuned configurations (budget 5) are ranked together with untuned defaults (budget 0)" in box
    assert "Nothing to warn about" not in box
    s = page.sections
    assert "By protocol: 12 untuned, 20 tuning and 12 tuned trials." in " ".join(s["overview"]["text"].split())
    # The leaderboard ranks 2 optimizers x (default, tuned) per task; no tuning trial appears in it.
    assert page.rows["leaderboard"] == 8 and "0.0001" not in s["leaderboard"]["text"]
    assert s["tuning"]["h3"] == ["spirals: test accuracy, higher is better", "sine: test rmse, lower is better",
                                 "Budget accounting"]
    assert s["tuning"]["tables"] == 3 and page.rows["tuning"] == 2 + 2 + 4
    assert "lr=0.01" in s["tuning"]["text"] and "+0.0700" in s["tuning"]["text"]  # adam on spirals: 0.92 - 0.85
    assert s["time-to-target"]["h3"] == ["spirals: validation accuracy ≥ 0.8", "sine: validation rmse ≤ 0.3"]
    assert s["time-to-target"]["tables"] == 2 and "never" in s["time-to-target"]["text"]  # sgd default on both
    assert s["performance-profile"]["images"] == 1 and s["performance-profile"]["tables"] == 1
    assert page.rows["performance-profile"] == 4  # adam and sgd, each untuned and tuned
    assert "adam / tuned" in s["performance-profile"]["text"]
    assert "Tuning trials: validation metric" in s["learning-rate"]["h3"] and s["learning-rate"]["images"] == 1
    assert s["learning-rate"]["notes"] == ["the untuned trials did not sweep the learning rate"]
    assert "protocol" in s["effects"]["h3"] and "protocol" in s["statistics"]["text"]


def test_fair_comparison_box_says_so_when_all_is_fair_and_escapes_names(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    fair = [protocol_result(activation=a, seed=s, metric=m + s / 100) for a, m in (("relu", 0.9), ("tanh", 0.5))
            for s in range(3)]
    with store_writer(tmp_path / "fair.db", fair) as store:
        page = Rows()
        page.feed(build_report(store, ["run-1"], BUILTINS()).html)
    assert " ".join(page.aside.split()).startswith("Fair comparison Nothing to warn about: every ranking compares")
    left_out = page.left_out_sections()
    assert left_out["Tuned against default"] == "no configuration was tuned (tune with --tune lr --budget N)"
    assert left_out["Time to target"].startswith("no task has a target validation metric")
    unfair = [protocol_result(activation=a, seed=s) for a in ("relu", XSS) for s in range(2)]
    with store_writer(tmp_path / "unfair.db", unfair) as store:
        html = build_report(store, ["run-1"], BUILTINS()).html
    page = Rows()
    page.feed(html)
    assert page.dangerous == [] and XSS not in html
    assert f"spirals: fewer than 3 seeds finished ok for relu (2), {XSS} (2)" in page.aside


def test_micro_benchmarks_get_a_table_and_a_plot_per_kind(tmp_path: Path, trial_result: Callable[..., Any],
                                                          store_writer: Callable[..., Any]) -> None:
    with store_writer(tmp_path / "micro.db", [trial_result(seed=0, metric=0.8)]) as store:
        assert "no micro-benchmarks are stored" in outline(
            build_report(store, ["run-1"], BUILTINS()).html).left_out_sections()["Component micro-benchmarks"]
        rows = [{"kind": "activation", "name": name, "plugin": "builtin", "device": "cpu", "shape": "256x256",
                 "size": 65536, "status": "ok", "rounds": 100, "iterations": 1, "median": t, "iqr": t / 10,
                 "mean": t, "min": t, "max": t, "stddev": 0.0, "ops": 1 / t}
                for name, t in (("relu", 2e-5), ("gelu", 6e-5))]
        rows.append({"kind": "optimizer", "name": "adam", "plugin": "builtin", "device": "cpu", "shape": "10000",
                     "size": 10000, "status": "failed", "error": f"boom {XSS}"})
        store.save_micro("micro-1", rows)
        html = build_report(store, ["run-1"], BUILTINS()).html
    section = outline(html).sections["micro"]
    assert section["h3"] == ["activations", "optimizers"]
    assert section["images"] == 1 and section["tables"] == 2  # the failed optimizer has a row, no plot
    assert "60.0" in section["text"] and XSS not in html


def test_the_speed_section_says_which_trials_shared_a_device(tmp_path: Path, trial_result: Callable[..., Any],
                                                             store_writer: Callable[..., Any]) -> None:
    from nnbench.contract.section import Finding, Table
    from nnbench.reporting.sections import company_blocks, device_company

    results = []
    for seed, (concurrent, slots) in enumerate([(1, 1), (1, 1), (3, 1), (2, 2)]):
        result = trial_result(seed=seed, device="cuda:0" if seed < 3 else "cpu")
        result.training = {"mode": "one_by_one", "members": 1, "concurrent": concurrent, "slots": slots}
        results.append(result)
    results.append(trial_result(seed=9, device="cpu"))  # stored before the record existed
    with store_writer(tmp_path / "company.db", results) as store:
        trials = store.trials()
    company = device_company(trials).set_index("device")
    assert company.loc["cuda:0", ["alone", "in_company", "at_once"]].tolist() == [2, 1, 3]
    assert company.loc["cpu", ["alone", "in_company", "at_once"]].tolist() == [1, 0, 2]
    blocks = company_blocks(trials)
    assert any(isinstance(b, Table) for b in blocks)
    warnings = [b.text for b in blocks if isinstance(b, Finding)]
    assert any("2 trials were timed alone and 1 in company" in w for w in warnings)
    assert any("a comparison of devices mixes times measured alone and in company" in w for w in warnings)
    alone = [r for r in results if r.training is None or r.training["concurrent"] <= r.training["slots"]]
    with store_writer(tmp_path / "alone.db", alone) as store:
        assert company_blocks(store.trials()) == []


def test_log_scale_ticks_read_as_plain_numbers(rich_report: tuple[str, Path]) -> None:
    import base64
    import re

    html, _ = rich_report
    figures = [base64.b64decode(data).decode("utf-8")
               for data in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)]
    log_axes = [svg for svg in figures if "(log scale" in svg]
    assert log_axes  # the training-loss curves are drawn on a log scale
    assert not [svg for svg in figures if "mathdefault" in svg]  # mathtext would show as written
    ticks = {text for svg in log_axes for text in re.findall(r"<text[^>]*>([^<]+)</text>", svg)}
    numbers = {text for text in ticks if not re.search(r"[A-Za-z&]", text)}
    assert numbers and all(re.fullmatch(r"\d+(\.\d+)?", text) for text in numbers), numbers
    assert "0.1" in numbers or "1" in numbers  # a power of ten on the log axis, written as a plain number


# -- verdicts, figures and layout a paper can use ---------------------------------------------------


def many_tasks_results(trial_result: Callable[..., Any], tasks: int = 10, seeds: int = 5) -> list[Any]:
    """relu clearly ahead of tanh, gelu level with relu, on ``tasks`` tasks (one of them RMSE)."""
    noise = iter(np.random.default_rng(4).random(10_000))
    names = ["spirals", "moons", "circles", "xor", "iris", "sine", "wine", "breast_cancer", "digits", "parity"][:tasks]
    results = []
    for task in names:
        for seed in range(seeds):
            base = 0.8 + 0.02 * (next(noise) - 0.5)
            for activation, bonus in (("relu", 0.03), ("gelu", 0.03), ("tanh", 0.0)):
                score = base + bonus + 0.004 * (next(noise) - 0.5)
                results.append(trial_result(task, activation, seed=seed, metric=score if task != "sine" else 1 - score,
                                            epochs=3))
    return results


def test_findings_comparisons_and_statistics_tell_the_same_story(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    import re

    from test_promises import section_tables

    with store_writer(tmp_path / "six.db", many_tasks_results(trial_result)) as store:
        html = build_report(store, ["run-1"], BUILTINS()).html
    page = outline(html)
    finding = page.findings[0]
    compared = [row for table in section_tables(html, "comparisons") for row in table]
    across = {(row["first"], row["second"]): row for table in section_tables(html, "statistics") for row in table
              if "Holm-adjusted p" in row}
    # Across ten tasks relu and gelu rank above tanh: the statistics, the comparisons' rows over all tasks and
    # the finding say so alike, with the same adjusted p-values.
    for pair in (("relu", "tanh"), ("gelu", "tanh")):
        over_all = next(r for r in compared if (r["first"], r["second"]) == pair and r["task"] == "all tasks")
        assert across[pair]["verdict"] == over_all["verdict"] == f"{pair[0]} ranks above"
        assert across[pair]["Holm-adjusted p"] == over_all["p (Holm)"]
    assert "across 10 tasks, relu ranks above tanh" in finding and "gelu ranks above tanh" in finding
    assert "relu ranks above gelu" not in finding and "gelu ranks above relu" not in finding  # level: no claim
    # Every per-task verdict of the comparisons' table is claimed in the axis's verdict, and nothing else.
    claims = page.sections["comparisons"]["text"]
    decided = [row for row in compared if row["verdict"].endswith(" better") and row["task"] != "all tasks"]
    assert decided
    for row in decided:
        winner = row["verdict"].removesuffix(" better")
        loser = row["second"] if winner == row["first"] else row["first"]
        assert re.search(rf"{winner} is better than {loser} on [^;]*{row['task']}", claims) or re.search(
            rf"{loser}[^;]* worse than [^;]*{winner}[^;]* on [^;]*{row['task']}", claims), row
    undecided = {(row["first"], row["second"]) for row in compared if row["verdict"] == "undecided"}
    assert all(f"{a} is better than {b}" not in claims and f"{b} is better than {a}" not in claims
               for a, b in undecided if not any((r["first"], r["second"]) == (a, b) for r in decided))
    assert page.sections["statistics"]["images"] == 1  # the diagram over tasks, from the same tests


def test_no_interval_collapses_to_a_point_at_three_seeds(tmp_path: Path, trial_result: Callable[..., Any],
                                                        store_writer: Callable[..., Any]) -> None:
    # relu wins every seed on every task by a wide margin: a percentile bootstrap would say [1.00, 1.00].
    results = [trial_result(task, activation, seed=seed, metric=0.6 + bonus + 0.01 * seed + 0.001 * i)
               for i, task in enumerate(("spirals", "moons")) for activation, bonus in (("relu", 0.2), ("tanh", 0.0))
               for seed in range(3)]
    with store_writer(tmp_path / "three.db", results) as store:
        page = outline(build_report(store, ["run-1"], BUILTINS()).html)
    text = " ".join(section["text"] for section in page.sections.values()) + " ".join(page.findings)
    assert "[1.00,\u00a01.00]" not in text and "[0.00,\u00a00.00]" not in text
    assert "[1.00, 1.00]" not in text and "[0.00, 0.00]" not in text
    assert "1.00 [0.29,\u00a01.00]" in text  # 3 of 3 seeds won: the exact interval
    assert "3 paired seeds" in page.findings[0]


def test_bands_on_a_log_axis_are_computed_in_log_space(tmp_path: Path, trial_result: Callable[..., Any],
                                                       store_writer: Callable[..., Any]) -> None:
    from matplotlib.collections import PolyCollection
    from scipy import stats as scipy_stats

    losses = [0.02, 0.5, 3.0]  # spread over two orders of magnitude: an arithmetic band would go below zero
    results = [trial_result(seed=seed, metric=0.8, epochs=2, curve=[(loss * 2, 0.5), (loss, 0.8)])
               for seed, loss in enumerate(losses)]
    with store_writer(tmp_path / "log.db", results) as store:
        frame = analysis.convergence(store.trials(), store.epochs())
    last = frame[frame["epoch"] == 2].iloc[0]
    logs = np.log(losses)
    half = scipy_stats.t.ppf(0.975, 2) * logs.std(ddof=1) / np.sqrt(3)
    assert last["train_loss_geomean"] == pytest.approx(np.exp(logs.mean()))
    assert (last["train_loss_geo_low"], last["train_loss_geo_high"]) == pytest.approx(
        (np.exp(logs.mean() - half), np.exp(logs.mean() + half)))
    assert last["train_loss_low"] < 0 < last["train_loss_geo_low"]  # what a linear band would have drawn
    figure = plots.convergence(frame)
    loss_axes = figure.axes[1]
    assert loss_axes.get_yscale() == "log"
    band = next(c for c in loss_axes.collections if isinstance(c, PolyCollection))
    heights = band.get_paths()[0].vertices[:, 1]
    assert heights.min() == pytest.approx(frame["train_loss_geo_low"].min()) and heights.min() > 0


def test_sections_that_need_several_tasks_or_seeds_are_left_out(tmp_path: Path, trial_result: Callable[..., Any],
                                                                 store_writer: Callable[..., Any]) -> None:
    from conftest import fake_protocol_result

    results = [fake_protocol_result(optimizer=optimizer, seed=seed, metric=final, val=val)
               for optimizer, final, val in (("adam", 0.9, [0.6, 0.9]), ("sgd", 0.55, [0.5, 0.55]))
               for seed in range(3)]
    grid = {"task": ["spirals"], "targets": {"spirals": 0.85}}
    with store_writer(tmp_path / "one-task.db", results, grid=grid) as store:
        page = outline(build_report(store, ["run-1"], BUILTINS()).html)
    assert "performance-profile" not in page.sections and "Performance profile" in page.left_out
    assert "profile over tasks needs two or more" in page.left_out_sections()["Performance profile"]
    assert "statistics" not in page.sections  # one task: nothing to say across tasks
    ranked = page.sections["time-to-target"]
    # sgd never reached 0.85: named once under the table, not a row of "never".
    assert ranked["tables"] == 1 and "never" not in ranked["text"].split("Never reached")[0].split("adam")[1]
    assert "Never reached ≥ 0.85 on any seed (1): sgd." in ranked["text"]
    with store_writer(tmp_path / "one-seed.db", [trial_result(activation=a, seed=0, metric=m)
                                                 for a, m in (("relu", 0.9), ("tanh", 0.7))]) as store:
        page = outline(build_report(store, ["run-1"], BUILTINS()).html)
    assert "comparisons" not in page.sections
    assert "every comparison rests on one paired seed" in page.left_out_sections()["Comparisons"]


def test_every_figure_is_written_as_svg_and_pdf_for_a_paper(rich_report: tuple[str, Path], tmp_path: Path,
                                                            trial_result: Callable[..., Any],
                                                            store_writer: Callable[..., Any]) -> None:
    import re

    from click.testing import CliRunner

    from nnbench.cli import cli

    store = tmp_path / "figures.db"
    store_writer(store, rich_results(trial_result)).close()
    folder = tmp_path / "figures"
    result = CliRunner().invoke(cli, ["report", "--store", str(store), "-o", str(tmp_path / "r.html"),
                                      "--figures", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    html, _ = rich_report
    shown = len(re.findall(r"<figure>", (tmp_path / "r.html").read_text()))
    svgs, pdfs = sorted(folder.glob("*.svg")), sorted(folder.glob("*.pdf"))
    assert len(svgs) == len(pdfs) == shown == 6 and f"figures: {2 * shown} files" in result.output
    assert [p.stem for p in svgs] == [p.stem for p in pdfs] and svgs[0].name.startswith("01-aggregates-")
    for svg, pdf in zip(svgs, pdfs, strict=True):
        assert pdf.read_bytes().startswith(b"%PDF-")
        width = float(re.search(r'<svg[^>]* width="([\d.]+)pt"', svg.read_text()).group(1))
        assert width in (plots.COLUMN_WIDTH * 72, plots.TEXT_WIDTH * 72)  # one column, or the text width
        assert "<text" in svg.read_text() or "glyph" in svg.read_text()
    bad = CliRunner().invoke(cli, ["report", "--store", str(store), "--figures", str(tmp_path / "r.html")])
    assert bad.exit_code != 0


WIDTH_CHECK = """JSON.stringify({
  overflowing: Array.from(document.querySelectorAll(".table-wrap"))
    .filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.closest("section").id),
  page: [document.documentElement.scrollWidth, window.innerWidth],
  verdicts: Array.from(document.querySelectorAll("#comparisons table")).map(t => {
    const column = Array.from(t.tHead.rows[0].cells).findIndex(th => th.textContent === "verdict");
    return Math.max(...Array.from(t.tBodies[0].rows).map(r => r.cells[column].getBoundingClientRect().right));
  }),
})"""


def test_wide_tables_fit_a_page_1400_pixels_wide(tmp_path: Path, trial_result: Callable[..., Any],
                                                 store_writer: Callable[..., Any]) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed; install it with `apt-get install -y chromium`")
    names = ["relu", "leaky_relu_0.2", "squareplus", "swish_beta", "mish", "gelu_tanh_approx", "softsign", "tanh"]
    results = [trial_result(task, name, seed=seed, metric=0.7 + 0.01 * i + 0.02 * ((seed * 7 + i) % 3))
               for task in ("spirals", "sine") for i, name in enumerate(names) for seed in range(4)]
    with store_writer(tmp_path / "wide.db", results) as store:
        path = build_report(store, ["run-1"], BUILTINS()).save(tmp_path / "wide.html")
    browser = DevTools(chromium, tmp_path / "profile")
    try:
        session = browser.open(path.as_uri())
        browser.send("Emulation.setDeviceMetricsOverride", session, width=1400, height=900, deviceScaleFactor=1,
                     mobile=False)
        browser.events.clear()  # the next load is the one laid out 1,400 pixels wide
        browser.send("Page.reload", session)
        browser.wait_for("Page.loadEventFired")
        page = browser.evaluate(session, WIDTH_CHECK)
    finally:
        browser.close()
    assert page["overflowing"] == [] and page["page"][0] <= page["page"][1]
    assert page["verdicts"] and all(right <= 1400 for right in page["verdicts"])  # the verdict column is on screen


def test_the_across_task_table_prints_each_interval_in_its_own_column(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    from test_promises import section_tables

    from nnbench.analysis import intervals

    with store_writer(tmp_path / "across.db", many_tasks_results(trial_result, tasks=3, seeds=4)) as store:
        html = build_report(store, ["run-1"], BUILTINS()).html
        trials, runs = store.trials(), store.runs()
    scored, _ = intervals.normalized_scores(trials, runs)
    board = intervals.aggregates(scored.assign(configuration=intervals.across_task_configurations(scored)))
    (printed,) = section_tables(html, "aggregates")
    assert [row["configuration"] for row in printed] == list(board["configuration"])
    for row, (_, expected) in zip(printed, board.iterrows(), strict=True):
        for column, name in (("mean 95% CI", "mean"), ("gap 95% CI", "gap"), ("IQM 95% CI", "iqm")):
            assert row[column] == intervals.interval_text(expected[f"{name}_low"], expected[f"{name}_high"])
        assert row["mean"] == f"{expected['mean']:.3f}" and row["IQM 95% CI"] == "–"  # four seeds: no bootstrap
        assert row["mean 95% CI"] != row["gap 95% CI"]
