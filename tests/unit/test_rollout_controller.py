"""The rollout controller on synthetic metric windows: promote the better, roll back the worse."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from online_models.registry import ModelRegistry
from online_models.registry.testing import InMemoryRedis
from online_models.routing import ArmWindow, RolloutGate, RoutingPolicy
from retrain.rollout import (
    Decision,
    MetricWindow,
    RolloutController,
    RolloutState,
    UnknownErrorSignalError,
    approval_step,
    error_signal,
)
from retrain.rollout_cli import RolloutRunner, rollout
from streams.events import MetricsEvent, ModelEventEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MODEL = "voice_intent"
SECRET = b"a unit-test secret, 32 bytes ok!"


def windows_for(
    rng: random.Random,
    version: int,
    start: datetime,
    *,
    requests: int,
    redo_rate: float,
    segments: tuple[str, ...] = ('{"locale":"en-GB"}', '{"locale":"de-DE"}'),
    latency_ms: float = 120.0,
    window_s: float = 10.0,
    labelled_accuracy: float | None = None,
) -> list[MetricWindow]:
    """One window per segment, ``requests`` split between them, redo drawn per request."""
    out = []
    for i, segment in enumerate(segments):
        n = requests // len(segments) + (i < requests % len(segments))
        if n == 0:
            continue
        redo = sum(rng.random() < redo_rate for _ in range(n))
        values: dict[str, float | None] = {
            "count": float(n),
            "outcomes": float(n),
            "redo_rate": redo / n,
            "null_rate": 0.0,
            "latency_p99_ms": latency_ms,
            "accuracy": None,
        }
        if labelled_accuracy is not None:
            correct = sum(rng.random() < labelled_accuracy for _ in range(n))
            values.update(accuracy=correct / n, label_coverage=1.0)
        out.append(
            MetricWindow(version, start, start + timedelta(seconds=window_s), segment, values)
        )
    return out


def drive(
    controller: RolloutController,
    decision: Decision,
    rates: dict[int, float],
    *,
    seed: int = 0,
    per_window: int = 1000,
    max_windows: int = 200,
) -> list[Decision]:
    """Feed windows of routed traffic (shares from the policy) until the rollout ends."""
    rng = random.Random(seed)
    decisions = [decision]
    state = decision.state
    assert state is not None
    windows: list[MetricWindow] = []
    k = 0
    for _ in range(max_windows):
        policy = state.policy
        if policy.challenger is None:
            break
        assert state.step_started_at is not None
        start = state.step_started_at + timedelta(seconds=10 * k)
        shares = (
            {policy.champion: 1.0, policy.challenger: 1.0}
            if policy.phase == "shadow"
            else {policy.champion: 1 - policy.fraction, policy.challenger: policy.fraction}
        )
        for version, share in shares.items():
            assert version is not None
            windows += windows_for(
                rng, version, start, requests=round(per_window * share), redo_rate=rates[version]
            )
        decision = controller.evaluate(state, windows, now=start + timedelta(seconds=15))
        decisions.append(decision)
        assert decision.state is not None
        if decision.new_step:
            windows, k = [], 0
        else:
            k += 1
        state = decision.state
    return decisions


def actions(decisions: list[Decision]) -> list[str]:
    return [a for d in decisions for a in d.actions]


@pytest.fixture
def controller() -> RolloutController:
    return RolloutController(RolloutGate(min_samples=400), error_signal="redo_rate")


def test_better_challenger_is_promoted_through_every_step(controller: RolloutController) -> None:
    started = controller.start(None, MODEL, 2, champion=1, now=T0, retrain_request_id="rr-9")
    decisions = drive(controller, started, {1: 0.12, 2: 0.08})
    events = [e for d in decisions for e in d.events]
    assert [e.data.action for e in events] == [
        "shadow_started",
        "canary_started",
        "ramp_step",
        "ramp_step",
        "ramp_step",
        "promoted",
    ]
    assert [e.data.traffic["challenger"] for e in events] == [0.0, 0.05, 0.25, 0.5, 1.0, 0.0]
    assert all(e.data.retrain_request_id == "rr-9" for e in events)
    times = [e.time for e in events]
    assert times == sorted(times) and len(set(times)) == len(times)
    # every step says when it began, and the gate that let it begin says what it saw
    for event in events[1:-1]:
        assert event.data.details["step_started_at"] == event.time.isoformat()
        assert event.data.details["challenger_requests"] >= 400
    final = decisions[-1]
    assert final.state is not None
    assert final.state.policy.champion == 2 and final.state.policy.challenger is None
    assert [(c.action, c.version) for c in final.registry] == [("promote", 2)]
    assert len({e.id for e in events}) == len(events)


def test_worse_challenger_is_rolled_back_at_the_first_gate(controller: RolloutController) -> None:
    started = controller.start(None, MODEL, 2, champion=1, now=T0)
    decisions = drive(controller, started, {1: 0.10, 2: 0.16})
    assert actions(decisions) == ["shadow_started", "rolled_back"]
    rolled = decisions[-1]
    assert rolled.state is not None
    assert rolled.state.policy.champion == 1 and rolled.state.policy.rolled_back == (2,)
    assert [(c.action, c.version) for c in rolled.registry] == [("rollback", 2)]
    event = rolled.events[0]
    assert event.data.traffic == {"champion": 1.0, "challenger": 0.0}
    assert event.data.reason.startswith("gate failed: error rate")
    assert "error rate" in event.data.details["gate_reason"]
    assert event.data.details["challenger_error_rate"] > event.data.details["champion_error_rate"]


def test_worse_challenger_in_canary_is_rolled_back_without_ramping(
    controller: RolloutController,
) -> None:
    """Equal in shadow (labels say nothing new), worse once it answers users."""
    started = controller.start(None, MODEL, 2, champion=1, now=T0)
    shadow = drive(controller, started, {1: 0.10, 2: 0.10}, max_windows=1)
    assert actions(shadow) == ["shadow_started", "canary_started"]
    decisions = drive(controller, shadow[-1], {1: 0.10, 2: 0.25})
    assert actions(decisions)[-1] == "rolled_back"
    assert "ramp_step" not in actions(decisions)


def test_gate_waits_below_min_samples_then_decides(controller: RolloutController) -> None:
    state = controller.start(None, MODEL, 2, champion=1, now=T0).state
    assert state is not None
    rng = random.Random(1)
    start = T0 + timedelta(seconds=5)
    windows = windows_for(rng, 1, start, requests=300, redo_rate=0.1) + windows_for(
        rng, 2, start, requests=300, redo_rate=0.1
    )
    waiting = controller.evaluate(state, windows, now=start + timedelta(seconds=15))
    assert waiting.events == () and not waiting.changed
    assert waiting.gate is not None and waiting.gate.verdict == "wait"
    assert "300 of 400 samples" in waiting.note
    # a window of one arm alone is not the same traffic period: it does not count
    later = start + timedelta(seconds=10)
    lone = windows_for(rng, 2, later, requests=500, redo_rate=0.1)
    assert controller.evaluate(state, windows + lone, now=later).gate.verdict == "wait"
    paired = windows_for(rng, 1, later, requests=200, redo_rate=0.1)
    decided = controller.evaluate(state, windows + lone + paired, now=later)
    assert decided.actions == ["canary_started"]


def test_windows_outside_the_step_are_ignored(controller: RolloutController) -> None:
    state = controller.start(None, MODEL, 2, champion=1, now=T0).state
    assert state is not None
    rng = random.Random(2)
    before = T0 - timedelta(seconds=5)  # straddles the start: mixed traffic
    minute = T0 + timedelta(seconds=60)
    noise = (
        windows_for(rng, 1, before, requests=5000, redo_rate=0.1)
        + windows_for(rng, 2, before, requests=5000, redo_rate=0.9)
        + windows_for(rng, 2, minute, requests=5000, redo_rate=0.9, window_s=60)
        + windows_for(rng, 1, minute, requests=5000, redo_rate=0.1, window_s=60)
        + windows_for(rng, 3, minute, requests=5000, redo_rate=0.9)
    )
    decision = controller.evaluate(state, noise, now=T0 + timedelta(minutes=3))
    assert decision.gate is not None and decision.gate.verdict == "wait"
    assert decision.gate.checks[0].champion == 0 and decision.gate.checks[0].challenger == 0


def test_approval_gates_each_step_and_a_failure_still_rolls_back() -> None:
    controller = RolloutController(
        RolloutGate(min_samples=400), error_signal="redo_rate", require_approval=True
    )
    started = controller.start(None, MODEL, 2, champion=1, now=T0)
    decisions = drive(controller, started, {1: 0.12, 2: 0.08}, max_windows=3)
    assert actions(decisions) == ["shadow_started", "approval_required"]
    waiting = decisions[-1].state
    assert waiting is not None
    assert waiting.policy.status == "awaiting_approval" and waiting.policy.fraction == 0.0
    request = [d for d in decisions if d.registry and d.registry[0].action == "request_approval"]
    assert request[0].registry[0].step == "canary-5"
    required = next(e for d in decisions for e in d.events if e.data.action == "approval_required")
    assert "driftloop models approve voice_intent 2 --step canary-5" in required.data.reason

    approved = controller.approve(waiting, now=T0 + timedelta(minutes=10), approved_by="ana")
    assert approved.actions == ["approved", "canary_started"]
    assert approved.events[0].data.details["approved_by"] == "ana"
    assert approved.state is not None and approved.state.policy.fraction == 0.05
    assert approved.state.step_started_at == T0 + timedelta(minutes=10)

    # the next step waits for approval again; a challenger that turns worse meanwhile is
    # rolled back without anyone's approval
    more = drive(controller, approved, {1: 0.12, 2: 0.08}, max_windows=30)
    assert actions(more)[-1] == "approval_required"
    pending = more[-1].state
    assert pending is not None and pending.policy.pending_step == "ramp:0.25"
    worse = drive(controller, more[-1], {1: 0.10, 2: 0.30})
    assert actions(worse)[-1] == "rolled_back"
    assert worse[-1].state is not None and worse[-1].state.policy.pending_step is None


def test_full_traffic_step_is_judged_against_the_champion_reference(
    controller: RolloutController,
) -> None:
    started = controller.start(None, MODEL, 2, champion=1, now=T0)
    decisions = drive(controller, started, {1: 0.10, 2: 0.10})
    at_full = next(d.state for d in decisions if d.state and d.state.policy.fraction == 1.0)
    assert at_full.reference["redo_rate"].requests >= 400
    # at 100 % a challenger far worse than the champion's last window is rolled back
    rng = random.Random(5)
    start = at_full.step_started_at + timedelta(seconds=1)
    bad = windows_for(rng, 2, start, requests=1000, redo_rate=0.3)
    decision = controller.evaluate(at_full, bad, now=start + timedelta(seconds=20))
    assert decision.actions == ["rolled_back"]


def test_blue_green_goes_shadow_switch_promote_and_a_worse_switch_goes_straight_back() -> None:
    controller = RolloutController(
        RolloutGate(min_samples=400), error_signal="redo_rate", strategy="blue_green"
    )
    started = controller.start(None, MODEL, 2, champion=1, now=T0)
    decisions = drive(controller, started, {1: 0.12, 2: 0.08})
    events = [e for d in decisions for e in d.events]
    assert [e.data.action for e in events] == ["shadow_started", "ramp_step", "promoted"]
    switch = events[1]
    assert switch.data.traffic == {"champion": 0.0, "challenger": 1.0}
    assert switch.data.details["phase"] == "switched"
    assert switch.data.reason == "blue/green switch"
    assert decisions[-1].state is not None and decisions[-1].state.policy.champion == 2

    # a challenger worse once it answers everyone: one switch back, the champion was warm
    started = controller.start(None, MODEL, 2, champion=1, now=T0)
    shadow = drive(controller, started, {1: 0.10, 2: 0.10}, max_windows=1)
    assert actions(shadow) == ["shadow_started", "ramp_step"]
    assert shadow[-1].state is not None and shadow[-1].state.policy.phase == "switched"
    worse = drive(controller, shadow[-1], {1: 0.10, 2: 0.30})
    assert actions(worse)[1:] == ["rolled_back"]
    back = worse[-1].state
    assert back is not None and back.policy.route("anyone").answer_version == 1


def test_blue_green_switch_waits_for_approval_when_asked() -> None:
    controller = RolloutController(
        RolloutGate(min_samples=400),
        error_signal="redo_rate",
        strategy="blue_green",
        require_approval=True,
    )
    started = controller.start(None, MODEL, 2, champion=1, now=T0)
    decisions = drive(controller, started, {1: 0.12, 2: 0.08}, max_windows=3)
    assert actions(decisions) == ["shadow_started", "approval_required"]
    required = next(e for d in decisions for e in d.events if e.data.action == "approval_required")
    assert "--step switch" in required.data.reason
    waiting = decisions[-1].state
    assert waiting is not None
    done = controller.approve(waiting, now=T0 + timedelta(minutes=5), approved_by="ops")
    assert done.actions == ["approved", "ramp_step"]
    assert done.state is not None and done.state.policy.traffic["challenger"] == 1.0


def test_cli_refuses_an_unknown_strategy() -> None:
    import typer

    app = typer.Typer()
    app.command()(rollout)
    result = CliRunner().invoke(app, ["--strategy", "big-bang"])
    assert result.exit_code == 2
    assert "use ramp or blue-green" in result.output


def test_start_edge_cases(controller: RolloutController) -> None:
    first = controller.start(None, MODEL, 1, champion=None, now=T0)
    assert first.actions == ["promoted"] and first.state.policy.champion == 1
    assert [c.action for c in first.registry] == ["promote"]

    shadow = controller.start(None, MODEL, 3, champion=2, now=T0)
    state = shadow.state
    assert [c.action for c in shadow.registry] == ["set_challenger"]
    assert controller.start(state, MODEL, 3, champion=2, now=T0).note.endswith("already (shadow)")
    busy = controller.start(state, MODEL, 4, champion=2, now=T0)
    assert busy.events == () and "waits until" in busy.note
    assert "older" in controller.start(None, MODEL, 1, champion=2, now=T0).note

    rolled = RolloutState(RoutingPolicy(MODEL, champion=2).start_shadow(3).rollback("bad"))
    assert "rolled back before" in controller.start(rolled, MODEL, 3, champion=2, now=T0).note
    # a champion moved by hand while serving is taken from the registry
    moved = controller.start(rolled, MODEL, 5, champion=4, now=T0)
    assert moved.state.policy.champion == 4 and moved.state.policy.challenger == 5


def test_auto_error_signal_prefers_labels() -> None:
    controller = RolloutController(RolloutGate(min_samples=400))
    state = controller.start(None, MODEL, 2, champion=1, now=T0).state
    rng = random.Random(3)
    start = T0 + timedelta(seconds=1)
    # the redo rate says the challenger is worse; the labels say it is better: labels win
    labelled = windows_for(
        rng, 1, start, requests=1000, redo_rate=0.05, labelled_accuracy=0.80
    ) + windows_for(rng, 2, start, requests=1000, redo_rate=0.40, labelled_accuracy=0.90)
    decision = controller.evaluate(state, labelled, now=start + timedelta(seconds=20))
    assert decision.actions == ["canary_started"]
    assert decision.events[0].data.details["error_signal"] == "accuracy"
    # without labels it falls back to the redo rate, which fails the challenger
    unlabelled = windows_for(rng, 1, start, requests=1000, redo_rate=0.05) + windows_for(
        rng, 2, start, requests=1000, redo_rate=0.40
    )
    decision = controller.evaluate(state, unlabelled, now=start + timedelta(seconds=20))
    assert decision.actions == ["rolled_back"]
    assert decision.events[0].data.details["error_signal"] == "redo_rate"


def test_unknown_error_signal_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownErrorSignalError, match="valid signals: auto, accuracy"):
        RolloutController(error_signal="redos")
    with pytest.raises(UnknownErrorSignalError):
        error_signal("nope")
    assert approval_step("ramp:0.5") == "ramp-50"


# --------------------------------------------------------------------------- the I/O shell


class Events(list):
    """A sink that keeps what was published; ``fail_flushes`` flushes raise first."""

    def __init__(self, fail_flushes: int = 0) -> None:
        super().__init__()
        self.fail_flushes = fail_flushes

    def send(self, event: ModelEventEvent) -> None:
        self.append(event)

    def flush(self, timeout: float | None = None) -> None:
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise RuntimeError("broker went away")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def setup_registry() -> tuple[InMemoryRedis, ModelRegistry]:
    client = InMemoryRedis()
    registry = ModelRegistry(client, SECRET, "ns:")
    registry.register_version(MODEL, {"w": 1}, alias="champion")
    registry.register_version(MODEL, {"w": 2}, alias="challenger")
    return client, registry


def published(version: int) -> ModelEventEvent:
    return ModelEventEvent.new(
        {"model": MODEL, "version": version, "action": "published", "retrain_request_id": "rr-1"},
        source="urn:driftloop:retrain",
    )


def metrics_events(windows: list[MetricWindow]) -> list[MetricsEvent]:
    return [
        MetricsEvent.new(
            {
                "model": MODEL,
                "model_version": str(w.version),
                "segment": json.loads(w.segment) if w.segment else None,
                "window_start": w.start,
                "window_end": w.end,
                "count": int(w.values["count"] or 0),
                "metrics": dict(w.values),
            }
        )
        for w in windows
    ]


def test_runner_state_survives_a_restart_and_a_revised_window_replaces_the_old() -> None:
    client, registry = setup_registry()
    controller = RolloutController(RolloutGate(min_samples=400), error_signal="redo_rate")
    clock, sink = Clock(), Events()
    runner = RolloutRunner(controller, client, registry, sink, namespace="ns:", clock=clock)
    runner.handle(published(2))
    assert registry.get_alias(MODEL, "challenger") == 2
    rng = random.Random(4)
    start = T0 + timedelta(seconds=1)
    for event in metrics_events(
        windows_for(rng, 1, start, requests=300, redo_rate=0.1)
        + windows_for(rng, 2, start, requests=300, redo_rate=0.1)
    ):
        runner.handle(event)
    runner.evaluate()
    assert [e.data.action for e in sink] == ["shadow_started"]

    # a new process: everything it knows comes from Redis
    clock.now = T0 + timedelta(minutes=1)
    again = RolloutRunner(controller, client, registry, sink, namespace="ns:", clock=clock)
    assert again.recover() == [MODEL]
    assert again.state(MODEL).policy.phase == "shadow"
    assert again.state(MODEL).step_started_at == T0
    # the monitor revises the challenger's window (same key): it replaces the earlier one
    revised = windows_for(rng, 2, start, requests=600, redo_rate=0.1)
    for event in metrics_events(revised + windows_for(rng, 1, start, requests=600, redo_rate=0.1)):
        again.handle(event)
    assert len(client.hgetall(f"ns:rollout:windows:{MODEL}")) == 4
    again.evaluate()
    assert [e.data.action for e in sink] == ["shadow_started", "canary_started"]
    assert sink[-1].time == clock.now
    stored = RoutingPolicy.from_json(client.get(f"ns:routing:{MODEL}"))
    assert stored.phase == "canary" and stored.fraction == 0.05
    assert client.hgetall(f"ns:rollout:windows:{MODEL}") == {}  # the new step starts afresh


def test_interrupted_transition_is_finished_by_the_next_process() -> None:
    client, registry = setup_registry()
    controller = RolloutController(RolloutGate(min_samples=10), error_signal="redo_rate")
    broken = Events(fail_flushes=1)
    runner = RolloutRunner(controller, client, registry, broken, namespace="ns:", clock=Clock())
    with pytest.raises(RuntimeError):
        runner.handle(published(2))
    # the routing state was written before the event: the router may already shadow
    assert RoutingPolicy.from_json(client.get(f"ns:routing:{MODEL}")).phase == "shadow"
    assert json.loads(client.get(f"ns:rollout:state:{MODEL}"))["outbox"]["events"]

    sink = Events()
    again = RolloutRunner(controller, client, registry, sink, namespace="ns:", clock=Clock())
    again.recover()
    assert [e.data.action for e in sink] == ["shadow_started"]
    assert sink[0].id == broken[0].id  # the same event: consumers drop the duplicate
    assert json.loads(client.get(f"ns:rollout:state:{MODEL}"))["outbox"] is None


def test_runner_polls_registry_approvals() -> None:
    client, registry = setup_registry()
    controller = RolloutController(
        RolloutGate(min_samples=100), error_signal="redo_rate", require_approval=True
    )
    clock, sink = Clock(), Events()
    runner = RolloutRunner(controller, client, registry, sink, namespace="ns:", clock=clock)
    runner.handle(published(2))
    rng = random.Random(6)
    start = T0 + timedelta(seconds=1)
    for event in metrics_events(
        windows_for(rng, 1, start, requests=500, redo_rate=0.1)
        + windows_for(rng, 2, start, requests=500, redo_rate=0.1)
    ):
        runner.handle(event)
    runner.evaluate()
    assert [e.data.action for e in sink] == ["shadow_started", "approval_required"]
    assert [(a.step, a.state) for a in registry.approvals(MODEL, 2)] == [("canary-5", "pending")]
    runner.poll_approvals()
    assert len(sink) == 2  # nobody approved yet
    registry.approve(MODEL, 2, "canary-5", approved_by="ana")
    clock.now = T0 + timedelta(minutes=2)
    runner.poll_approvals()
    assert [e.data.action for e in sink][-2:] == ["approved", "canary_started"]
    assert sink[-1].time == clock.now
    assert RoutingPolicy.from_json(client.get(f"ns:routing:{MODEL}")).fraction == 0.05


def test_cli_refuses_an_unknown_error_signal() -> None:
    import typer

    app = typer.Typer()
    app.command()(rollout)
    result = CliRunner().invoke(app, ["--error-signal", "typos"])
    assert result.exit_code == 2
    assert "valid signals: auto, accuracy, error_rate, redo_rate" in result.output


def test_reference_arm_round_trips() -> None:
    state = RolloutState(
        RoutingPolicy(MODEL, champion=1).start_shadow(2),
        T0,
        "rr-1",
        {"redo_rate": ArmWindow(10, 1, 0, 99.0)},
    )
    assert RolloutState.from_json(state.to_json()) == state


def test_runner_says_what_a_step_waits_for_every_half_minute() -> None:
    client, registry = setup_registry()
    controller = RolloutController(RolloutGate(min_samples=400), error_signal="redo_rate")
    clock, sink, lines = Clock(), Events(), []
    runner = RolloutRunner(
        controller, client, registry, sink, namespace="ns:", clock=clock, log=lines.append
    )
    runner.handle(published(2))
    rng = random.Random(5)
    for second in range(0, 70, 10):
        clock.now = T0 + timedelta(seconds=second + 1)
        start = T0 + timedelta(seconds=second + 1)
        for event in metrics_events(
            windows_for(rng, 1, start, requests=20, redo_rate=0.1)
            + windows_for(rng, 2, start, requests=20, redo_rate=0.1)
        ):
            runner.handle(event)
        runner.evaluate()
    waiting = [line for line in lines if "waiting" in line]
    # at 1 s, 31 s and 61 s: 20, 80 and 140 samples per arm of 400
    assert [line.split("(")[1] for line in waiting] == [
        f"champion has {n} of 400 samples, challenger has {n} of 400 samples)"
        for n in (20, 80, 140)
    ]
    assert all(line.startswith(f"{MODEL} v2 at shadow 0%") for line in waiting)
