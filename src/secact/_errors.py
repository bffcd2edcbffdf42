"""Errors about an argument that name the parameters they are about.

A message is written once, as a template in which a parameter is a field ending in ``=``:
``"{out=} exists; pass {overwrite=True} to replace it."`` The Python API shows it as Python
(``out='res.h5ad' exists; pass overwrite=True to replace it.``); the command line shows the
same template with its options (``--output 'res.h5ad' exists; pass --overwrite to replace
it.``). ``{name=}`` shows the value passed as ``name`` (its ``repr``), ``{name=TEXT}`` shows
``TEXT`` as the value (``{layer=...}``: any value); every other field is formatted as in
:meth:`str.format`.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["ParamError", "param_error", "render"]

#: ``spell(parameter, value_text)`` -> how a front end writes "this parameter with this value"
Spell = Callable[[str, str], str]
E = TypeVar("E", bound=BaseException)

_FORMATTER = string.Formatter()


def python_spelling(name: str, text: str) -> str:
    """``name=text``, as in a Python call."""
    return f"{name}={text}"


def render(template: str, values: Mapping[str, Any], spell: Spell = python_spelling) -> str:
    """The message of ``template`` with parameters written by ``spell`` (see the module docstring)."""
    parts = []
    for literal, field, spec, conversion in _FORMATTER.parse(template):
        parts.append(literal)
        if field is None:
            continue
        if "=" in field:
            name, _, text = field.partition("=")
            text = f"{text}:{spec}" if spec else text  # a ':' inside a literal value
            parts.append(spell(name, text or repr(values[name])))
        else:
            value = _FORMATTER.get_field(field, (), values)[0]
            parts.append(format(_FORMATTER.convert_field(value, conversion), spec))
    return "".join(parts)


def _params(template: str) -> list[str]:
    return [f.partition("=")[0] for _, f, _, _ in _FORMATTER.parse(template) if f and "=" in f]


def _attach(err: E, template: str, param: str | None, values: Mapping[str, Any]) -> E:
    named = _params(template)
    err.template = template
    err.values = dict(values)
    err.param = param or (named[0] if named else None)
    return err


class ParamError(ValueError):
    """A bad argument: a :class:`ValueError` whose ``param`` names the parameter at fault.

    Parameters
    ----------
    template
        The message; parameters as ``{name=}`` or ``{name=TEXT}`` fields (module docstring).
    param
        The parameter at fault (default: the first one in ``template``).
    **values
        Values of the template's fields.
    """

    template: str
    values: dict[str, Any]
    param: str | None

    def __init__(self, template: str, /, *, param: str | None = None, **values: Any) -> None:
        super().__init__(render(template, values))
        _attach(self, template, param, values)

    def __reduce__(self):
        return (_restore, (type(self), self.template, self.param, self.values))


def _restore(cls, template, param, values):
    return cls(template, param=param, **values)


def param_error(kind: type[E], template: str, /, *, param: str | None = None, **values: Any) -> E:
    """An exception of type ``kind`` (e.g. :class:`FileExistsError`) with the message of
    ``template`` and the ``template``, ``values`` and ``param`` attributes of :class:`ParamError`,
    for checks whose callers expect another type than :class:`ValueError`."""
    return _attach(kind(render(template, values)), template, param, values)
