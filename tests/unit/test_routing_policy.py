"""The routing policy: stable hash split, rollout transitions, approvals, storage as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from online_models.routing import (
    ApprovalError,
    InvalidPolicyError,
    InvalidTransitionError,
    NoChampionError,
    Route,
    RoutingPolicy,
    bucket,
)

KEYS = [f"user-{i}" for i in range(100_000)]


def canary(fraction: float, challenger: int = 2, salt: str = "") -> RoutingPolicy:
    policy = RoutingPolicy("voice_intent", champion=1, salt=salt).start_shadow(challenger)
    return policy.start_canary(fraction)


def challenger_keys(policy: RoutingPolicy, keys: list[str] = KEYS) -> set[str]:
    return {key for key in keys if policy.route(key).route_name == "challenger"}


# --------------------------------------------------------------------------- the split


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.25, 0.5, 0.9])
def test_canary_share_is_within_one_point_of_target_over_100k_keys(fraction):
    share = len(challenger_keys(canary(fraction))) / len(KEYS)
    assert abs(share - fraction) <= 0.01


def test_same_key_same_route_across_instances_and_storage():
    first = canary(0.25)
    second = RoutingPolicy.from_json(canary(0.25).to_json())
    sample = KEYS[:20_000]
    assert [first.route(k) for k in sample] == [second.route(k) for k in sample]


def test_the_split_is_the_same_in_another_process_with_another_hash_seed():
    sample = KEYS[:2_000]
    here = [bucket(k, "s") < 0.3 for k in sample]
    code = (
        "import json; from online_models.routing import bucket; "
        f"print(json.dumps([bucket(k, 's') < 0.3 for k in {sample!r}]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(out.stdout) == here


def test_raising_the_fraction_only_moves_keys_from_champion_to_challenger():
    keys = KEYS[:30_000]
    policy = canary(0.05)
    previous = challenger_keys(policy, keys)
    while policy.fraction < 1.0:
        policy = policy.advance_ramp()
        current = challenger_keys(policy, keys)
        assert previous <= current, "a key left the challenger when its share grew"
        previous = current
    assert len(previous) == len(keys)


def test_each_challenger_draws_its_own_canary_keys_and_salt_redraws_them():
    keys = KEYS[:30_000]
    for_two = challenger_keys(canary(0.1, 2), keys)
    for_three = challenger_keys(canary(0.1, 3), keys)
    overlap = len(for_two & for_three) / len(for_two)
    assert 0.05 < overlap < 0.15  # independent draws overlap by about the fraction
    salted = challenger_keys(canary(0.1, 2, salt="redraw"), keys)
    assert 0.05 < len(for_two & salted) / len(for_two) < 0.15


def test_bucket_is_uniform_in_unit_interval():
    positions = [bucket(k) for k in KEYS]
    assert all(0.0 <= p < 1.0 for p in positions)
    deciles = [0] * 10
    for p in positions:
        deciles[int(p * 10)] += 1
    assert all(abs(d - 10_000) < 400 for d in deciles), deciles


def test_shadow_never_returns_the_challengers_answer():
    policy = RoutingPolicy("voice_intent", champion=7).start_shadow(8)
    routes = {policy.route(k) for k in KEYS[:20_000]}
    assert routes == {Route(7, "champion", 8)}
    assert policy.traffic == {"champion": 1.0, "challenger": 0.0}


def test_only_shadow_scores_with_the_challenger():
    policy = canary(0.5)
    assert {policy.route(k).shadow_version for k in KEYS[:1_000]} == {None}


def test_the_ramp_climbs_5_25_50_100_percent_then_promotes():
    policy = canary(0.05)
    fractions = [policy.fraction]
    while policy.fraction < 1.0:
        policy = policy.advance_ramp()
        fractions.append(policy.fraction)
        assert policy.last_action == "ramp_step"
    assert fractions == [0.05, 0.25, 0.5, 1.0]
    with pytest.raises(InvalidTransitionError, match="promote"):
        policy.advance_ramp()
    promoted = policy.promote()
    assert (promoted.champion, promoted.challenger, promoted.phase) == (2, None, "serving")
    assert promoted.last_action == "promoted"
    assert {promoted.route(k) for k in KEYS[:1_000]} == {Route(2, "champion")}


def test_blue_green_switch_moves_all_traffic_in_one_step_and_back():
    staged = RoutingPolicy("tabular", champion=4).start_shadow(5)
    switched = staged.blue_green_switch()
    assert switched.revision == staged.revision + 1
    assert {switched.route(k) for k in KEYS[:5_000]} == {Route(5, "challenger")}
    back = switched.rollback("checkout errors after the switch")
    assert back.revision == switched.revision + 1
    assert {back.route(k) for k in KEYS[:5_000]} == {Route(4, "champion")}
    assert back.rolled_back == (5,) and back.reason == "checkout errors after the switch"
    assert switched.promote().champion == 5


def test_rollback_returns_all_traffic_at_once_from_any_rollout_phase():
    policy = canary(0.05).advance_ramp().advance_ramp()
    rolled = policy.rollback("error rate up 4 points")
    assert rolled.traffic == {"champion": 1.0, "challenger": 0.0}
    assert (rolled.challenger, rolled.rolled_back) == (None, (2,))
    assert rolled.last_action == "rolled_back"
    assert challenger_keys(rolled, KEYS[:10_000]) == set()


def test_a_rolled_back_version_cannot_be_rolled_out_again():
    rolled = canary(0.05).rollback("worse")
    with pytest.raises(InvalidTransitionError, match="publish a new version"):
        rolled.start_shadow(2)
    assert rolled.start_shadow(3).phase == "shadow"


def test_transitions_out_of_order_say_what_to_do():
    serving = RoutingPolicy("voice_intent", champion=1)
    with pytest.raises(InvalidTransitionError, match="start_shadow"):
        serving.start_canary()
    with pytest.raises(InvalidTransitionError, match="start_shadow"):
        serving.rollback("nothing to roll back")
    shadow = serving.start_shadow(2)
    with pytest.raises(InvalidTransitionError, match="continues a canary"):
        shadow.advance_ramp()
    with pytest.raises(InvalidTransitionError, match="promote\\(\\) or rollback\\(\\)"):
        shadow.start_shadow(3)
    with pytest.raises(InvalidTransitionError, match="blue_green_switch"):
        shadow.start_canary(1.0)
    with pytest.raises(InvalidTransitionError, match="already the champion"):
        serving.start_shadow(1)


def test_no_champion_means_no_route_and_no_shadow():
    empty = RoutingPolicy("voice_intent")
    with pytest.raises(NoChampionError, match="RoutingPolicy\\(model, champion=version\\)"):
        empty.route("user-1")
    with pytest.raises(NoChampionError, match="champion=1"):
        empty.start_shadow(1)


def test_transitions_leave_the_old_state_untouched():
    shadow = RoutingPolicy("voice_intent", champion=1).start_shadow(2)
    before = shadow.to_dict()
    shadow.start_canary().advance_ramp().rollback("x")
    assert shadow.to_dict() == before
    with pytest.raises(AttributeError):
        shadow.fraction = 0.5  # type: ignore[misc]


# --------------------------------------------------------------------------- approval


def test_with_approval_every_promotion_step_waits_for_its_token():
    policy = RoutingPolicy("voice_intent", champion=1, require_approval=True).start_shadow(2)
    assert policy.status == "shadow"  # shadowing exposes no user: no approval needed
    steps = []
    while policy.challenger is not None:
        waiting = policy.next_step()
        assert waiting.status == "awaiting_approval"
        assert waiting.traffic == policy.traffic, "traffic moved before approval"
        assert waiting.last_action == "approval_required"
        assert waiting.next_step() == waiting  # asking again changes nothing
        steps.append(waiting.pending_step)
        policy = waiting.approve(waiting.pending_step)
        assert policy.pending_step is None
    assert steps == ["canary:0.05", "ramp:0.25", "ramp:0.5", "ramp:1", "promote"]
    assert policy.champion == 2


def test_approving_the_wrong_step_names_the_pending_one():
    waiting = canary(0.05).advance_ramp()
    gated = RoutingPolicy.from_dict({**waiting.to_dict(), "require_approval": True})
    pending = gated.advance_ramp()
    with pytest.raises(ApprovalError, match=r"the pending step is 'ramp:0\.5'"):
        pending.approve("promote")
    with pytest.raises(ApprovalError, match="no step"):
        gated.approve("ramp:0.5")


def test_rollback_never_waits_for_approval():
    policy = RoutingPolicy("voice_intent", champion=1, require_approval=True).start_shadow(2)
    policy = policy.start_canary().approve("canary:0.05").advance_ramp()
    assert policy.status == "awaiting_approval"
    rolled = policy.rollback("latency")
    assert (rolled.status, rolled.pending_step, rolled.fraction) == ("serving", None, 0.0)


def test_blue_green_switch_with_approval():
    policy = RoutingPolicy("tabular", champion=1, require_approval=True).start_shadow(2)
    waiting = policy.blue_green_switch()
    assert (waiting.pending_step, waiting.fraction) == ("switch", 0.0)
    assert waiting.approve("switch").fraction == 1.0


# --------------------------------------------------------------------------- storage


def test_every_state_of_a_rollout_round_trips_through_json():
    policy = RoutingPolicy("voice_intent", champion=1, salt="eu", require_approval=True)
    states = [policy]
    policy = policy.start_shadow(2)
    states.append(policy)
    while policy.challenger is not None:
        policy = policy.next_step()
        states.append(policy)
        policy = policy.approve(policy.pending_step)
        states.append(policy)
    states.append(policy.start_shadow(3).rollback("worse"))
    for state in states:
        text = state.to_json()
        assert json.loads(text)["state_version"] == 1
        restored = RoutingPolicy.from_json(text)
        assert restored == state
        assert [restored.route(k) for k in KEYS[:200]] == [state.route(k) for k in KEYS[:200]]
    revisions = [s.revision for s in states]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)


def test_a_stored_state_with_unknown_fields_or_version_is_refused():
    state = canary(0.05).to_dict()
    with pytest.raises(InvalidPolicyError, match=r"valid fields are: .*canary_fraction"):
        RoutingPolicy.from_dict({**state, "weights": [1, 2]})
    with pytest.raises(InvalidPolicyError, match="another driftloop version"):
        RoutingPolicy.from_dict({**state, "state_version": 99})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fraction": 1.5}, "fraction must be in"),
        ({"ramp_steps": (0.5, 0.25, 1.0)}, "ramp_steps must increase"),
        ({"ramp_steps": (0.1, 0.5)}, "end at 1.0"),
        ({"canary_fraction": 0.0}, "canary_fraction"),
        ({"phase": "linear"}, "valid phases are: serving, shadow, canary, ramp, switched"),
        ({"challenger": None}, "needs a challenger"),
        ({"challenger": 1}, "both champion and challenger"),
    ],
)
def test_impossible_states_are_refused(changes, message):
    with pytest.raises(InvalidPolicyError, match=message):
        RoutingPolicy.from_dict({**canary(0.05).to_dict(), **changes})


def test_custom_ramp_steps_are_followed():
    policy = RoutingPolicy("m", champion=1, ramp_steps=(0.1, 1.0), canary_fraction=0.01)
    policy = policy.start_shadow(2).next_step()
    assert policy.fraction == 0.01
    fractions = []
    for _ in range(2):
        policy = policy.next_step()
        fractions.append(policy.fraction)
    assert fractions == [0.1, 1.0]
    assert policy.next_step().champion == 2
