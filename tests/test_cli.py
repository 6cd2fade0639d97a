"""The one `elastogan` command: every subcommand has help, parsing stays light."""

import subprocess
import sys

import pytest

from elastogan.cli import build_parser, main


def _subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


def test_the_documented_commands_exist():
    assert {"simulate", "manifest", "ingest", "train", "predict", "evaluate", "stats", "app", "study", "bench"} <= set(_subcommands())


@pytest.mark.parametrize("command", _subcommands())
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: elastogan {command}") and len(out) > 200


def test_building_the_parser_imports_no_heavy_library():
    # Command modules import torch, MONAI, gradio and scipy inside their functions only, so
    # `elastogan --help` answers at once.
    code = ("import sys, elastogan.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch', 'monai', 'gradio', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_command_and_unknown_command_exit_2(capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2


def test_benchmarks_give_the_process_its_thread_count_back():
    import torch

    from elastogan.models.bench import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
