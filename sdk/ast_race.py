"""Work retried when CPython 3.11's AST constructor races with another thread.

CPython 3.11 keeps the AST constructor's recursion counter in the interpreter, not the thread
(gh-95185, gh-106905): while one thread turns a large parse into ``ast`` objects (the dynamo
ONNX export, litert-torch), another thread's ``ast.parse`` (numpy reading an ``.npy`` header,
``inspect.signature``) may run in between, and the first fails with ``SystemError: AST
constructor recursion depth mismatch``. A build does exactly that: simulator verification in
its lanes beside the next conversion. The counter is reset at every parse, so running the
same work again is sound; nothing else is retried.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
MESSAGE = "AST constructor recursion depth mismatch"
log = logging.getLogger(__name__)


def is_ast_race(exc: BaseException | None) -> bool:
    """``exc``, or an exception it was raised from, is the race (exporters wrap what they catch)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, SystemError) and MESSAGE in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_ast_race(work: Callable[[], T], *, what: str, attempts: int = 3) -> T:
    """``work()``, run again (up to ``attempts`` in all) when it fails with the race only."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Exception as exc:
            if attempt == attempts or not is_ast_race(exc):
                raise
            log.info("%s: %s (a parse on another thread ran beside it, CPython gh-106905); running it again",
                     what, MESSAGE)
    raise AssertionError("unreachable")
