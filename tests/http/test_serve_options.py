"""``fleetlog serve``'s options reach the API's configuration; bad values are refused
before anything starts, with a message that names the option."""

from __future__ import annotations

import sys

import pytest

from adapters.http.claims import DEFAULT_HANDOFF_WAIT
from adapters.http.server import api_config, parser
from adapters.system import SERVER_SWITCH_INTERVAL_SECONDS, set_switch_interval


def test_handoff_options_reach_the_api_config() -> None:
    default = api_config(parser().parse_args([]), leader=True)
    assert default.handoff and default.handoff_wait_seconds == DEFAULT_HANDOFF_WAIT and default.background
    tuned = api_config(parser().parse_args(["--handoff-wait", "0.05", "--no-background"]), leader=True)
    assert tuned.handoff_wait_seconds == 0.05 and not tuned.background
    assert not api_config(parser().parse_args(["--no-handoff"]), leader=False).handoff
    assert not api_config(parser().parse_args([]), leader=False).background


@pytest.mark.parametrize(
    ("value", "says"),
    [("2", "must be 0-1 seconds, got 2"), ("-0.1", "must be 0-1"), ("soon", "expected seconds")],
)
def test_a_bad_handoff_wait_is_refused_with_the_option_named(
    value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["--handoff-wait", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--handoff-wait" in err and says in err


def test_the_switch_interval_option_has_the_servers_default_and_bounds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parser().parse_args([]).switch_interval == SERVER_SWITCH_INTERVAL_SECONDS == 0.0005
    assert parser().parse_args(["--switch-interval", "0.005"]).switch_interval == 0.005
    for value, says in (("0", "more than 0"), ("0.5", "at most 0.1"), ("fast", "expected seconds")):
        with pytest.raises(SystemExit) as exited:
            parser().parse_args(["--switch-interval", value])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "--switch-interval" in err and says in err


def test_setting_the_switch_interval_sets_the_process_s_and_refuses_nonsense() -> None:
    before = sys.getswitchinterval()
    try:
        set_switch_interval(0.0005)
        assert sys.getswitchinterval() == pytest.approx(0.0005)
        with pytest.raises(ValueError, match=r"0-0\.1 seconds"):
            set_switch_interval(0)
    finally:
        sys.setswitchinterval(before)
