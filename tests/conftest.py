import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test run gets its own analyzer cache, so no result comes from an earlier run."""
    cache = tmp_path_factory.mktemp("qtool-cache")
    old = os.environ.get("QPM_CACHE_DIR")
    os.environ["QPM_CACHE_DIR"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("QPM_CACHE_DIR", None)
    else:
        os.environ["QPM_CACHE_DIR"] = old


@pytest.fixture(scope="session", autouse=True)
def _private_reports(tmp_path_factory):
    """What the tests run writes its crash and stats reports into a directory of the run's own,
    never into the .qpm/ of the directory the tests were started from (a test that looks at
    reports names its own QPM_REPORT_DIR)."""
    reports = tmp_path_factory.mktemp("qpm-reports")
    old = os.environ.get("QPM_REPORT_DIR")
    os.environ["QPM_REPORT_DIR"] = str(reports)
    yield reports
    if old is None:
        os.environ.pop("QPM_REPORT_DIR", None)
    else:
        os.environ["QPM_REPORT_DIR"] = old


@pytest.fixture
def qtool(capsys, monkeypatch):
    """Runs qtool in this process from a directory: returns (exit code, stdout, stderr)."""
    from qtool.cli import main

    def run(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:
            rc = e.code
        out, err = capsys.readouterr()
        return rc, out, err

    return run
