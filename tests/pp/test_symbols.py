"""Gene symbol mapping: R's transferSymbol, rm_duplicates and mouse2human_mat."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact.pp._symbols as sym
from secact.datasets import _genes
from secact.pp._symbols import GeneMap, gene_map, looks_like_ensembl, transfer_symbols

DATA = Path(_genes.__file__).parent / "data"


@pytest.fixture
def toy_alias(monkeypatch):
    """A hand-built alias table (first row of an alias wins, as R's match)."""
    records = [
        ("A1", "GENE1"),
        ("a1", "GENE9"),  # case differs: a separate alias
        ("OLD", "NEW1"),
        ("OLD", "NEW2"),  # later row of the same alias: never used
        ("NA", "XK"),
        ("GENE1", "GENE1"),
        ("NEW1", "NEW1"),
    ]
    frame = pd.DataFrame(records, columns=["Alias", "Symbol"]).drop_duplicates("Alias")
    table = pd.Series(frame["Symbol"].to_numpy(), index=pd.Index(frame["Alias"].to_numpy()))
    monkeypatch.setattr(sym, "alias_table", lambda: table)
    return table


@pytest.fixture
def toy_mouse(monkeypatch):
    frame = pd.DataFrame(
        {
            "homoloid": ["1", "2", "2", "3"],
            "mouse": ["m1", "m2", "m3", "m4"],
            "human": ["H2", "H1", "H1", "H3"],
        }
    )
    monkeypatch.setattr(sym, "mouse_to_human", lambda: frame)
    return frame


# --------------------------------------------------------------------------- tables


def test_alias_table_reads_strings_verbatim():
    table = _genes.alias_table()
    assert table.index.is_unique
    assert table.dtype == object
    assert table["NA"] == "XK"  # the gene called "NA" is not a missing value
    assert table["A1BG"] == "A1BG"
    assert not table.isna().any()
    assert _genes.alias_table() is table  # cached


def test_alias_table_first_row_wins_on_real_table():
    table = _genes.alias_table()
    # "ST3GalIA" has two rows (ST3GalIA,ST3GAL1 and ST3GalIA,1,ST3GAL1); the first wins.
    assert table["ST3GalIA"] == "ST3GAL1"
    # "beta-1" appears in three lines with unquoted commas; the first record wins.
    assert table["beta-1"] == "B3GALNT1"


def test_r_csv_record_splitting():
    raw = b"Alias,Symbol\nA,B\nNERF-1a,b,ELF2\n\nX,Y,Z,W\nLONE\n"
    header, records = _genes._read_r_csv_records(raw, 2)
    assert header == ["Alias", "Symbol"]
    assert records == [["A", "B"], ["NERF-1a", "b"], ["ELF2", ""], ["X", "Y"], ["Z", "W"], ["LONE", ""]]
    # R's read.csv gives the same quirk on the shipped table.
    assert _genes.alias_table()["NERF-1a"] == "b"
    assert _genes.alias_table()["ELF2"] == "ELF2"  # its own earlier row comes first


def test_mouse_to_human_table():
    table = _genes.mouse_to_human()
    assert {"homoloid", "mouse", "human"} <= set(table.columns)
    assert table["mouse"].is_unique
    with gzip.open(DATA / _genes.MOUSE2HUMAN_FILE, "rt") as fh:
        n_lines = sum(1 for _ in fh) - 1
    assert len(table) == n_lines
    row = table.loc[table["mouse"] == "Cd4"]
    assert row["human"].tolist() == ["CD4"]


# --------------------------------------------------------------------------- transfer_symbols


def test_transfer_symbols_hand_built(toy_alias):
    names = ["A1", "a1", "OLD", "NA", "nan", "GENE1", "unknown", "Old", "NULL"]
    out = transfer_symbols(names)
    assert out.dtype == object
    assert out.tolist() == ["GENE1", "GENE9", "NEW1", "XK", "nan", "GENE1", "unknown", "Old", "NULL"]


def test_transfer_symbols_never_uppercases():
    out = transfer_symbols(["Cd4", "Ifng", "IFNG", "ifng"])
    assert out.tolist() == ["Cd4", "Ifng", "IFNG", "ifng"]


def test_transfer_symbols_accepts_index_and_array():
    names = ["DDX58", "IFNG"]
    for given in (names, np.array(names), pd.Index(names), tuple(names)):
        assert transfer_symbols(given).tolist() == ["RIGI", "IFNG"]


def test_transfer_symbols_on_cytosig_is_mostly_identity():
    genes = pd.read_csv(DATA / "CytoSig.tsv.gz", sep="\t", index_col=0).index.to_numpy(dtype=object)
    out = transfer_symbols(genes)
    changed = int((out != genes).sum())
    # 54 of 4,881 CytoSig genes carry an older symbol that NCBI lists as an alias today.
    assert changed == 54
    assert changed / genes.size < 0.02
    assert dict(zip(genes[out != genes], out[out != genes], strict=True))["DDX58"] == "RIGI"


# --------------------------------------------------------------------------- duplicates


def test_duplicates_need_totals():
    with pytest.raises(ValueError, match="totals"):
        gene_map(["A", "B", "A"], map_symbols=False)


def test_duplicates_keep_largest_total_first_on_ties():
    names = ["A", "B", "A", "C", "B"]
    totals = np.array([1.0, 5.0, 3.0, 2.0, 5.0])
    kept = gene_map(names, totals=totals, map_symbols=False)
    # A: rows 0 (1) and 2 (3) -> row 2; B: rows 1 and 4 tie at 5 -> row 1 (first).
    # Current R keeps the surviving rows in their original order.
    assert kept.symbols.tolist() == ["B", "A", "C"]
    assert kept.selected.tolist() == [1, 2, 3]
    first = gene_map(names, totals=totals, map_symbols=False, duplicate_position="first")
    # Older R: at the position of the symbol's first occurrence.
    assert first.symbols.tolist() == ["A", "B", "C"]
    assert first.selected.tolist() == [2, 1, 3]
    assert not kept.is_identity and kept.is_selection


def test_duplicates_created_by_alias_mapping(toy_alias):
    names = ["OLD", "X", "NEW1"]  # OLD -> NEW1 collides with NEW1
    gm = gene_map(names, totals=np.array([10.0, 1.0, 3.0]))
    assert gm.symbols.tolist() == ["NEW1", "X"]
    assert gm.selected.tolist() == [0, 1]
    gm = gene_map(names, totals=np.array([1.0, 1.0, 3.0]))
    assert gm.symbols.tolist() == ["X", "NEW1"]
    assert gm.selected.tolist() == [1, 2]


def test_rm_duplicates_matches_reference_loop():
    rng = np.random.default_rng(1)
    names = rng.choice([f"G{i}" for i in range(30)], size=80)
    totals = rng.integers(0, 4, size=80).astype(float)  # many ties
    gm = gene_map(names, totals=totals, map_symbols=False)
    # Direct transcription of R's rule.
    chosen = {}
    for g in dict.fromkeys(names):
        idx = np.flatnonzero(names == g)
        chosen[g] = idx[np.flatnonzero(totals[idx] == totals[idx].max())[0]]
    expected = sorted(chosen.values())
    assert gm.selected.tolist() == expected
    assert gm.symbols.tolist() == [names[i] for i in expected]
    assert gm.symbols.is_unique


# --------------------------------------------------------------------------- mouse


def test_mouse_genes_are_summed(toy_mouse):
    names = ["m3", "x", "m1", "m2"]
    gm = gene_map(names, organism="mouse", map_symbols=False)
    assert gm.symbols.tolist() == ["H1", "H2"]
    expected = np.array([[1, 0], [0, 0], [0, 1], [1, 0]], dtype=float)
    np.testing.assert_array_equal(gm.matrix.toarray(), expected)
    X = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=float)
    np.testing.assert_array_equal(gm.apply(X), [[5, 3], [13, 7]])
    assert not gm.is_selection and gm.selected is None


