"""Model states (studies.common.states): objects inside, today's strings in saved results."""

import pytest

from layerscope.errors import ConfigError
from layerscope.studies.common.states import State, trace, trace_keys


def test_keys_are_the_saved_strings_and_read_back():
    states = trace("tiny-bert", 0, (0, 38, 75))
    assert [s.key for s in states] == ["orig", "step-0", "step-38", "step-75", "ft"]
    assert trace_keys((0, 38)) == ["orig", "step-0", "step-38", "ft"]
    rep = State.ft("tiny-bert", 1, replicate=True)
    assert rep.key == rep.label == "ft-seed1"
    for st in (*states, rep):
        assert State.from_key(st.key, "tiny-bert", 0) == st
    assert [s.training_step(150) for s in states] == [0, 0, 38, 75, 150]
    assert states[1] != states[0] and len(set(states)) == len(states)  # usable as dict keys


@pytest.mark.parametrize("make", [
    lambda: State("m", "tuned"), lambda: State("m", "orig", seed=0), lambda: State("m", "ft"),
    lambda: State.ft("m", 1, step=3, replicate=True), lambda: State.from_key("step-x", "m", 0)])
def test_bad_states_are_refused(make):
    with pytest.raises(ConfigError):
        make()
