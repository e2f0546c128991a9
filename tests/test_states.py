"""The state table: codes, final flags, and every illegal move refused."""

from __future__ import annotations

import itertools

import pytest

from swm_jupyter.core.errors import InvalidTransition
from swm_jupyter.core.states import FINAL_STATES, TRANSITIONS, JobState, check_transition


def test_codes_are_sky_port_letters() -> None:
    assert "".join(s.code for s in JobState) == "QHWTRFEC"
    assert {s for s in JobState if s.final} == FINAL_STATES == {JobState.FINISHED, JobState.ERROR, JobState.CANCELED}
    assert JobState.parse("R") is JobState.RUNNING and JobState.parse("finished") is JobState.FINISHED
    with pytest.raises(ValueError, match="unknown state"):
        JobState.parse("done")


@pytest.mark.parametrize(("old", "new"), list(itertools.product(JobState, JobState)))
def test_every_pair_follows_the_table(old: JobState, new: JobState) -> None:
    if old is new or new in TRANSITIONS[old]:
        check_transition(old, new)
    else:
        with pytest.raises(InvalidTransition) as caught:
            check_transition(old, new)
        assert old.value in caught.value.message and new.value in caught.value.message


def test_final_states_only_go_back_to_the_queue() -> None:
    for state in FINAL_STATES:
        assert TRANSITIONS[state] == {JobState.QUEUED}
