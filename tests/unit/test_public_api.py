"""The public API: what ``nbdtui.__all__`` promises exists, and ``import nbdtui`` is cheap."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import nbdtui
import nbdtui.errors
from nbdtui.client import api
from nbdtui.uri import Endpoint, parse, without_secrets


@pytest.mark.parametrize("name", nbdtui.__all__)
def test_every_public_name_exists(name: str) -> None:
    assert getattr(nbdtui, name) is not None
    assert name in dir(nbdtui)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nbdtui.nope  # noqa: B018


def test_client_and_uri_names_are_the_real_ones() -> None:
    assert nbdtui.open is api.open
    assert nbdtui.list_exports is api.list_exports
    assert nbdtui.probe is api.probe
    assert nbdtui.parse is parse
    assert nbdtui.Endpoint is Endpoint
    assert nbdtui.without_secrets is without_secrets


def _error_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(nbdtui.errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == "nbdtui.errors"
        and not name.startswith("_")
    }


def test_every_error_class_is_public_and_the_same_object() -> None:
    classes = _error_classes()
    assert "NbdError" in classes and "RangeError" in classes
    for name, cls in classes.items():
        assert name in nbdtui.__all__, name
        assert getattr(nbdtui, name) is cls, name
    assert nbdtui.Errno is nbdtui.errors.Errno


def test_no_exception_class_is_defined_outside_errors_py() -> None:
    # Private control flow (a leading underscore) may stay in its module.
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(nbdtui.__path__, "nbdtui."):
        if info.name.endswith("__main__"):
            continue  # it runs the app
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and info.name != "nbdtui.errors"
            ):
                assert name.startswith("_"), f"{info.name}.{name} belongs in nbdtui.errors"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return set(out.stdout.split())


def test_import_nbdtui_is_cheap() -> None:
    loaded = _modules_after("import nbdtui")
    for heavy in ("textual", "asyncssh", "asyncio", "nbdtui.client", "nbdtui.uri", "rich"):
        assert heavy not in loaded, heavy


def test_using_an_error_class_loads_no_client() -> None:
    loaded = _modules_after("import nbdtui\nnbdtui.NbdError\nnbdtui.parse")
    assert "nbdtui.errors" in loaded and "nbdtui.uri" in loaded
    for heavy in ("textual", "asyncssh", "asyncio", "nbdtui.client"):
        assert heavy not in loaded, heavy


def test_the_client_api_imports_no_textual() -> None:
    loaded = _modules_after("import nbdtui\nnbdtui.open")
    assert "nbdtui.client.api" in loaded
    assert "textual" not in loaded
