"""The item state machine on plain data: its table, its routes, where a resumed item goes next."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_tasks.state import item_machine as m


def walk(route: m.Route) -> list[str]:
    machine = m.ItemMachine(route)
    machine.fire(m.START)
    machine.fire(m.AGENT_SUCCEEDED)
    while (step := machine.next_step()) is not None:
        machine.fire(step)
    return [state for _, state in machine.history]


def test_each_route_lands_its_own_steps_in_order_and_ends_ticked():
    assert walk(m.Route.of(isolated=True, checked=True)) == [
        m.RUNNING, m.AGENT_DONE, m.COMMITTED, m.CHECKED, m.MERGED, m.RECORDED, m.TICKED]
    assert walk(m.Route.of(isolated=True, checked=False)) == [
        m.RUNNING, m.AGENT_DONE, m.COMMITTED, m.MERGED, m.RECORDED, m.TICKED]
    assert walk(m.Route.of(isolated=False, checked=True)) == [
        m.RUNNING, m.AGENT_DONE, m.CHECKED, m.RECORDED, m.TICKED]
    assert walk(m.Route.of(isolated=False, checked=False)) == [m.RUNNING, m.AGENT_DONE, m.RECORDED, m.TICKED]


def test_no_tick_without_a_record_and_no_record_of_an_unchecked_item():
    machine = m.ItemMachine(m.Route.of(isolated=False, checked=True), state=m.AGENT_DONE)
    with pytest.raises(m.IllegalTransition):
        machine.fire(m.TICK)
    with pytest.raises(m.IllegalTransition):
        machine.fire(m.RECORD)  # the table allows it after an agent's success, but not on a checked route
    # The table itself: a record comes only after the last landing step a route can take.
    assert (m.AGENT_DONE, m.TICK) not in m.TRANSITIONS
    assert (m.COMMITTED, m.RECORD) not in m.TRANSITIONS  # a commit is never the whole of a landing
    assert machine.next_step() == m.CHECK_STEP


def test_a_stop_anywhere_is_interrupted_and_after_the_record_the_tick_is_owed():
    for state in (m.PENDING, m.WAITING, m.RUNNING, m.AGENT_DONE, m.COMMITTED, m.CHECKED, m.MERGED):
        assert m.ItemMachine(m.Route(), state=state).fire(m.STOPPED) == m.INTERRUPTED
    assert m.ItemMachine(m.Route(), state=m.RECORDED).fire(m.STOPPED) == m.TICK_OWED
    for state in m.OVER:
        assert not m.ItemMachine(m.Route(), state=state).allows(m.STOPPED)


def test_a_failed_landing_step_can_retry_but_a_recorded_success_cannot():
    for state in (m.RUNNING, m.AGENT_DONE, m.COMMITTED, m.CHECKED, m.MERGED):
        assert m.ItemMachine(m.Route(), state=state).fire(m.RETRY) == m.WAITING
    assert not m.ItemMachine(m.Route(), state=m.RECORDED).allows(m.RETRY)


def test_a_resumed_item_goes_on_after_the_furthest_step_its_log_names():
    route = m.Route.of(isolated=True, checked=True)
    assert m.furthest([m.RUNNING, m.AGENT_DONE, m.COMMITTED], route) == m.COMMITTED
    assert m.next_step(m.COMMITTED, route) == m.CHECK_STEP
    assert m.next_step(m.CHECKED, route) == m.MERGE_STEP
    assert m.next_step(m.RECORDED, route) == m.TICK_STEP
    assert m.furthest([m.RUNNING, m.WAITING], route) is None
    # The furthest by the route's order, not by name: "checked" comes after "committed".
    assert m.furthest([m.CHECKED, m.COMMITTED, m.AGENT_DONE], route) == m.CHECKED


def test_a_refused_event_names_the_state_and_the_event_and_moves_nothing():
    machine = m.ItemMachine(m.Route(), state=m.TICKED)
    with pytest.raises(m.IllegalTransition) as refused:
        machine.fire(m.START)
    assert (refused.value.state, refused.value.event) == (m.TICKED, m.START)
    assert str(refused.value) == "'start' is not allowed in state 'ticked'"
    assert (machine.state, machine.history) == (m.TICKED, [])


def test_every_transition_is_noted_with_its_before_and_after():
    seen = []
    machine = m.ItemMachine(m.Route(), on_change=lambda event, before, after: seen.append((event, before, after)))
    machine.fire(m.START)
    machine.fire(m.STOPPED)
    assert seen == [(m.START, m.PENDING, m.RUNNING), (m.STOPPED, m.RUNNING, m.INTERRUPTED)]
    assert machine.over


@given(st.lists(st.sampled_from(m.EVENTS), max_size=30), st.booleans(), st.booleans())
def test_whatever_the_events_a_tick_follows_a_record_which_follows_the_routes_last_landing_step(events, isolated, checked):
    route = m.Route.of(isolated, checked)
    machine = m.ItemMachine(route)
    for event in events:
        if machine.allows(event):
            machine.fire(event)
    reached = [state for _, state in machine.history]
    for index, state in enumerate(reached):
        assert state in m.STATES
        if state == m.TICKED:
            assert reached[index - 1] == m.RECORDED
        if state == m.RECORDED:
            # The route's last landing step comes just before: merged, else checked, else the agent.
            assert reached[index - 1] == (m.MERGED if isolated else m.CHECKED if checked else m.AGENT_DONE)
        if state == m.MERGED and checked:
            assert reached[index - 1] == m.CHECKED


def test_the_item_log_finds_an_attempts_states_exit_and_output_by_its_own_header(tmp_path):
    from batch_tasks.state import item_log
    from batch_tasks.state.state import BatchState

    (tmp_path / "task.md").write_text("# T\n")
    state = BatchState(tmp_path / "task.md")
    state.ensure()
    folder = state.item("g", "a")
    folder.ensure()
    item_log.append(folder, "run1", 1, item_log.STATE, "", {"state": m.COMMITTED})
    item_log.append(folder, "run1", 2, item_log.STATE, "", {"state": m.AGENT_DONE})
    item_log.append(folder, "run1", 1, item_log.EXIT, "", {"status": 0})
    with open(folder.events, "a") as events:
        events.write('{"run_id": "run1", "attempt": 1, "kind": "sta')  # a line a kill cut short
    with folder.open_log() as log:
        log.write(item_log.attempt_header("g:a", 1, "run1") + b"first\n")
        log.write(item_log.note_header("check on the merged state of g:a") + b"checked\n")
        log.write(item_log.failed_header("g:a", 1, "check", "it failed") + item_log.attempt_header("g:a", 2, "run1"))
        log.write(b"second\n")
    assert item_log.states_reached(folder.events, "run1", 1) == [m.COMMITTED]
    assert item_log.exit_of(folder.events, "run1", 1) == {"status": 0}
    assert item_log.exit_of(folder.events, "run1", 2) is None
    assert item_log.attempt_output(folder.log, "g:a", 1, "run1") == ["first", "=== check on the merged state of g:a ===",
                                                                      "checked"]
    assert item_log.attempt_output(folder.log, "g:a", 2, "run1") == ["second", ""]
    assert item_log.is_attempt_header(item_log.attempt_header("g:a", 3, "r").decode().rstrip("\n"))
    assert not item_log.is_attempt_header("=== check on the merged state of g:a ===")


def test_a_reviewed_route_waits_for_its_approval_between_its_check_and_its_merge():
    assert walk(m.Route.of(isolated=True, checked=True, reviewed=True)) == [
        m.RUNNING, m.AGENT_DONE, m.COMMITTED, m.CHECKED, m.AWAITING_REVIEW, m.APPROVED, m.MERGED, m.RECORDED, m.TICKED]
    assert walk(m.Route.of(isolated=True, checked=False, reviewed=True)) == [
        m.RUNNING, m.AGENT_DONE, m.COMMITTED, m.AWAITING_REVIEW, m.APPROVED, m.MERGED, m.RECORDED, m.TICKED]
    # `land: pr`: the pull request is the review, and its merge on GitHub the merge.
    assert walk(m.Route.of(isolated=True, checked=True, pull_request=True)) == [
        m.RUNNING, m.AGENT_DONE, m.COMMITTED, m.CHECKED, m.AWAITING_REVIEW, m.APPROVED, m.RECORDED, m.TICKED]
    # Without isolation there is no branch to wait with: nothing is reviewed.
    assert not m.Route.of(isolated=False, checked=True, reviewed=True).reviews
    waiting = m.ItemMachine(m.Route.of(True, True, reviewed=True), state=m.AWAITING_REVIEW)
    assert not waiting.allows(m.MERGE)  # no merge without its approval
    assert waiting.fire(m.STOPPED) == m.AWAITING_REVIEW  # a stop keeps it awaiting review
    assert waiting.fire(m.RETRY) == m.WAITING  # a rejection sends it back to its session
    assert m.next_step(m.CHECKED, m.Route.of(True, True, reviewed=True)) == m.ASK_REVIEW_STEP
    assert m.next_step(m.AWAITING_REVIEW, m.Route.of(True, True, reviewed=True)) == m.APPROVE_STEP


@given(st.lists(st.sampled_from(m.EVENTS), max_size=40), st.booleans())
def test_whatever_the_events_a_reviewed_item_merges_only_after_its_approval(events, checked):
    machine = m.ItemMachine(m.Route.of(True, checked, reviewed=True))
    for event in events:
        if machine.allows(event):
            machine.fire(event)
    reached = [state for _, state in machine.history if state != m.QUEUED]  # the queue is on the way to the merge
    for index, state in enumerate(reached):
        if state == m.MERGED:
            assert reached[index - 2:index] == [m.AWAITING_REVIEW, m.APPROVED]


@pytest.mark.parametrize("checked", [True, False])
def test_an_item_waits_in_the_merge_queue_as_a_state_of_its_own_and_a_killed_run_enters_it_again(checked):
    machine = m.ItemMachine(m.Route.of(isolated=True, checked=checked), state=m.CHECKED if checked else m.COMMITTED)
    machine.fire(m.ENQUEUE)
    assert machine.state == m.QUEUED and machine.next_step() == m.MERGE_STEP
    machine.fire(m.ENQUEUE)  # resumed after a kill: in the queue again, the state it was checked in gone
    assert machine.state == m.QUEUED
    assert m.furthest([m.CHECKED, m.QUEUED], machine.route) == m.QUEUED
    assert m.TRANSITIONS[(m.QUEUED, m.RETRY)] == m.WAITING  # the culprit of a failing state: back to its agent
    assert m.TRANSITIONS[(m.QUEUED, m.STOPPED)] == m.INTERRUPTED
    machine.fire(m.MERGE)
    assert machine.state == m.MERGED


def test_nothing_enters_the_merge_queue_before_its_work_is_committed_nor_after_it_merged():
    for state in (m.AGENT_DONE, m.MERGED, m.RECORDED, m.RUNNING, m.AWAITING_REVIEW):
        assert (state, m.ENQUEUE) not in m.TRANSITIONS
    # A reviewed item enters the queue only once approved: its merge must be its route's next step.
    assert not m.ItemMachine(m.Route.of(True, True, reviewed=True), state=m.CHECKED).allows(m.ENQUEUE)
    assert m.ItemMachine(m.Route.of(True, True, reviewed=True), state=m.APPROVED).allows(m.ENQUEUE)


@pytest.mark.parametrize("isolated, reviewed, pull_request, checks", [
    (True, False, False, False),  # straight to the merge queue: checked there, on the merged state
    (True, True, False, True),  # a review sees checked work
    (True, False, True, True),  # a pull request is not the queue's to check
    (False, False, False, True),  # no queue without isolation
])
def test_without_its_own_check_only_work_bound_for_the_merge_queue_skips_it(isolated, reviewed, pull_request, checks):
    route = m.Route.of(isolated, True, reviewed=reviewed, pull_request=pull_request, own_check=False)
    assert route.checks is checks
    assert not m.Route.of(isolated, False, reviewed=reviewed, pull_request=pull_request, own_check=False).checks
    assert m.Route.of(isolated, True, reviewed=reviewed, pull_request=pull_request).checks  # own_check by default
