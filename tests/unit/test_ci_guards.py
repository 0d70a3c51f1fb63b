"""In CI (CI=true) a missing optional install or data file fails the test that needs it instead of skipping."""

import pytest
from conftest import require, skip_or_fail


def test_require_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_module_for_rewardkit"):
        require("no_such_module_for_rewardkit")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_for_rewardkit"):
        require("no_such_module_for_rewardkit")
    assert require("json").dumps([1]) == "[1]"  # an installed module is returned


def test_skip_or_fail_reads_ci_each_call(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="data missing"):
        skip_or_fail("data missing")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("data missing")