def test_mouse_then_symbols_then_duplicates(toy_mouse, monkeypatch):
    # H3 is an alias of H1: after summing (H1 = m2 + m3), transferSymbol makes a duplicate,
    # resolved with the summed totals.
    monkeypatch.setattr(sym, "alias_table", lambda: pd.Series(["H1"], index=pd.Index(["H3"])))
    names = ["m2", "m3", "m4", "m1"]
    with pytest.raises(ValueError, match="totals"):
        gene_map(names, organism="mouse")
    gm = gene_map(names, organism="mouse", totals=np.array([1.0, 1.0, 3.0, 0.0]))
    # levels H1 (2.0), H2 (0.0), H3 -> H1 (3.0): the H3 row wins and keeps its place.
    assert gm.symbols.tolist() == ["H2", "H1"]
    np.testing.assert_array_equal(gm.matrix.toarray(), [[0, 0], [0, 0], [0, 1], [1, 0]])
    gm = gene_map(names, organism="mouse", totals=np.array([2.0, 2.0, 3.0, 0.0]))
    assert gm.symbols.tolist() == ["H1", "H2"]
    np.testing.assert_array_equal(gm.matrix.toarray(), [[1, 0], [1, 0], [0, 0], [0, 1]])


def test_mouse_real_table():
    gm = gene_map(["Ifng", "Cd4", "NotAGene", "Tnf"], organism="mouse")
    assert gm.symbols.tolist() == ["CD4", "IFNG", "TNF"]
    assert gm.selected.tolist() == [1, 0, 3]


