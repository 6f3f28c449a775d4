"""The run folder (``ecgcore.models._run.Run``): a run interrupted at any point and resumed ends where an
uninterrupted run ends, with the same history; settings that matter cannot change on resume."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ecgcore.models._run import RUN_FILES, Run


def _train(run_dir, *, epochs=4, steps_per_epoch=5, kill_at=None, resume=True, lr=0.1, time_limit_s=None):
    """A tiny 'training': w follows noisy gradient steps on a quadratic, batches drawn from (seed, epoch)."""
    run = Run(run_dir, {"lr": lr, "epochs": epochs, "seed": 3}, family="toy", resume=resume,
              checkpoint_every_s=0.0, time_limit_s=time_limit_s)
    w = np.zeros(1)

    def save(folder):
        np.save(folder / "w.npy", w)

    def read(folder):
        w[:] = np.load(folder / "w.npy")

    if run.resuming:
        run.load(read)
    data = np.linspace(-1, 1, steps_per_epoch * 4)
    while run.state.epoch < epochs and not run.state.finished:
        order = np.random.default_rng([3, run.state.epoch]).permutation(len(data))
        for b in range(run.state.step_in_epoch, steps_per_epoch):
            batch = data[order[b * 4:(b + 1) * 4]]
            w -= lr * (w - batch.mean() - 1.0)
            run.state.step += 1
            run.state.step_in_epoch = b + 1
            if kill_at is not None and run.state.step == kill_at:
                raise KeyboardInterrupt("killed")
            if run.due():
                run.save(save)
            if run.out_of_time():
                run.stop("time_limit")
                run.save(save)
                return run, w
        run.state.epoch += 1
        run.state.step_in_epoch = 0
        val = float((w[0] - 1.0) ** 2)
        run.improved(val)
        run.log(train_loss=val * 1.1, val_loss=val)
        if run.state.epoch >= epochs:
            run.stop("epochs")
        run.save(save)
    return run, w


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path):
    full, w_full = _train(tmp_path / "full")
    for kill_at in (3, 5, 12):
        d = tmp_path / f"kill{kill_at}"
        with pytest.raises(KeyboardInterrupt):
            _train(d, kill_at=kill_at)
        run, w = _train(d)
        np.testing.assert_array_equal(w, w_full)
        assert run.state.step == full.state.step == 20 and run.state.finished
        strip = [{k: v for k, v in r.items() if k != "seconds"} for r in run.history()]
        assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in full.history()]
    for name in RUN_FILES:
        assert (tmp_path / "full" / name).exists(), name
    status = json.loads((tmp_path / "full" / "run.json").read_text())
    assert status["stop_reason"] == "epochs" and status["finished"] and status["steps"] == 20
    assert (tmp_path / "full" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_refuses_other_settings_but_takes_new_budgets(tmp_path):
    _train(tmp_path / "r", epochs=2)
    with pytest.raises(ValueError, match="different settings \\(lr\\)"):
        _train(tmp_path / "r", epochs=2, lr=0.5)
    run, _ = _train(tmp_path / "r", epochs=4)      # more epochs: a budget, allowed
    assert run.state.epoch == 4 and len(run.history()) == 4
    run, _ = _train(tmp_path / "r", epochs=2, lr=0.5, resume=False)   # start over
    assert run.state.epoch == 2 and len(run.history()) == 2


def test_time_limit_stops_unfinished_and_resumes(tmp_path):
    run, _ = _train(tmp_path / "t", time_limit_s=0.0)
    assert run.state.stop_reason == "time_limit" and not run.state.finished and run.state.step == 1
    run, w = _train(tmp_path / "t")
    full, w_full = _train(tmp_path / "u")
    np.testing.assert_array_equal(w, w_full)
    assert math.isclose(run.state.best_score, full.state.best_score)


def test_a_setting_added_after_the_run_started_resumes_at_its_default(tmp_path):
    """A config field added to the class after a run started (its config.json lacks it) counts as the class's
    default for that run: the run resumes with the default and refuses any other value."""
    import dataclasses

    @dataclasses.dataclass
    class Cfg:
        lr: float = 0.1
        head: str = "flatten"

    run = Run(tmp_path / "r", {"lr": 0.1}, family="toy", checkpoint_every_s=0.0)  # written before `head` existed
    run.state.step = 1
    run.save(lambda folder: None)
    again = Run(tmp_path / "r", Cfg(), family="toy")
    assert again.resuming and again.state.step == 1
    with pytest.raises(ValueError, match="different settings \\(head\\)"):
        Run(tmp_path / "r", Cfg(head="pool"), family="toy")
    with pytest.raises(ValueError, match="different settings \\(lr\\)"):
        Run(tmp_path / "r", Cfg(lr=0.5), family="toy")


def test_sigterm_ends_the_session_like_its_time_limit_and_then_acts_as_before(tmp_path):
    """``Run(sigterm=True)``: a SIGTERM does not kill the process, it makes ``out_of_time()`` true (the trainer ends
    the session cleanly); after ``stop()``, or once the run object is gone, SIGTERM reaches the previous handler."""
    import gc
    import os
    import signal

    seen = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        prev = signal.getsignal(signal.SIGTERM)
        run = Run(tmp_path / "a", {"lr": 0.1}, family="toy", sigterm=True)
        assert not run.out_of_time() and signal.getsignal(signal.SIGTERM) is not prev
        os.kill(os.getpid(), signal.SIGTERM)
        assert run.terminated and run.out_of_time() and seen == []
        run.stop("time_limit")  # the trainer's clean end: the previous handler is back
        assert signal.getsignal(signal.SIGTERM) is prev and not run.state.finished
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
        # a run that never reached stop() (an exception, say): once it is gone, SIGTERM is not swallowed
        run = Run(tmp_path / "b", {"lr": 0.1}, family="toy", sigterm=True)
        del run
        gc.collect()
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM] * 2 and signal.getsignal(signal.SIGTERM) is prev
        # without sigterm=True nothing is installed, nor where SIGTERM is ignored (``trap '' TERM``)
        Run(tmp_path / "c", {"lr": 0.1}, family="toy")
        assert signal.getsignal(signal.SIGTERM) is prev
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run = Run(tmp_path / "d", {"lr": 0.1}, family="toy", sigterm=True)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)
        assert not run.terminated
        # release_sigterm (a trainer on its way out after an error) gives it back too
        signal.signal(signal.SIGTERM, prev)
        run = Run(tmp_path / "e", {"lr": 0.1}, family="toy", sigterm=True)
        run.release_sigterm()
        assert signal.getsignal(signal.SIGTERM) is prev
    finally:
        signal.signal(signal.SIGTERM, before)
