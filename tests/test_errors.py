"""Errors that name their parameters: one template, written as Python or as command options."""

from __future__ import annotations

import pickle

import pytest

from secact._errors import ParamError, param_error, render


def _options(name: str, text: str) -> str:
    return f"--{name.replace('_', '-')}" if text == "True" else f"--{name.replace('_', '-')} {text}"


def test_a_template_reads_as_python_and_as_options():
    err = ParamError(
        "{use_raw=True} but {where} has no raw; pass {layer=...} or {n:,} cells.", where="x", n=1234
    )
    assert str(err) == "use_raw=True but x has no raw; pass layer=... or 1,234 cells."
    assert err.param == "use_raw"  # the first parameter named
    assert (
        render(err.template, err.values, _options)
        == "--use-raw but x has no raw; pass --layer ... or 1,234 cells."
    )
    assert isinstance(err, ValueError)


def test_values_are_shown_with_repr_and_braces_in_them_are_kept():
    err = ParamError("{out=} exists; {why}", out="/tmp/{a}.h5ad", why="{not a field}", param="overwrite")
    assert str(err) == "out='/tmp/{a}.h5ad' exists; {not a field}"
    assert err.param == "overwrite"


def test_other_exception_types_keep_their_type_and_pickle():
    err = param_error(FileExistsError, "{out=} exists; pass {overwrite=True}.", out="r.h5ad")
    assert isinstance(err, FileExistsError) and err.param == "out"
    assert str(err) == "out='r.h5ad' exists; pass overwrite=True."
    for original in (err, ParamError("{groupby=} is missing", groupby="g")):
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is type(original) and str(copy) == str(original)
        assert (copy.template, copy.values, copy.param) == (
            original.template,
            original.values,
            original.param,
        )


def test_a_missing_value_is_a_bug_not_a_message():
    with pytest.raises(KeyError):
        ParamError("{out=} exists")
