"""Writing outputs: atomic, through symlinks, never over a special file, with the user's umask."""

from __future__ import annotations

import json
import os
import stat

import pytest

from agos.errors import AgosError
from agos.fileio import atomic_dir, atomic_file, json_text, write_json


def test_writes_through_a_symlink_and_keeps_it(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json({"a": 1}, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().strip().startswith("{")
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "sub" / "new.json")
    write_json({"b": 2}, dangling)
    assert dangling.is_symlink() and (tmp_path / "sub" / "new.json").is_file()


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_special_files_are_refused_and_left_alone(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif kind == "directory":
        path = tmp_path / "folder"
        path.mkdir()
    else:
        path = tmp_path / "null-link"
        path.symlink_to("/dev/null")
    before = os.stat(path).st_mode
    with pytest.raises(AgosError, match="cannot write"):
        write_json({}, path)
    assert os.stat(path).st_mode == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_dev_full_from_the_cli_is_one_line_and_untouched(capsys, mixed_trace):
    from tests.cli_helpers import one_error_line, run_cli

    before = os.stat("/dev/full")
    code, _, err = run_cli(capsys, "sparsity", str(mixed_trace), "--json", "/dev/full")
    assert code != 0 and "not a regular file" in one_error_line(err)
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_new_files_follow_the_umask_and_old_ones_keep_their_mode(tmp_path):
    old = os.umask(0o077)
    try:
        write_json({}, tmp_path / "private.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    kept.chmod(0o640)
    write_json({"x": 1}, kept)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def _refused(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_an_unwritable_folder_is_one_error(tmp_path, monkeypatch, capsys, mixed_trace):
    """The kernel's refusal to create a file (EACCES) is one line, from the library and from the
    CLI. The refusal is injected: chmod cannot make a folder unwritable to root, as CI runs."""
    from tests.cli_helpers import one_error_line, run_cli

    monkeypatch.setattr("agos.fileio.tempfile.mkstemp", _refused)
    monkeypatch.setattr("agos.fileio.tempfile.mkdtemp", _refused)
    with pytest.raises(AgosError, match=r"cannot write .*out\.json: Permission denied"):
        write_json({}, tmp_path / "out.json")
    with (
        pytest.raises(AgosError, match=r"cannot write .*folder: Permission denied"),
        atomic_dir(tmp_path / "folder"),
    ):
        pass
    code, _, err = run_cli(capsys, "sparsity", str(mixed_trace), "--json", str(tmp_path / "s.json"))
    assert code == 2 and one_error_line(err).endswith("s.json: Permission denied")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_directory_is_built_aside_and_renamed_into_place(tmp_path):
    target = tmp_path / "stage"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("new")
        assert not target.exists()
    assert (target / "a").read_text() == "new"
    with atomic_dir(target) as tmp:  # one that exists is kept (a concurrent build of the same stage)
        (tmp / "a").write_text("other")
    assert (target / "a").read_text() == "new"
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "b").write_text("replaced")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(path) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_json_is_strict_ascii_and_reads_back_to_the_same_values():
    """What other parsers read: NaN and ±inf as null (never bare NaN/Infinity), ASCII only, every
    float back to the same double (the text of a float may differ from `json.dumps`'s: 3.6e-05 is
    written 0.000036)."""
    floats = [3.606509e-05, 1e-300, 1 / 3, 1e16, 5e-324, 1.7976931348623157e308, -0.0, 2.5e-07]
    value = {"nan": float("nan"), "inf": [float("inf"), -float("inf")], "x": "× · —", "f": floats, "n": 2**62}
    text = json_text(value)
    assert text.isascii() and text.endswith("}\n")
    assert json.loads(text) == {"nan": None, "inf": [None, None], "x": "× · —", "f": floats, "n": 2**62}
    assert "NaN" not in text and "Infinity" not in text
