"""Files written through ``secact.io._atomic``: complete or not at all, partial files cleaned."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import pandas as pd
import pytest

from secact.io._atomic import atomic_path, partial_path
from secact.io._files import check_h5ad
from secact.io._tables import write_table


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    out = tmp_path / "table.tsv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.tsv"]


def test_partial_files_are_named_like_the_sidecars_and_dead_ones_are_removed(tmp_path):
    out = tmp_path / "de.tsv.gz"
    assert partial_path(out).name == f".de.tsv.gz.partial-{os.getpid()}.tsv.gz"
    dead = tmp_path / f".de.tsv.gz.partial-{_dead_pid()}.tsv.gz"
    alive = tmp_path / f".de.tsv.gz.partial-{os.getppid()}.tsv.gz"  # a running process's file
    other = tmp_path / f".other.tsv.partial-{_dead_pid()}.tsv"  # another output's file
    for path in (dead, alive, other):
        path.write_bytes(b"x")
    frame = pd.DataFrame({"gene": ["A", "B"], "z": [1.5, -2.0]})
    write_table(frame, out, index=False)
    assert not dead.exists() and alive.exists() and other.exists()
    pd.testing.assert_frame_equal(pd.read_csv(out, sep="\t"), frame)  # gzip, tab-separated


def test_csv_suffix_writes_commas(tmp_path):
    out = write_table(pd.DataFrame({"a": [1]}, index=["g"]), tmp_path / "t.csv")
    assert out.read_text().splitlines() == [",a", "g,1"]


@pytest.mark.parametrize(
    ("groups", "hint"),
    [(["matrix"], "read_10x_h5"), (["matrix", "row_attrs", "col_attrs"], "read_loom"), (["x"], "its reader")],
)
def test_hdf5_files_that_are_not_anndata_name_their_converter(tmp_path, groups, hint):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        for group in groups:
            f.create_group(group)
    with pytest.raises(ValueError, match=hint):
        check_h5ad(path)
