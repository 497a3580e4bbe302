from __future__ import annotations

import re
import subprocess
import sys

import pytest

from unlearnbench import registry
from unlearnbench.api import UnlearningMethod
from unlearnbench.errors import UserError


def test_builtins_are_discovered():
    assert {"noop", "safemax"} <= set(registry.names("method"))
    assert {"none", "relearn", "relearn_benign", "embedding_inversion", "classifier_guided"} <= set(
        registry.names("attack")
    )
    assert {"unlearning_accuracy", "entropy", "retain_accuracy", "fid", "noise_likeness", "cost"} <= set(
        registry.names("metric")
    )


def test_unknown_name_suggests_and_lists():
    with pytest.raises(UserError) as e:
        registry.get("method", "safemx")
    msg = str(e.value)
    assert "unknown method 'safemx'; did you mean 'safemax'?" in msg and "known: " in msg and "noop" in msg


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):

        @registry.register("safemax")
        class Impostor(UnlearningMethod):
            """Not SAFEMax."""


def test_every_entry_has_a_one_line_description():
    for kind in ("method", "attack", "metric"):
        for name, summary in registry.describe(kind):
            assert summary and "\n" not in summary, (kind, name)


def test_explicit_plugin_module_registers(tmp_path, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(
        "from unlearnbench.api import UnlearningMethod\n"
        "from unlearnbench.registry import register\n"
        "@register('my_method')\n"
        "class Mine(UnlearningMethod):\n"
        '    """A plugin method."""\n'
        "    def unlearn(self, model, task, *, generator):\n"
        "        return model\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "unlearnbench.cli", "list", "methods", "--plugin", "my_plugin"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"^my_method\s+A plugin method\.$", out.stdout, re.M), out.stdout


def test_plugins_are_not_imported_without_being_named(tmp_path):
    # a module lying on the path is not imported unless --plugin or an entry point names it
    (tmp_path / "stray_plugin.py").write_text("raise SystemExit('imported!')\n")
    out = subprocess.run(
        [sys.executable, "-m", "unlearnbench.cli", "list", "methods"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
        check=False,
    )
    assert out.returncode == 0 and "imported!" not in out.stderr


def test_a_plugin_is_found_in_the_working_folder_or_by_its_file_path(tmp_path):
    """``--plugin NAME`` finds a module in the working folder (a console script does not search it by itself),
    ``--plugin path/to/file.py`` a file anywhere; a missing file is one line, exit 2."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    plugin = tmp_path / "elsewhere" / "plugin_probe.py"
    plugin.parent.mkdir()
    plugin.write_text(
        "from unlearnbench.methods.noop import Noop\nfrom unlearnbench.registry import register\n\n\n"
        '@register("probe_method")\nclass Probe(Noop):\n    """A probe."""\n'
    )
    script = Path(sys.executable).parent / "unlearnbench"
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for cwd, name in ((plugin.parent, "plugin_probe"), (tmp_path, str(plugin))):
        done = subprocess.run([script, "list", "methods", "--plugin", name], cwd=cwd, env=env, capture_output=True)
        assert done.returncode == 0 and re.search(rb"\nprobe_method +A probe\.\n", done.stdout), done.stderr
    done = subprocess.run([script, "list", "methods", "--plugin", "nothing_here.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error: --plugin 'nothing_here.py' could not be loaded")
