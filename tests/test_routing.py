"""Skills-based routing decisions (core/routing.py): memberships, the membership sync plan, the
route a classified caller gets, and the membership book fed from AMI. Pure, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdbridge.core.routing import (
    AgentProfile,
    MemberAction,
    MemberBook,
    RoutingConfig,
    SkillGroup,
    desired_members,
    memberships,
    penalty_of,
    plan_sync,
    route,
)

CFG = RoutingConfig(
    groups=(
        SkillGroup("water", "water"),
        SkillGroup("water_es", "water", language="spanish"),
        SkillGroup("complaints", "complaints", widen_to=("water",), rule="widen-with-wait"),
        SkillGroup(
            "fixed_line", "fixed_line", widen_to=("broadband",), max_penalty=2, rule="widen-with-wait"
        ),
        SkillGroup("broadband", "broadband", widen_to=("fixed_line",), max_penalty=1, rule="widen-fast"),
    ),
    call_types={
        "inquiry": "water",
        "leak": "water",
        "complaint": "complaints",
        "fixed_line": "fixed_line",
        "broadband": "broadband",
    },
    languages={"zh": "", "es": "spanish", "en": "english"},
    generalist_penalty=10,
    vip_priority=10,
    repeat_priority=5,
)


def agent(name: str, ext: str, **skills: int) -> AgentProfile:
    return AgentProfile(name, ext, f"PJSIP/{ext}", skills)


# --- penalties and memberships -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proficiency", "penalty"), [(5, 0), (4, 1), (3, 2), (2, 3), (1, 4), (0, 4), (-3, 4), (9, 0)]
)
def test_penalty_of_maps_proficiency_5_to_0_and_1_to_4_and_clamps(proficiency: int, penalty: int) -> None:
    assert penalty_of(proficiency) == penalty


def test_experts_and_novices_join_with_their_proficiency_penalty() -> None:
    expert = agent("Wang Fang", "9101", broadband=5)
    novice = agent("Li Lei", "9105", broadband=1)
    assert memberships(expert, CFG)["broadband"] == 0
    assert memberships(novice, CFG)["broadband"] == 4


def test_a_generalist_via_widen_to_gets_the_generalist_penalty() -> None:
    # broadband only: expert in broadband, generalist in fixed_line (widen_to broadband)
    assert memberships(agent("Wang Fang", "9101", broadband=5), CFG) == {"broadband": 0, "fixed_line": 10}
    # both skills: his own proficiency wins over the generalist penalty
    both = agent("Zhou Min", "9102", broadband=5, fixed_line=3)
    assert memberships(both, CFG) == {"broadband": 0, "fixed_line": 2}


def test_a_language_group_requires_the_language_skill() -> None:
    mono = agent("Ana Torres", "9104", water=5)
    bilingual = agent("Lucía Vega", "9103", water=4, spanish=5)
    assert memberships(mono, CFG) == {"water": 0, "complaints": 10}
    assert memberships(bilingual, CFG) == {"water": 1, "water_es": 1, "complaints": 10}


def test_a_language_speaker_without_the_groups_skill_is_not_a_member() -> None:
    assert memberships(agent("Pablo", "9106", spanish=5), CFG) == {}


def test_an_agent_with_no_relevant_skill_is_a_member_of_nothing() -> None:
    assert memberships(agent("Nobody", "9107", gardening=5), CFG) == {}
    assert memberships(agent("Zero", "9108", water=0, broadband=0), CFG) == {}


def test_desired_members_lists_every_logged_in_agents_queues_with_name_and_penalty() -> None:
    logged_in = [agent("Wang Fang", "9101", broadband=5), agent("Lucía Vega", "9103", water=4, spanish=5)]
    assert desired_members(logged_in, CFG) == {
        ("broadband", "PJSIP/9101"): ("Wang Fang", 0),
        ("fixed_line", "PJSIP/9101"): ("Wang Fang", 10),
        ("water", "PJSIP/9103"): ("Lucía Vega", 1),
        ("water_es", "PJSIP/9103"): ("Lucía Vega", 1),
        ("complaints", "PJSIP/9103"): ("Lucía Vega", 10),
    }
    assert desired_members([], CFG) == {}


# --- the membership sync plan --------------------------------------------------------------------

MANAGED_IFACES = {"PJSIP/9101", "PJSIP/9102"}
MANAGED_QUEUES = {"water", "broadband"}


def test_plan_sync_adds_a_missing_member_with_name_and_penalty() -> None:
    actions = plan_sync({("water", "PJSIP/9101"): ("Wang Fang", 1)}, {}, MANAGED_IFACES, MANAGED_QUEUES)
    assert actions == [MemberAction("add", "water", "PJSIP/9101", "Wang Fang", 1)]


def test_plan_sync_changes_a_penalty_that_differs() -> None:
    actions = plan_sync(
        {("water", "PJSIP/9101"): ("Wang Fang", 0)},
        {("water", "PJSIP/9101"): 3},
        MANAGED_IFACES,
        MANAGED_QUEUES,
    )
    assert actions == [MemberAction("penalty", "water", "PJSIP/9101", "Wang Fang", 0)]


def test_plan_sync_removes_only_managed_interfaces_in_managed_queues() -> None:
    actual = {
        ("water", "PJSIP/9101"): 0,  # managed, not wanted any more: removed
        ("water", "PJSIP/2001"): 0,  # someone else's member (a static queues.conf member)
        ("sales", "PJSIP/9102"): 0,  # our agent, but in a queue we do not manage
        ("broadband", "PJSIP/9102"): 1,  # managed, not wanted: removed
    }
    actions = plan_sync({}, actual, MANAGED_IFACES, MANAGED_QUEUES)
    assert sorted(actions, key=lambda a: (a.queue, a.interface)) == [
        MemberAction("remove", "broadband", "PJSIP/9102"),
        MemberAction("remove", "water", "PJSIP/9101"),
    ]


def test_plan_sync_has_nothing_to_do_when_in_step() -> None:
    desired = {("water", "PJSIP/9101"): ("Wang Fang", 1), ("broadband", "PJSIP/9102"): ("Zhou Min", 0)}
    actual = {("water", "PJSIP/9101"): 1, ("broadband", "PJSIP/9102"): 0, ("water", "PJSIP/2001"): 4}
    assert plan_sync(desired, actual, MANAGED_IFACES, MANAGED_QUEUES) == []


QUEUES = ("water", "broadband", "sales")
IFACES = ("PJSIP/9101", "PJSIP/9102", "PJSIP/2001")
KEYS = [(q, i) for q in QUEUES for i in IFACES]


@st.composite
def sync_case(
    draw: st.DrawFn,
) -> tuple[dict[tuple[str, str], tuple[str, int]], dict[tuple[str, str], int], set[str], set[str]]:
    managed_ifaces = draw(st.sets(st.sampled_from(IFACES)))
    managed_queues = draw(st.sets(st.sampled_from(QUEUES)))
    managed_keys = [k for k in KEYS if k[0] in managed_queues and k[1] in managed_ifaces]
    desired = draw(
        st.dictionaries(
            st.sampled_from(managed_keys) if managed_keys else st.nothing(),
            st.tuples(st.sampled_from(["Ana", "Wang"]), st.integers(0, 10)),
        )
    )
    actual = draw(st.dictionaries(st.sampled_from(KEYS), st.integers(0, 10)))
    return desired, actual, managed_ifaces, managed_queues


@settings(max_examples=300, deadline=None, database=None)
@given(sync_case())
def test_applying_the_plan_reaches_desired_on_managed_keys_and_leaves_the_rest(
    case: tuple[dict[tuple[str, str], tuple[str, int]], dict[tuple[str, str], int], set[str], set[str]],
) -> None:
    desired, actual, managed_ifaces, managed_queues = case
    actions = plan_sync(desired, actual, managed_ifaces, managed_queues)
    after = dict(actual)
    for a in actions:
        key = (a.queue, a.interface)
        if a.kind == "add":
            assert key not in after
            after[key] = a.penalty
        elif a.kind == "penalty":
            assert key in after and after[key] != a.penalty
            after[key] = a.penalty
        else:
            assert a.kind == "remove" and key in after
            del after[key]

    def managed(key: tuple[str, str]) -> bool:
        return key[0] in managed_queues and key[1] in managed_ifaces

    assert {k: v for k, v in after.items() if managed(k)} == {k: p for k, (_, p) in desired.items()}
    assert {k: v for k, v in after.items() if not managed(k)} == {
        k: v for k, v in actual.items() if not managed(k)
    }
    # and a second pass has nothing left to do
    assert plan_sync(desired, after, managed_ifaces, managed_queues) == []


# --- the route a caller gets ---------------------------------------------------------------------


def test_route_maps_the_call_type_to_its_skill_group() -> None:
    d = route("fixed_line", "zh", CFG)
    assert d is not None
    assert (d.queue, d.max_penalty, d.rule, d.priority, d.skills, d.note) == (
        "fixed_line",
        2,
        "widen-with-wait",
        0,
        ("fixed_line",),
        "",
    )


def test_route_picks_the_language_group_when_there_is_one() -> None:
    d = route("leak", "es", CFG)
    assert d is not None
    assert (d.queue, d.skills, d.note) == ("water_es", ("water", "spanish"), "")


def test_route_falls_back_to_the_language_less_group_with_a_note() -> None:
    d = route("inquiry", "en", CFG)  # no water group speaks english
    assert d is not None
    assert d.queue == "water" and d.skills == ("water", "english")
    assert d.note == "no water group speaks english"


def test_route_of_a_language_without_a_skill_uses_the_plain_group_silently() -> None:
    for language in ("zh", "fr", ""):
        d = route("inquiry", language, CFG)
        assert d is not None and (d.queue, d.skills, d.note) == ("water", ("water",), "")


def test_route_of_an_unknown_call_type_is_none() -> None:
    assert route("billing", "zh", CFG) is None


def test_route_is_none_when_only_other_language_groups_serve_the_skill() -> None:
    cfg = RoutingConfig(
        groups=(SkillGroup("water_es", "water", language="spanish"),), call_types={"inquiry": "water"}
    )
    assert route("inquiry", "zh", cfg) is None


@pytest.mark.parametrize(
    ("vip", "repeat", "priority"), [(False, False, 0), (False, True, 5), (True, False, 10), (True, True, 10)]
)
def test_vip_priority_beats_repeat_priority(vip: bool, repeat: bool, priority: int) -> None:
    d = route("inquiry", "zh", CFG, vip=vip, repeat=repeat)
    assert d is not None and d.priority == priority


def test_no_expert_on_duty_widens_at_once_to_the_generalist_penalty() -> None:
    # only generalists (penalty 10) and a novice (penalty 4) are available; max_penalty is 1
    d = route("broadband", "zh", CFG, on_duty={"broadband": [10, 4], "water": [0]})
    assert d is not None
    assert d.max_penalty == 10 and d.note == "no broadband expert on duty: widened at once"
    # nobody in the queue at all: the same
    d = route("broadband", "zh", CFG, on_duty={})
    assert d is not None and d.max_penalty == 10


def test_an_expert_on_duty_keeps_max_penalty() -> None:
    d = route("broadband", "zh", CFG, on_duty={"broadband": [10, 1]})  # penalty 1 == max_penalty
    assert d is not None and (d.max_penalty, d.note) == (1, "")
    d = route("fixed_line", "zh", CFG, on_duty={"fixed_line": [2]})
    assert d is not None and (d.max_penalty, d.note) == (2, "")
    d = route("broadband", "zh", CFG)  # on_duty unknown: no widening
    assert d is not None and d.max_penalty == 1


def test_the_language_note_is_kept_when_also_widened() -> None:
    d = route("inquiry", "en", CFG, on_duty={"water": [10]})
    assert d is not None and d.max_penalty == 10
    assert d.note == "no water group speaks english; no water expert on duty: widened at once"


def test_widening_never_narrows_the_penalty_limit() -> None:
    cfg = RoutingConfig(
        groups=(SkillGroup("water", "water", max_penalty=4),),
        call_types={"inquiry": "water"},
        generalist_penalty=3,
    )
    d = route("inquiry", "zh", cfg, on_duty={})
    assert d is not None and d.max_penalty >= 4


# --- the membership book -------------------------------------------------------------------------


def member(queue: str, location: str, penalty: int, paused: bool = False) -> dict[str, str]:
    return {"Queue": queue, "Location": location, "Penalty": str(penalty), "Paused": "1" if paused else "0"}


def test_queue_member_and_member_added_set_penalty_and_paused() -> None:
    book = MemberBook()
    book.feed("QueueMember", member("water", "PJSIP/9101", 1))  # QueueStatus lists "Location"
    book.feed(
        "QueueMemberAdded", {"Queue": "water", "Interface": "PJSIP/9102", "Penalty": "3", "Paused": "1"}
    )
    assert book.penalty == {("water", "PJSIP/9101"): 1, ("water", "PJSIP/9102"): 3}
    assert book.paused == {("water", "PJSIP/9101"): False, ("water", "PJSIP/9102"): True}


def test_a_bad_penalty_reads_as_zero() -> None:
    book = MemberBook()
    book.feed("QueueMember", {"Queue": "water", "Location": "PJSIP/9101", "Penalty": "x"})
    assert book.penalty == {("water", "PJSIP/9101"): 0}


def test_queue_member_pause_and_removed() -> None:
    book = MemberBook()
    book.feed("QueueMember", member("water", "PJSIP/9101", 1))
    book.feed("QueueMemberPause", {"Queue": "water", "Interface": "PJSIP/9101", "Paused": "1"})
    assert book.paused == {("water", "PJSIP/9101"): True} and book.penalty == {("water", "PJSIP/9101"): 1}
    book.feed("QueueMemberPause", {"Queue": "water", "Interface": "PJSIP/9101", "Paused": "0"})
    assert book.paused == {("water", "PJSIP/9101"): False}
    changes = book.changes
    book.feed("QueueMemberRemoved", {"Queue": "water", "Interface": "PJSIP/9101"})
    assert book.penalty == {} and book.paused == {}
    assert book.changes == changes + 1


def test_queue_params_clears_only_that_queues_listing() -> None:
    book = MemberBook()
    book.feed("QueueMember", member("water", "PJSIP/9101", 1, paused=True))
    book.feed("QueueMember", member("broadband", "PJSIP/9101", 0))
    book.feed("QueueParams", {"Queue": "water"})
    assert book.penalty == {("broadband", "PJSIP/9101"): 0}
    assert book.paused == {("broadband", "PJSIP/9101"): False}
    # the fresh listing refills it
    book.feed("QueueMember", member("water", "PJSIP/9102", 2))
    assert book.penalty == {("broadband", "PJSIP/9101"): 0, ("water", "PJSIP/9102"): 2}


def synced(book: MemberBook) -> bool:
    return book.synced  # read through a call: mypy would narrow the attribute between feeds


def test_queue_status_complete_syncs_and_bumps_changes_and_a_new_connection_unsyncs() -> None:
    book = MemberBook()
    assert not synced(book) and book.changes == 0
    book.feed("QueueMember", member("water", "PJSIP/9101", 1))
    assert book.changes == 0  # a listing line is not a change
    book.feed("QueueStatusComplete", {})
    assert synced(book) and book.changes == 1
    book.feed("QueueMemberAdded", {"Queue": "water", "Interface": "PJSIP/9102", "Penalty": "0"})
    assert book.changes == 2
    book.feed("QueueMemberPenalty", {"Queue": "water", "Interface": "PJSIP/9102", "Penalty": "4"})
    assert book.changes == 3 and book.penalty[("water", "PJSIP/9102")] == 4
    book.new_connection()
    assert not synced(book)
    assert book.penalty == {("water", "PJSIP/9101"): 1, ("water", "PJSIP/9102"): 4}  # state kept
    book.feed("QueueStatusComplete", {})
    assert synced(book)


def test_on_duty_lists_penalties_of_members_not_paused() -> None:
    book = MemberBook()
    book.feed("QueueMember", member("water", "PJSIP/9101", 0, paused=True))
    book.feed("QueueMember", member("water", "PJSIP/9102", 10))
    book.feed("QueueMember", member("broadband", "PJSIP/9101", 1))
    book.feed("QueueMember", member("sales", "PJSIP/9103", 0, paused=True))
    duty = book.on_duty()
    assert {q: sorted(p) for q, p in duty.items()} == {"water": [10], "broadband": [1]}
    # and routing widens on it: the only water expert is paused
    d = route("inquiry", "zh", CFG, on_duty=duty)
    assert d is not None and d.max_penalty == CFG.generalist_penalty


def test_a_reconnect_banner_makes_the_member_book_wait_for_its_listing() -> None:
    # live and replay alike: the banner of each new AMI connection goes through Pipeline.feed
    from acdbridge.core.pipeline import Pipeline

    pipeline = Pipeline()

    def synced() -> bool:  # a call, not an attribute: mypy would narrow it across the feeds
        return pipeline.members.synced

    listing = b"Event: QueueStatusComplete\r\nTimestamp: 10.0\r\n\r\n"
    pipeline.feed_bytes(b"Asterisk Call Manager/9.0.0\r\n" + listing)
    assert synced()
    pipeline.parser = pipeline.new_parser()  # as replay.py and the live adapter do: a parser per connection
    pipeline.feed_bytes(b"Asterisk Call Manager/9.0.0\r\n")
    assert not synced()  # penalties and pauses may have changed while away
    pipeline.feed_bytes(listing)
    assert synced()
