import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Frozen records refuse a field's assignment in every test, and in every qtool a test runs (see
# qtool/record.py): set before qtool's classes are made.
os.environ["QPM_CHECK_RECORDS"] = "1"


def _environment_for_the_session(name, value):
    """Sets an environment variable for the whole test run, then puts back what was there."""
    old = os.environ.get(name)
    os.environ[name] = value
    yield value
    if old is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = old


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test run gets its own analyzer cache, so no result comes from an earlier run."""
    yield from _environment_for_the_session("QPM_CACHE_DIR", str(tmp_path_factory.mktemp("qtool-cache")))


@pytest.fixture(scope="session", autouse=True)
def _private_reports(tmp_path_factory):
    """What the tests run writes its crash and stats reports into a directory of the run's own,
    never into the .qpm/ of the directory the tests were started from (a test that looks at
    reports names its own QPM_REPORT_DIR)."""
    yield from _environment_for_the_session("QPM_REPORT_DIR", str(tmp_path_factory.mktemp("qpm-reports")))


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
