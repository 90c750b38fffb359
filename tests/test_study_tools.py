"""tools/switch_onsets.py, tools/withheld_returns.py, tools/scored_absent.py: the memory policy they
study. They record the model's output by patching the tracker's _apply_robust_policy, which the
tracker calls only under a robust policy, so the official policy and misspelt ones are refused
before any model is built."""

import importlib
import sys
from pathlib import Path

import pytest

import sam2_model
from sam2_model.robust_options import parse_memory_policy

TOOLS = Path(__file__).resolve().parents[1] / "tools"
STUDIES = ("switch_onsets", "withheld_returns", "scored_absent")


@pytest.fixture
def study(monkeypatch):
    monkeypatch.syspath_prepend(str(TOOLS))  # the tools import each other as scripts do
    return lambda name: importlib.import_module(name)


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.parametrize(("policy", "message"), [("official", "'official' is the official policy"),
                                                 ("robsut", "memory_policy 'robsut' must be one of")])
def test_non_robust_and_bad_policies_exit_2_with_one_line(study, monkeypatch, capsys, tmp_path, name, policy,
                                                          message):
    tool = study(name)
    built = []
    monkeypatch.setattr(sam2_model, "build_model", lambda *a, **k: built.append(a))
    monkeypatch.setattr(sys, "argv", [name, "--davis", str(tmp_path), "--policy", policy])
    with pytest.raises(SystemExit) as exc:
        tool.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --policy: {message}" in err and "Traceback" not in err
    assert not built


@pytest.mark.parametrize("name", STUDIES)
def test_each_study_s_default_policy_is_robust(study, monkeypatch, tmp_path, name):
    tool = study(name)
    # The default reaches main's parser as a string and passes the same check as a given one.
    switch_onsets = study("switch_onsets")
    parsers = []
    real = switch_onsets.study_parser
    monkeypatch.setattr(tool, "study_parser", lambda *a: parsers.append(real(*a)) or parsers[-1])

    def stop(*args, **kwargs):
        raise RuntimeError("stop")

    monkeypatch.setattr(sam2_model, "build_model", stop)
    monkeypatch.setattr(sys, "argv", [name, "--davis", str(tmp_path)])
    with pytest.raises(RuntimeError, match="stop"):  # parsing passed; stopped where the model is built
        tool.main()
    default = parsers[0].get_default("policy")
    assert parse_memory_policy(default) is not None


def test_the_tracker_helper_refuses_the_official_policy(study):
    switch_onsets = study("switch_onsets")
    model = sam2_model.build_model("default")
    with pytest.raises(ValueError, match="not robust"):
        switch_onsets.robust_tracker(model, "official")
    assert switch_onsets.robust_tracker(model, "robust")._robust is not None
