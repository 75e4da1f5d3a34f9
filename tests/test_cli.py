import subprocess
import sys

import pytest

from posediffusion.cli import COMMANDS, main


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "demo" in out


def test_import_is_lazy():
    code = "import sys, posediffusion; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: posediffusion {command} "), out[:200]


def test_help_of_every_subcommand_imports_no_torch():
    """Heavy imports happen inside each command's ``run``, so ``--help`` stays fast."""
    code = ("import contextlib, io, sys\n"
            "from posediffusion.cli import COMMANDS, main\n"
            "for command in COMMANDS:\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main([command, '--help'])\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
