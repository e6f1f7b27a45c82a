"""A Ctrl-C that Dagster swallowed during a run still stops a command that chains runs."""

from __future__ import annotations

import os
import signal

import pytest

from simulation_assets.commands.common import InterruptWatch


def test_a_swallowed_ctrl_c_is_raised_at_the_next_check() -> None:
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    with InterruptWatch() as watch:
        watch.check()  # nothing received: nothing happens
        swallowed = []
        previous = signal.signal(
            signal.SIGINT, lambda signum, _frame: swallowed.append(signum)
        )  # as Dagster does
        try:
            os.kill(os.getpid(), signal.SIGINT)
            signal.pthread_sigmask(signal.SIG_BLOCK, [])  # let the handler run
        finally:
            signal.signal(signal.SIGINT, previous)
        assert swallowed == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            watch.check()
        watch.check()  # read once: a second check does not raise again
    assert signal.set_wakeup_fd(before) == before  # the previous wakeup fd is back
