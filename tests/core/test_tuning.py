"""Cache sizes read at run time, the kernel variants, and the per-machine choice kept on disk.

Every variant is run against SecAct's test written out (``test_kernels.reference``) and against
SecAct R's Ly86 outputs; the timed choice is run for real on a small signature shape.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

import secact
from secact.core import engine as engine_module
from secact.core import machine, tuning
from secact.core.engine import Engine
from secact.core.permutations import permutation_table
from secact.core.ridge import ridge_model

from ..conftest import read_reference
from .test_kernels import STATS, reference

ALL = [v for d in ("float64", "float32") for v in tuning.variants(d)]


def _ids(v):
    return f"{v.dtype}-{v.name}"


# -- cache sizes ---------------------------------------------------------------------------------
def _fake_sysfs(root, entries):
    for i, (level, kind, size) in enumerate(entries):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return root


def test_sizes_read_from_sysfs(tmp_path):
    root = _fake_sysfs(
        tmp_path,
        [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"), (3, "Unified", "105M")],
    )
    got = machine.detect(root)
    assert (got.l1d, got.l2, got.l3, got.source) == (48 << 10, 2 << 20, 105 << 20, "sysfs")
    assert got.describe() == "L1d 48 KiB, L2 2 MiB, L3 105 MiB (sysfs)"


def test_sizes_fall_back_to_sysconf_then_defaults(tmp_path, monkeypatch):
    missing = tmp_path / "none"
    monkeypatch.setattr(machine, "_from_sysconf", lambda: {1: 65536, 2: 524288})
    got = machine.detect(missing)
    assert (got.l1d, got.l2, got.source) == (65536, 524288, "sysconf")
    # an L1 only is not enough to size the tiles: defaults
    monkeypatch.setattr(machine, "_from_sysconf", lambda: {1: 65536})
    assert machine.detect(_fake_sysfs(tmp_path / "l1", [(1, "Data", "32K")])) == machine.DEFAULT


def test_this_machine_reports_its_caches():
    got = machine.detect()
    assert got.l1d >= 4096 and got.l2 > got.l1d


@pytest.mark.parametrize(
    ("text", "size"),
    [("48K", 48 << 10), ("2048K", 2 << 20), ("2M", 2 << 20), ("2 MiB", 2 << 20), ("32768", 32768)],
)
def test_parse_size(text, size):
    assert machine.parse_size(text) == size


def test_forced_cache_sizes(monkeypatch):
    with secact.settings.override(cache_sizes="32K/512K"):
        got = machine.cache_sizes()
        assert (got.l1d, got.l2, got.source) == (32 << 10, 512 << 10, "settings")
        forced = machine.fingerprint()
    with secact.settings.override(cache_sizes={"l1d": "48K", "l2": "2M"}):
        assert (machine.cache_sizes().l1d, machine.cache_sizes().l2) == (48 << 10, 2 << 20)
        assert machine.fingerprint() != forced  # kept choices are per cache sizes
    for bad in ("32K/x", "1/2/3/4", {"l4": 1}, {"l2": -5}, 7):
        with pytest.raises(ValueError, match="cache"):
            secact.settings.cache_sizes = bad
    assert secact.settings.cache_sizes is None
    with pytest.raises(ValueError, match="tune"):
        secact.settings.tune = "sometimes"


# -- candidates and the untimed rule ---------------------------------------------------------------
def test_candidates_follow_the_l2_cache():
    small = machine.CacheSizes(32 << 10, 512 << 10, 8 << 20, "test")
    large = machine.CacheSizes(48 << 10, 4 << 20, 32 << 20, "test")
    n = 7919  # the SecAct signature's overlap with a typical profile
    # a 16-protein float64 tile (1 MB) is too large for half of a 512 KiB L2: one row per gene only
    assert {v.width for v in tuning.candidates("float64", n, small)} == {8}
    assert {v.width for v in tuning.candidates("float64", n, large)} == {8, 16}
    assert {v.perms for v in tuning.candidates("float64", n, small)} == {4, 8, 16}
    assert tuning.rule("float64", n, small).name == "8x8"
    assert tuning.rule("float64", n, large).name == "8x16"
    assert tuning.rule("float32", n, small).name == "8x16"


# -- every variant gives SecAct's numbers ------------------------------------------------------------
@pytest.mark.parametrize("variant", ALL, ids=_ids)
@pytest.mark.parametrize("n_perm", [9, 64])
def test_every_variant_equals_the_reference(problem, variant, n_perm):
    model, values, centre = problem
    table = permutation_table(model.n_genes, n_perm, rng="mt19937", seed=3)
    expected = reference(model, values, centre, table)
    got = Engine(
        model, table=table, offset=centre, layout="sparse", dtype=variant.dtype, variant=variant
    ).run(sp.csr_matrix(values))
    if variant.dtype == "float64":
        for key in STATS:
            np.testing.assert_allclose(getattr(got, key), expected[key], rtol=0, atol=1e-10, err_msg=key)
    else:  # float32 products: the stated accuracy of dtype="float32"
        assert np.nanmax(np.abs(got.zscore - expected["zscore"])) <= 1e-4
        np.testing.assert_allclose(got.beta, expected["beta"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_variants_give_the_same_numbers(problem, dtype):
    """Same terms, same order: the variants agree to the last bits (1e-13), p-values exactly."""
    model, values, centre = problem
    table = permutation_table(model.n_genes, 37, rng="srand")
    block = sp.csr_matrix(values)
    runs = [
        Engine(model, table=table, offset=centre, layout="sparse", dtype=dtype, variant=v).run(block)
        for v in tuning.variants(dtype)
    ]
    for other in runs[1:]:
        for key in STATS:
            np.testing.assert_allclose(getattr(other, key), getattr(runs[0], key), rtol=0, atol=1e-13)
        np.testing.assert_array_equal(other.pvalue, runs[0].pvalue)


@pytest.mark.parametrize("variant", tuning.variants("float64"), ids=_ids)
def test_every_variant_reproduces_secact_r(variant, ly86, secact_signature, monkeypatch):
    """SecAct R 1.1 on the Ly86 profile, with the profile run through the sparse kernels."""
    # never dense, although the profile is (density 1): the kernel under test runs
    monkeypatch.setattr(engine_module, "CROSSOVER_RANGE", (0.0, 2.0))
    monkeypatch.setattr(tuning, "DENSE_FROM", 1.5)
    monkeypatch.setattr(tuning, "rule", lambda *a, **k: variant)
    runs = []
    monkeypatch.setattr(Engine, "_run_sparse", _spy(Engine._run_sparse, runs))
    res = secact.infer(ly86, "SecAct", differential=True, rng="mt19937")
    assert runs == [variant]
    ref = read_reference("r_mt19937_grouped")
    for key in ("beta", "se", "zscore"):
        assert np.abs(getattr(res, key).to_numpy() - ref[key].to_numpy()).max() <= 1e-10
    np.testing.assert_array_equal(
        np.rint(res.pvalue.to_numpy() * 1001), np.rint(ref["pvalue"].to_numpy() * 1001)
    )


def _spy(method, seen):
    def run(self, a):
        seen.append(self.variant)
        return method(self, a)

    return run


def test_variant_must_match_dtype(problem):
    model, _, _ = problem
    table = permutation_table(model.n_genes, 9)
    with pytest.raises(ValueError, match="float32"):
        Engine(model, table=table, dtype="float64", variant=tuning.variants("float32")[0])


# -- the timed choice, kept per machine -------------------------------------------------------------
@pytest.fixture
def timed(tmp_path, monkeypatch):
    """settings.tune = True with an empty data folder and no choice in memory."""
    monkeypatch.setattr(tuning, "_chosen", {})
    with secact.settings.override(tune=True, data_dir=tmp_path):
        yield tmp_path


def test_first_use_measures_then_keeps(timed, monkeypatch):
    n, p = 304, 19  # their own shape classes (2 ** 8.25, 2 ** 4.25)
    choice = tuning.choose("float64", n, p)
    assert choice.source == "measured"
    assert set(choice.gflops) == {v.name for v in tuning.candidates("float64", n)}
    # the rule's variant, unless another was more than 5% faster round by round (then the fastest)
    rule = tuning.rule("float64", n)
    assert set(choice.speedup) == set(choice.gflops) and choice.speedup[rule.name] == 1.0
    fastest = max(choice.speedup, key=choice.speedup.get)
    if choice.speedup[fastest] > 1 + tuning.TIE:
        assert choice.variant.name == fastest
    else:
        assert choice.variant == rule
    assert all(g > 0 for g in choice.gflops.values())
    assert 0.02 <= choice.dense_from <= 0.9
    assert choice.seconds > 0
    kept = json.loads((timed / "tuning" / f"{machine.fingerprint()}.json").read_text())
    key = f"float64/{n}x{p}/v{tuning.VERSION}"
    assert list(kept) == [key]
    assert kept[key]["perms"] == choice.variant.perms
    # a new process (no memo) reads it back without timing anything, also for a shape that
    # differs by a few genes
    monkeypatch.setattr(tuning, "_chosen", {})
    monkeypatch.setattr(tuning, "measure", _fail)
    again = tuning.choose("float64", n - 7, p + 1)
    assert again.source == "kept"
    assert (again.variant, again.dense_from, again.gflops) == (
        choice.variant,
        choice.dense_from,
        choice.gflops,
    )
    # an engine built afterwards runs that choice
    table = permutation_table(n, 9)
    engine = Engine(ridge_model(np.ones((n, p)) + np.eye(n, p), lam=1.0), table=table)
    assert (engine.variant, engine.dense_from) == (choice.variant, choice.dense_from)


def _fail(*args, **kwargs):
    raise AssertionError("measured again")


def test_shape_classes():
    assert tuning.shape_class(7720) == tuning.shape_class(7919) == 8192
    assert tuning.shape_class(657) != tuning.shape_class(1170)
    assert tuning.shape_class(43) == 45 and tuning.shape_class(1) == 2


def test_rerun_measures_again_once(timed, monkeypatch):
    calls = []
    real = tuning.measure
    monkeypatch.setattr(tuning, "measure", lambda *a, **k: calls.append(a) or real(*a, **k))
    tuning.choose("float64", 300, 20)
    secact.settings.tune = "rerun"
    tuning.choose("float64", 300, 20)
    assert len(calls) == 2
    assert secact.settings.tune is True  # once
    tuning.choose("float64", 300, 20)
    assert len(calls) == 2


def test_damaged_kept_file_is_measured_again(timed):
    path = timed / "tuning" / f"{machine.fingerprint()}.json"
    path.parent.mkdir()
    path.write_text("{not json")
    assert tuning.choose("float64", 300, 20).source == "measured"
    assert json.loads(path.read_text())  # replaced whole


def test_unwritable_data_folder_still_chooses(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "_chosen", {})
    blocker = tmp_path / "file"
    blocker.write_text("")
    with (
        secact.settings.override(tune=True, data_dir=blocker),
        pytest.warns(RuntimeWarning, match="could not keep the kernel tuning .* writable folder"),
    ):
        choice = tuning.choose("float64", 300, 20)
    assert choice.source == "measured"


def test_untimed_choice_follows_the_rule(monkeypatch):
    monkeypatch.setattr(tuning, "measure", _fail)
    with secact.settings.override(tune=False, cache_sizes="32K/512K"):
        choice = tuning.choose("float64", 7919, 657)
    assert (choice.source, choice.variant.name, choice.dense_from) == ("rule", "8x8", tuning.DENSE_FROM)


def test_engine_pickles_with_its_choice(problem, monkeypatch):
    model, values, centre = problem
    table = permutation_table(model.n_genes, 9)
    engine = Engine(model, table=table, offset=centre)
    engine.run(sp.csr_matrix(values))  # builds the per-run constants
    clone = pickle.loads(pickle.dumps(engine))
    assert clone._variant == engine.variant and clone._dense_from == engine.dense_from
    assert clone._sparse is None and clone._tiles == {}
    np.testing.assert_array_equal(
        clone.run(sp.csr_matrix(values)).zscore, engine.run(sp.csr_matrix(values)).zscore
    )


def test_dense_blocks_need_no_timing(timed, problem, monkeypatch):
    """A bulk profile (all values stored) takes the dense path without timing the kernels; the
    first sparse block asks for the timed choice."""
    model, values, centre = problem
    table = permutation_table(model.n_genes, 9)
    calls = []
    rule_choice = tuning.Choice(tuning.rule("float64", model.n_genes), 0.3, "measured", "test")
    monkeypatch.setattr(tuning, "measure", lambda *a, **k: calls.append(a) or rule_choice)
    engine = Engine(model, table=table, offset=centre)
    engine.run(values + 1.0)  # density 1
    assert calls == []
    engine.run(sp.csr_matrix(values))  # ~30% stored: between the crossovers
    assert len(calls) == 1
    assert engine.variant == rule_choice.variant
