"""The literal grammar of sandbox values: written in the child, parsed and compared by the grader.

The grammar: None, bool, int, float with nan and inf, complex, str, bytes, tuple, list, dict,
set, frozenset. `to_text` runs in the sandbox's runner (a subclass is reduced to its base type
through the base type's own methods, any other object is a ValueError); `literal` parses the text
in the grader (a walk over `ast` nodes: no code runs, only built-in values come out) and `same`
compares two parsed values (== with nan equal to nan), so an object whose `__eq__` lies never
reaches the comparison. Standard library only: the child (`python -I -S`) loads this file by path.
"""

from __future__ import annotations

import math
from typing import Any


class _TooLong(ValueError):
    pass


def _float_text(x: float) -> str:
    return float.__repr__(x) if math.isfinite(x) else f"float('{x!r}')"


def to_text(value, budget_kb: int) -> str:
    """`value` in the literal grammar `literal` parses; ValueError for anything else (too long:
    _TooLong, nested deeper than 100 levels, or no built-in value)."""
    parts: list[str] = []
    budget = [budget_kb * 1024]

    def emit(text: str) -> None:
        budget[0] -= len(text)
        if budget[0] < 0:
            raise _TooLong(f"the value is longer than {budget_kb} KiB")
        parts.append(text)

    def walk(v, depth: int) -> None:
        if depth > 100:
            raise ValueError("the value is nested deeper than 100 levels")
        if v is None or v is ...:
            emit(repr(v))
        elif isinstance(v, bool):
            emit("True" if v else "False")
        elif isinstance(v, int):
            n = int.__index__(v)
            emit(int.__repr__(n) if n.bit_length() < 10000 else hex(n))
        elif isinstance(v, float):
            emit(_float_text(float.__float__(v)))
        elif isinstance(v, complex):
            z = complex.__complex__(v)
            emit(f"complex({_float_text(z.real)}, {_float_text(z.imag)})")
        elif isinstance(v, str):
            emit(str.__repr__(str.__str__(v)))
        elif isinstance(v, bytes | bytearray):
            emit(bytes.__repr__(bytes(v)))
        elif isinstance(v, tuple | list):
            items = tuple.__iter__(v) if isinstance(v, tuple) else list.__iter__(v)
            emit("(" if isinstance(v, tuple) else "[")
            n = 0
            for n, item in enumerate(items, 1):
                if n > 1:
                    emit(", ")
                walk(item, depth + 1)
            emit(",)" if isinstance(v, tuple) and n == 1 else ")" if isinstance(v, tuple) else "]")
        elif isinstance(v, dict):
            emit("{")
            for n, (key, item) in enumerate(dict.items(v)):
                if n:
                    emit(", ")
                walk(key, depth + 1)
                emit(": ")
                walk(item, depth + 1)
            emit("}")
        elif isinstance(v, set | frozenset):
            members = list(set.__iter__(v) if isinstance(v, set) else frozenset.__iter__(v))
            emit("frozenset(" if isinstance(v, frozenset) else "")
            if members:
                emit("{")
                for n, item in enumerate(members):
                    if n:
                        emit(", ")
                    walk(item, depth + 1)
                emit("}")
            elif isinstance(v, set):
                emit("set()")
            emit(")" if isinstance(v, frozenset) else "")
        else:
            raise ValueError(f"a {type(v).__name__} is not a literal value")

    walk(value, 0)
    return "".join(parts)


def literal(text: str) -> Any:
    """The built-in value `text` spells in the literal grammar; ValueError if it is not one.

    Like ast.literal_eval (no code runs), plus `set()`, `frozenset(...)`, `float('nan')` and
    `complex(re, im)`.
    """
    import ast  # here, not above: the child loads this module and only writes

    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _convert(tree.body)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError(f"not a literal: {type(e).__name__}: {str(e)[:200]}") from None


def same(a: Any, b: Any) -> bool:
    """Equality of two values made by `literal`: ==, except that nan equals nan."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


_CALLS = {"set": 0, "frozenset": 1, "float": 1, "complex": 2}


def _convert(node) -> Any:
    import ast

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _convert(node.operand)
        if isinstance(value, int | float | complex) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
        left, right = _convert(node.left), _convert(node.right)  # 1+2j, as literal_eval does
        if (
            type(left) in (int, float)
            and type(right) is complex
            and not isinstance(node.left, ast.BinOp)
        ):
            return left + right if isinstance(node.op, ast.Add) else left - right
    if isinstance(node, ast.Tuple):
        return tuple(map(_convert, node.elts))
    if isinstance(node, ast.List):
        return list(map(_convert, node.elts))
    if isinstance(node, ast.Set):
        return set(map(_convert, node.elts))
    if isinstance(node, ast.Dict) and None not in node.keys:
        return dict(zip(map(_convert, node.keys), map(_convert, node.values), strict=True))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _CALLS
        and not node.keywords
        and len(node.args) <= _CALLS[node.func.id]
    ):
        args = [_convert(a) for a in node.args]
        name = node.func.id
        if name == "set" and not args:
            return set()
        if name == "frozenset" and (not args or isinstance(args[0], set | list | tuple)):
            return frozenset(*args)
        if name == "float" and len(args) == 1 and isinstance(args[0], str):
            if args[0].strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
                return float(args[0])
        if name == "complex" and len(args) == 2 and all(type(a) in (int, float) for a in args):
            return complex(*args)
    raise ValueError(f"{type(node).__name__} is not allowed in a literal")