def test_mouse_nothing_matched():
    with pytest.raises(ValueError, match="No mouse genes"):
        gene_map(["IFNG", "CD4"], organism="mouse")


# --------------------------------------------------------------------------- GeneMap.apply


def test_identity_detection(toy_alias):
    gm = gene_map(["GENE1", "X", "Y"])
    assert gm.is_identity
    assert sp.issparse(gm.matrix) and gm.matrix.format == "csc"
    renamed = gene_map(["A1", "X", "Y"])  # renamed, but nothing moved: product skipped
    assert renamed.is_identity and renamed.symbols.tolist() == ["GENE1", "X", "Y"]
    assert not gene_map(["A", "A"], totals=np.array([1.0, 2.0]), map_symbols=False).is_identity


@pytest.mark.parametrize("mouse", [False, True])
def test_apply_dense_csr_csc_agree(mouse, toy_mouse):
    rng = np.random.default_rng(0)
    if mouse:
        names = ["m3", "x", "m1", "m2", "m4"]
        gm = gene_map(names, organism="mouse", map_symbols=False)
    else:
        names = ["A", "B", "A", "C", "B"]
        gm = gene_map(names, totals=np.arange(5.0), map_symbols=False)
    dense = rng.poisson(1.0, size=(7, len(names))).astype(np.float32)
    expected = dense.astype(np.float64) @ gm.matrix.toarray()
    out_dense = gm.apply(dense)
    assert isinstance(out_dense, np.ndarray) and out_dense.dtype == np.float32
    np.testing.assert_array_equal(out_dense, expected)
    for cls in (sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array):
        X = cls(dense)
        out = gm.apply(X)
        assert type(out) is cls, (cls, type(out))
        assert out.shape == (7, gm.n_output) and out.dtype == np.float32
        np.testing.assert_array_equal(out.toarray(), expected)
    ints = gm.apply(sp.csr_matrix(dense.astype(np.int32)))
    assert ints.dtype == np.float64
    np.testing.assert_array_equal(ints.toarray(), expected)


def test_apply_shape_error():
    gm = gene_map(["A", "B"], map_symbols=False)
    with pytest.raises(ValueError, match="shape"):
        gm.apply(np.zeros((3, 3)))


def test_genemap_validation():
    with pytest.raises(ValueError, match="columns"):
        GeneMap(symbols=pd.Index(["A"]), matrix=sp.identity(2, format="csc"))
    with pytest.raises(ValueError, match="organism"):
        gene_map(["A"], organism="rat")
    with pytest.raises(ValueError, match="one value per gene"):
        gene_map(["A", "B"], totals=np.ones(3))


def test_apply_totals():
    gm = gene_map(["A", "B", "A"], totals=np.array([1.0, 2.0, 3.0]), map_symbols=False)
    np.testing.assert_array_equal(gm.apply_totals(np.array([1.0, 2.0, 3.0])), [2.0, 3.0])


def test_looks_like_ensembl():
    assert looks_like_ensembl(["ENSG00000141510", "ENSG00000111640.15", "ENSMUSG00000000001"])
    assert looks_like_ensembl(["ENSG00000141510", "ENSG00000111640", "TP53"])
    assert not looks_like_ensembl(["TP53", "GAPDH", "ENSG00000141510"])
    assert not looks_like_ensembl([])
    assert not looks_like_ensembl(["ENSEMBL", "ENS", "ENSG"])
