"""The pytest plugin (entry point `pytest11: turnout`): cassettes, faults and trials for tests of
agents that call models through turnout.

Fixtures: `turnout_gateway` (start an in-process gateway: replaying the test's cassette, with the
test's faults), `turnout_cassette`, `turnout_faults`, `turnout_trial`.
Markers: `cassette(name=None, mode=None)`, `faults(*faults)`, `trials(n=, threshold=,
confidence=)` or `trials(sprt=(p0, p1), alpha=, beta=, n=max)`.

Loaded into every pytest run of an environment that has turnout, so importing it stays cheap:
the gateway machinery is imported when a fixture first needs it.

Under pytest-xdist each worker sends its trials results to the controller, which prints the one
table and writes the one report; cassettes shared by tests on several workers are merged on save.
"""

from __future__ import annotations

import inspect
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from turnout.testing.cassette import Cassette, CassetteError, Mode
from turnout.testing.faults import FaultPlan
from turnout.testing.trials import TrialsResult, TrialsSpec, run_trials

if TYPE_CHECKING:
    from turnout.config import Config
    from turnout.testing.inprocess import InProcessGateway


@dataclass
class TrialInfo:
    """Which trial of a `trials` test is running (0-based); 0 outside trials."""

    index: int = 0


@dataclass
class _State:
    results: list[TrialsResult] = field(default_factory=list)
    baseline: dict[str, tuple[int, int]] = field(default_factory=dict)


_STATE = pytest.StashKey[_State]()
_PER_TRIAL = pytest.StashKey[list[Callable[[int], None]]]()
_AFTER_TRIAL = pytest.StashKey[list[Callable[[], None]]]()
_PLANS = pytest.StashKey[list[FaultPlan]]()
_WORKER_RESULTS = "turnout_trials"  # key in pytest-xdist's workeroutput


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("turnout", "turnout: record/replay, faults, statistical verdicts")
    group.addoption(
        "--turnout-record-mode",
        choices=[m.value for m in Mode],
        default=None,
        help="cassette mode: none (replay only, the default), once, new_episodes, all",
    )
    group.addoption(
        "--turnout-cassette-dir",
        default=None,
        help="where cassettes live (default: cassettes/ beside each test module)",
    )
    group.addoption("--turnout-report", default=None, help="write the trials report as JSON here")
    group.addoption(
        "--turnout-baseline",
        default=None,
        help="an earlier trials report: flag tests whose pass rate regressed against it",
    )
    group.addoption(
        "--turnout-inconclusive",
        choices=["fail", "pass"],
        default="fail",
        help="what an INCONCLUSIVE trials verdict does to the test (default: fail)",
    )
    parser.addini("turnout_record_mode", "default cassette mode", default="none")
    parser.addini("turnout_cassette_dir", "default cassette directory", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "trials(n=20, threshold=None, confidence=0.95, sprt=None, alpha=0.05, beta=0.05, "
        "pass_k=(1,), margin=0.0): run the test repeatedly and judge its pass rate",
    )
    config.addinivalue_line(
        "markers", "cassette(name=None, mode=None): this test's cassette file name and mode"
    )
    config.addinivalue_line(
        "markers", "faults(*faults): model-call and tool faults, by position (turnout.testing)"
    )
    state = _State()
    baseline = config.getoption("--turnout-baseline", None)
    if baseline:
        from turnout.testing.report import load_baseline

        state.baseline = load_baseline(baseline)
    config.stash[_STATE] = state


# -- cassettes ------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "test"


def cassette_path(request: pytest.FixtureRequest) -> Path:
    config = request.config
    marker = request.node.get_closest_marker("cassette")
    name = (marker.args[0] if marker and marker.args else None) or (
        marker.kwargs.get("name") if marker else None
    )
    module = Path(str(request.node.path))
    root = config.getoption("--turnout-cassette-dir") or config.getini("turnout_cassette_dir")
    base = Path(root) if root else module.parent / "cassettes"
    if not base.is_absolute():
        base = config.rootpath / base
    return base / module.stem / f"{_safe(name or request.node.name)}.json"


