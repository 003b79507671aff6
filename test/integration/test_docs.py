"""The documents made from the settings table (make docs) say what the
binary does: the example config is accepted as it is and with every
default written out, the README's table names the settings --help
lists, and the man page renders without a warning.  That they are what
`make docs` would write is make lint's check (scripts/docs).
"""
import re
import shutil
import subprocess

import pytest

from conftest import MAILREPD, PASSWORD, REPO, run


def accepted(tmp_path, config):
    """Whether `mailrepd user add` takes config (it reads every setting)."""
    p = run("user", "add", "alice", "--config", config, "--data",
            tmp_path / "data", input=PASSWORD + "\n")
    assert p.returncode == 0, p.stderr
    return True


def test_example_config_is_accepted(tmp_path):
    assert accepted(tmp_path, REPO / "contrib/mailrepd.conf")


def test_every_default_in_the_example_config_is_accepted(tmp_path):
    text = (REPO / "contrib/mailrepd.conf").read_text()
    # "#key = value" lines are defaults; "#key =" has none to write.
    written = re.sub(r"(?m)^#([a-z-]+ = \S.*)$", r"\1", text)
    assert written != text
    config = tmp_path / "defaults.conf"
    config.write_text(written)
    assert accepted(tmp_path, config)


def test_readme_table_names_every_setting_of_help():
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- begin settings")[1].split(
        "<!-- end settings -->")[0]
    in_readme = re.findall(r"(?m)^\| `([a-z-]+)` \|", table)
    out = subprocess.run([MAILREPD, "--help"], stdout=subprocess.PIPE,
                         text=True).stdout
    in_help = re.findall(r"(?m)^  --([a-z-]+) ", out.split("Settings")[1])
    assert in_readme == in_help


@pytest.mark.skipif(shutil.which("man") is None, reason="no man")
def test_man_page_renders_without_warnings():
    p = subprocess.run(["man", "--warnings", "-l",
                        str(REPO / "doc/mailrepd.8")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True,
                       env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "max-message-size" in p.stdout
