"""The fleet's plain decisions: label selectors, node states, and targeting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler_app import nodes, selectors, targeting
from scheduler_app.models import Run
from scheduler_app.targeting import Candidate, Child

DB_EU = {"role": "db", "zone": "eu"}
WEB_US = {"role": "web", "zone": "us"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize(
    ("text", "matching"),
    [
        ("", ["db_eu", "web_us", "bare"]),
        ("role=db", ["db_eu"]),
        ("role==db", ["db_eu"]),
        ("role!=db", ["web_us", "bare"]),
        ("zone in (eu,us)", ["db_eu", "web_us"]),
        ("zone notin (eu)", ["web_us", "bare"]),
        ("zone", ["db_eu", "web_us"]),
        ("!zone", ["bare"]),
        ("role=db,zone in (eu, us)", ["db_eu"]),
        ("  role = web , zone=us ", ["web_us"]),
        ("role=db,zone=us", []),
    ],
)
def test_a_selector_matches_as_kubernetes_does(text, matching):
    selector = selectors.parse(text)
    found = [name for name, labels in (("db_eu", DB_EU), ("web_us", WEB_US), ("bare", BARE))
             if selector.matches(labels)]  # fmt: skip
    assert found == matching


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("role=", None),  # an empty value is a value
        ("role=db,", "expected a label key at position 9, found 'the end'"),
        ("role db", "expected '=', '!=', 'in' or 'notin' at position 6, found 'db'"),
        ("zone in eu", "expected '(' at position 9, found 'eu'"),
        ("zone in (eu", "expected ',' or ')' at position 12, found 'the end'"),
        ("role=db)", "expected ',' or the end at position 8, found ')'"),
        ("role=d$b", "unexpected character '$' at position 7"),
        ("=db", "expected a label key at position 1, found '='"),
        ("-role=db", "expected a label key at position 1, found '-role'"),
    ],
)
def test_a_selector_error_names_the_position(text, message):
    if message is None:
        assert selectors.parse(text).matches({"role": ""})
        return
    with pytest.raises(selectors.SelectorError) as caught:
        selectors.parse(text)
    assert message in str(caught.value)


def test_labels_parse_from_the_setting_and_refuse_unsafe_text():
    assert selectors.parse_labels("role=db, zone=eu,") == DB_EU
    assert selectors.parse_labels("") == {}
    for bad, said in (("role", "not key=value"), ("ro le=db", "label key"),
                      ("role=d b", "value 'd b'"), ("role=a\nb", "value")):  # fmt: skip
        with pytest.raises(selectors.SelectorError, match=said):
            selectors.parse_labels(bad)
    with pytest.raises(selectors.SelectorError, match="at most 64 labels"):
        selectors.check_labels({f"k{i}": "v" for i in range(65)})
    with pytest.raises(selectors.SelectorError):
        selectors.parse("x" * 2001)


def test_a_node_is_offline_when_silent_and_draining_when_told():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert nodes.state_of(now - timedelta(seconds=5), False, now, 15) == "online"
    assert nodes.state_of(now - timedelta(seconds=5), True, now, 15) == "draining"
    assert nodes.state_of(now - timedelta(seconds=16), True, now, 15) == "offline"


NODES = [
    Candidate("a", "a@h", "online", running=2),
    Candidate("b", "b@h", "offline"),
    Candidate("c", "c@h", "online", running=1),
    Candidate("d", "d@h", "draining"),
    Candidate("e", "e@h", "online", running=1),
]


def test_each_sends_max_parallel_online_nodes_and_skips_the_others_with_the_reason():
    assert targeting.plan_each(NODES, max_parallel=None) == [
        Child("a@h", True),
        Child("b@h", False, "skipped: node b is offline"),
        Child("c@h", True),
        Child("d@h", False, "skipped: node d is draining"),
        Child("e@h", True),
    ]
    rolling = targeting.plan_each(NODES, max_parallel=1)
    assert [(c.hostname, c.send, bool(c.skip_reason)) for c in rolling] == [
        ("a@h", True, False), ("b@h", False, True), ("c@h", False, False),
        ("d@h", False, True), ("e@h", False, False),
    ]  # fmt: skip


def test_any_picks_the_least_busy_online_node():
    assert targeting.pick_any(NODES).name == "c"
    assert targeting.pick_any([NODES[1], NODES[3]]) is None
    assert targeting.none_online([NODES[1], NODES[3]]) == (
        "no targeted node is online: b (offline), d (draining)."
    )
    assert targeting.none_online([]) == "the targets match no node."


def ended(status: str) -> Run:
    return Run(status=status, node="a@h")


S = Run.Status


def test_after_a_child_ends_the_next_waiting_ones_are_sent_up_to_max_parallel():
    statuses = [(1, S.SUCCEEDED), (2, S.SKIPPED), (3, S.WAITING), (4, S.WAITING)]
    assert targeting.after_child(ended(S.SUCCEEDED), statuses, 1, False).send == [3]
    assert targeting.after_child(ended(S.SUCCEEDED), statuses, 2, False).send == [3, 4]
    busy = [(1, S.RUNNING), (2, S.SUCCEEDED), (3, S.WAITING)]
    assert targeting.after_child(ended(S.SUCCEEDED), busy, 1, False).send == []


def test_a_failure_with_halt_on_failure_skips_every_waiting_child():
    statuses = [(1, S.FAILED), (2, S.WAITING), (3, S.WAITING)]
    step = targeting.after_child(ended(S.FAILED), statuses, 1, True)
    assert (step.send, step.skip) == ([], [2, 3])
    assert step.reason == "skipped: halted after the run on a@h failed (halt_on_failure)"
    assert targeting.after_child(ended(S.FAILED), statuses, 1, False).send == [2]
    assert targeting.after_child(ended(S.LOST), statuses, 1, True).skip == [2, 3]