def cassette_mode(request: pytest.FixtureRequest) -> Mode:
    marker = request.node.get_closest_marker("cassette")
    if marker is not None and marker.kwargs.get("mode"):
        return Mode(marker.kwargs["mode"])
    option = request.config.getoption("--turnout-record-mode")
    return Mode(option or request.config.getini("turnout_record_mode") or "none")


@pytest.fixture
def turnout_cassette(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """This test's cassette (one JSON file per test); saved, and misses reported, at teardown."""
    if request.node.get_closest_marker("trials") is not None:
        pytest.fail(
            "a `trials` test measures live behaviour: its repeats are never served from a "
            "cassette", pytrace=False,
        )  # fmt: skip
    try:
        cassette = Cassette.load(
            cassette_path(request), cassette_mode(request), owner=request.node.nodeid
        )
    except CassetteError as exc:
        broken = str(exc)
    else:
        broken = ""
    if broken:
        pytest.fail(broken, pytrace=False)
    yield cassette
    cassette.save()
    if cassette.misses:
        pytest.fail("\n\n".join(cassette.misses), pytrace=False)


# -- faults and trials ----------------------------------------------------------------------


def _per_trial(node: Any, hook: Callable[[int], None]) -> None:
    hooks = node.stash.setdefault(_PER_TRIAL, [])
    hooks.append(hook)


@pytest.fixture
def turnout_faults(request: pytest.FixtureRequest) -> Iterator[FaultPlan]:
    """The faults of the test's `faults` marker (empty without one); counters restart with each
    trial. `turnout_faults.wrap_tools(tools)` puts the tool faults into an agent's tools.

    A fault that never fired fails the test (in a trials test, the trial) unless optional."""
    marker = request.node.get_closest_marker("faults")
    plan = FaultPlan(marker.args if marker is not None else ())
    _per_trial(request.node, lambda _: plan.reset())
    request.node.stash.setdefault(_AFTER_TRIAL, []).append(plan.assert_fired)
    request.node.stash.setdefault(_PLANS, []).append(plan)
    yield plan
    if plan.problems:
        pytest.fail("\n".join(plan.problems), pytrace=False)


@pytest.fixture
def turnout_trial(request: pytest.FixtureRequest) -> TrialInfo:
    info = TrialInfo()

    def set_index(i: int) -> None:
        info.index = i

    _per_trial(request.node, set_index)
    return info


@pytest.fixture
def turnout_gateway(
    request: pytest.FixtureRequest, turnout_faults: FaultPlan, tmp_path: Path
) -> Iterator[Callable[..., InProcessGateway]]:
    """Start an in-process gateway: `turnout_gateway(config=None, cassette=None, faults=None)`.

    `config` is a Config, YAML text, or None for the embedded default. The cassette is the
    test's own unless `cassette=False` (live) — and never for a `trials` test. Faults default
    to the test's `faults` marker. In a trials test, the gateways the first trial starts are
    handed back to the later trials that ask for the same: one model in memory, not one a trial;
    a gateway a trial did not ask for again is stopped before the next trial.
    """
    from turnout.testing.inprocess import InProcessGateway

    started: list[InProcessGateway] = []
    trials = request.node.get_closest_marker("trials") is not None
    kept: dict[tuple[object, ...], InProcessGateway] = {}  # (arguments, nth call) → gateway
    calls: dict[tuple[object, ...], int] = {}  # arguments → calls in this trial
    used: set[int] = set()  # the gateways handed out in this trial

    def new_trial(_: int) -> None:
        for slot, gw in list(kept.items()):
            if id(gw) not in used and calls:  # not asked for again in the trial that ended
                gw.stop()
                del kept[slot]
                started.remove(gw)
        calls.clear()
        used.clear()

    _per_trial(request.node, new_trial)

    def start(
        config: Config | str | None = None,
        *,
        cassette: Cassette | bool | None = None,
        faults: FaultPlan | None = None,
    ) -> InProcessGateway:
        if cassette is None:
            cassette = not trials
        if trials and cassette is not False:
            pytest.fail("a `trials` test runs live: its repeats are never served from a cassette")
        chosen: Cassette | None = None
        if cassette is True:
            chosen = request.getfixturevalue("turnout_cassette")
        elif isinstance(cassette, Cassette):
            chosen = cassette
        plan = faults if faults is not None else turnout_faults
        asked = (_identity(config), _identity(cassette), id(plan))
        nth = calls[asked] = calls.get(asked, 0) + 1
        if (asked, nth) in kept:
            used.add(id(kept[(asked, nth)]))
            return kept[(asked, nth)]
        store_dir = tmp_path / f"gateway-{len(started)}"
        store_dir.mkdir(exist_ok=True)
        gw = InProcessGateway(config, cassette=chosen, faults=plan, store_dir=store_dir)
        started.append(gw.start())
        kept[(asked, nth)] = gw
        used.add(id(gw))
        return gw

    yield start
    for gw in started:
        gw.stop()


def _identity(value: object) -> object:
    """Arguments equal by value (YAML text, flags) or by identity (a Config, a Cassette)."""
    return value if value is None or isinstance(value, str | bool) else id(value)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("trials")
    if marker is None:
        return None
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        pytest.fail("trials: async test functions are not supported", pytrace=False)
    spec = TrialsSpec.from_marker(marker.kwargs)
    state = pyfuncitem.config.stash[_STATE]
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    hooks = pyfuncitem.stash.get(_PER_TRIAL, [])
    checks = pyfuncitem.stash.get(_AFTER_TRIAL, [])

    def before_each(i: int) -> None:
        for hook in hooks:
            hook(i)

    def trial(_: int) -> Any:
        try:
            outcome = pyfuncitem.obj(**kwargs)
        except pytest.fail.Exception as exc:  # pytest.fail() inside a trial fails that trial
            raise AssertionError(str(exc)) from None
        for check in checks:  # e.g. a fault that never fired: this trial tested nothing
            check()
        return outcome

    result = run_trials(
        trial,
        spec,
        name=pyfuncitem.nodeid,
        baseline=state.baseline.get(pyfuncitem.nodeid),
        before_each=before_each,
    )
    state.results.append(result)
    passed = result.verdict.value == "PASS" or (
        result.verdict.value == "INCONCLUSIVE"
        and pyfuncitem.config.getoption("--turnout-inconclusive") == "pass"
    )
    if not passed or result.regressed:
        details = "\n".join(f"  {f}" for f in result.failures)
        pytest.fail(result.summary() + ("\n" + details if details else ""), pytrace=False)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that passed with a fault that never fired fails: it did not test that fault.
    (Trials are checked trial by trial; a test that failed already says enough.)"""
    yield  # raises if the test failed
    if item.get_closest_marker("trials") is None:
        unfired = [line for plan in item.stash.get(_PLANS, []) for line in plan.unfired()]
        if unfired:
            pytest.fail("\n".join(unfired), pytrace=False)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is not None and _is_worker(config):
        # Pickled: the results go to the controller of this same run, in this same code.
        config.workeroutput[_WORKER_RESULTS] = pickle.dumps(state.results)  # type: ignore[attr-defined]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: a worker finished; its trials results join the controller's."""
    data = getattr(node, "workeroutput", {}).get(_WORKER_RESULTS)
    state = node.config.stash.get(_STATE, None)
    if data and state is not None:
        state.results.extend(pickle.loads(data))
        state.results.sort(key=lambda r: r.name)  # workers finish in any order


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.results or _is_worker(config):
        return
    from turnout.testing.report import table, write_json

    terminalreporter.write_sep("=", "turnout trials")
    for line in table(state.results):
        terminalreporter.write_line(line)
    path = config.getoption("--turnout-report")
    if path:
        written = write_json(state.results, Path(path))
        terminalreporter.write_line(f"trials report: {written}")
