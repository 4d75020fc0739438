"""Strict mode: reject the reward hacks a generated solution can play on its unit tests.

A test such as ``assert candidate(x) == y`` trusts the value the candidate returns. A
sample can return an object whose ``__eq__`` always answers True, patch a builtin the
test relies on (``abs``, ``isinstance``), shadow one with a global of its own, or
install a trace hook. Strict mode, run inside the sample's own process, checks for these:

* every value the candidate returns (and everything inside lists, tuples, sets and
  dicts in it) has comparison, arithmetic, truth, length and iteration methods that
  come from C or from the standard library, never from code the sample defined;
* the builtins, the ``math`` and ``operator`` modules and ``__builtins__`` are the ones
  the process started with, no name the tests use is shadowed, and no trace or profile
  hook is set.

It does not make a hostile sample honest: code written to attack alignlab itself can,
for instance, build functions whose code claims a standard-library file name. It stops
the shortcuts models stumble into, not an adversary that has read this file.
"""

from __future__ import annotations

import builtins
import functools
import sys
import sysconfig
import types
from collections.abc import Callable
from typing import Any

_PLAIN_IDS = frozenset(
    id(t) for t in (type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)
)
_DUNDERS = (
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__", "__len__",
    "__iter__", "__next__", "__contains__", "__getitem__", "__float__", "__int__", "__index__",
    "__complex__", "__abs__", "__neg__", "__pos__", "__round__", "__add__", "__radd__", "__sub__",
    "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__mod__",
    "__pow__", "__and__", "__or__", "__xor__", "__getattr__", "__getattribute__", "__class__",
    "__instancecheck__", "__subclasscheck__",
)  # fmt: skip
_C_LEVEL = (
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)
_WATCHED_MODULES = ("math", "operator")
_MAX_ITEMS = 1_000_000
_MISSING = object()


class StrictViolation(Exception):
    """The sample tried to pass its tests other than by computing the right values."""


@functools.cache
def stdlib_dirs() -> tuple[str, ...]:
    """The standard library's folders: functions defined there are trusted."""
    paths = sysconfig.get_paths()
    return tuple({paths["stdlib"], paths["platstdlib"]})


class Guard:
    """Snapshot of what a sample must not touch, taken before the sample runs."""

    def __init__(self) -> None:
        self._builtins = dict(builtins.__dict__)
        self._modules = {
            name: dict(vars(sys.modules[name])) for name in _WATCHED_MODULES if name in sys.modules
        }
        self._stdlib = stdlib_dirs()
        self._ok_types: dict[int, type] = {}

    def verify(self, namespace: dict[str, Any], check: Callable[..., Any], candidate: object = None) -> None:
        """Raise :class:`StrictViolation` if the sample changed what the tests rely on.

        Only the names the tests use are compared (those of ``check`` and of the functions
        it calls, the candidate aside), which keeps the check cheap in a forked child.

        Args:
            namespace: the globals the sample and its tests ran in.
            check: the test function.
            candidate: the function under test, whose own names are the sample's business.
        """
        if namespace.get("__builtins__") not in (builtins, builtins.__dict__):
            raise StrictViolation("the sample replaced __builtins__")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            raise StrictViolation("the sample installed a trace or profile hook")
        current = builtins.__dict__
        for name in _names_used(check, namespace, candidate):
            original = self._builtins.get(name, _MISSING)
            if original is not _MISSING:
                if current.get(name) is not original:
                    raise StrictViolation(f"the sample replaced the builtin {name!r}")
                if name in namespace:
                    raise StrictViolation(f"the sample shadows the builtin {name!r}, which the tests use")
            for module, snapshot in self._modules.items():
                original = snapshot.get(name, _MISSING)
                if original is not _MISSING and vars(sys.modules[module]).get(name) is not original:
                    raise StrictViolation(f"the sample replaced {module}.{name}")

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, checking every value it returns with :meth:`check_value`."""

        @functools.wraps(function)
        def candidate(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            self.check_value(result)
            return result

        return candidate

    def check_value(self, value: Any) -> None:
        """Raise :class:`StrictViolation` if ``value`` or anything in it has sample-made behaviour."""
        stack = [value]
        seen: set[int] = set()
        count = 0
        while stack and count < _MAX_ITEMS:
            item = stack.pop()
            count += 1
            cls = type(item)
            if id(cls) not in _PLAIN_IDS:
                self._check_type(cls)
            if issubclass(cls, dict | list | tuple | set | frozenset):
                if id(item) in seen:
                    continue
                seen.add(id(item))
                if issubclass(cls, dict):
                    stack.extend(dict.keys(item))
                    stack.extend(dict.values(item))
                else:
                    stack.extend(item)

    def _check_type(self, cls: type) -> None:
        if self._ok_types.get(id(cls)) is cls:
            return
        metaclass: type = type(cls)
        for klass in (*cls.__mro__, *metaclass.__mro__):
            namespace = vars(klass)
            for name in _DUNDERS:
                if name in namespace and not self._trusted(namespace[name]):
                    raise StrictViolation(
                        f"the candidate returned a {cls.__qualname__} whose {name} is defined by the sample"
                    )
        self._ok_types[id(cls)] = cls

    def _trusted(self, attribute: Any) -> bool:
        if attribute is None or isinstance(attribute, _C_LEVEL):
            return True
        if isinstance(attribute, staticmethod | classmethod):
            return self._trusted(attribute.__func__)
        if isinstance(attribute, types.FunctionType):
            filename = attribute.__code__.co_filename
            if filename.startswith("<frozen "):  # standard modules frozen into the interpreter
                return filename == f"<frozen {attribute.__module__}>" and attribute.__module__ in sys.modules
            return filename.startswith(self._stdlib)
        return False


def _names_used(check: Callable[..., Any], namespace: dict[str, Any], candidate: object) -> set[str]:
    """Global and attribute names used by ``check`` and the functions of ``namespace`` it reaches."""
    names: set[str] = set()
    seen: set[int] = set()
    pending = [getattr(check, "__code__", None)]
    while pending and len(seen) < 200:
        code = pending.pop()
        if not isinstance(code, types.CodeType) or id(code) in seen:
            continue
        seen.add(id(code))
        names.update(code.co_names)
        pending.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
        for name in code.co_names:
            called = namespace.get(name)
            if isinstance(called, types.FunctionType) and called is not candidate:
                pending.append(called.__code__)
    return names
