"""``--allow-python`` patterns: a ``*`` never crosses a dot, and a wildcard admits only
what the allowlisted module defines itself (not what it imported)."""

from __future__ import annotations

import pytest

from engine.contracts.policy import SecurityPolicy, python_pattern_allows

MODULE = "tests.engine.security_targets"
SHARED = SecurityPolicy.shared(python_allowlist=(f"{MODULE}:*",))


def test_wildcard_admits_the_module_s_own_functions() -> None:
    assert SHARED.allows_python(f"{MODULE}:echo")
    assert SHARED.allows_python(f"{MODULE}:spin")


@pytest.mark.parametrize("attr", ["time.sleep", "time", "Any", "time.os.system",
                                  "echo.__globals__", "missing"])
def test_wildcard_refuses_what_the_module_imported(attr: str) -> None:
    assert not SHARED.allows_python(f"{MODULE}:{attr}")


def test_star_never_crosses_a_dot_in_the_module() -> None:
    assert not python_pattern_allows("tests.*:*", f"{MODULE}:echo")
    assert python_pattern_allows("tests.*.security_targets:*", f"{MODULE}:echo")
    assert not python_pattern_allows("tests.engine.security_*", f"{MODULE}:echo")


def test_an_exact_pattern_admits_the_reference_as_written() -> None:
    assert python_pattern_allows(f"{MODULE}:time.sleep", f"{MODULE}:time.sleep")
    assert not python_pattern_allows(f"{MODULE}:time.sleep", f"{MODULE}:time.time")
