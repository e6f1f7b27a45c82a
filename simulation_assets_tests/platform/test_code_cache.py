"""The source text libraries compile while imported is compiled once per Python and read back after
(sinks/code_cache.py), with what the built-ins would have made of it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from types import ModuleType

import pytest

from simulation_assets.sinks import code_cache

ROOT = Path(__file__).resolve().parents[2]


def _module(cache: code_cache.CodeCache, source: str) -> ModuleType:
    """A module whose ``compile``, ``eval`` and ``exec`` are ``cache``'s, with ``source`` run in it."""
    module = ModuleType("generated_here")
    for builtin in ("compile", "eval", "exec"):
        cache.give(module, builtin)
    exec(compile(source, "generated_here.py", "exec", dont_inherit=True), module.__dict__)  # noqa: S102
    return module


def test_a_second_process_compiles_nothing_it_compiled_before(tmp_path: Path) -> None:
    """The library call sites go through the cache, and a later process reads every text back."""
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from simulation_assets.sinks import code_cache
        cache = code_cache.install(Path(sys.argv[1]))
        import collections, dataclasses, typing
        import dagster_shared.check.builder, sqlalchemy.util.langhelpers
        Point = collections.namedtuple("Point", "x y")
        @dataclasses.dataclass(frozen=True)
        class Box:
            low: "Point"
            high: Point
        ref = typing.ForwardRef("typing.Optional[Box]")
        made = sqlalchemy.util.langhelpers.attrsetter("x")  # an exec of its own: not looked up
        import email.utils, re
        re.purge()
        re.compile(r"(?P<a>x+)y{2,5}", re.I)  # through re's own compile, past its in-process cache
        sites = {name: getattr(sys.modules[name], b, None) == getattr(cache, b)
                 for name, b in code_cache.SITES.items()}
        sites["re"] = re._compiler.compile == cache.pattern
        print(json.dumps({"hits": cache.hits, "misses": cache.misses, "sites": sites,
                          "box": repr(Box(Point(0, 1), Point(2, 3)))}))
        cache.save()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script, str(tmp_path)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(2)
    ]
    first, second = runs
    assert all(first["sites"].values()), first["sites"]
    assert first["misses"] > 100  # dagster_shared and SQLAlchemy compile their own on import
    assert second["misses"] == 0 and second["hits"] == first["hits"] + first["misses"]
    assert second["box"] == first["box"] == "Box(low=Point(x=0, y=1), high=Point(x=2, y=3))"
    assert code_cache.cache_file(tmp_path).exists()


def test_read_back_code_is_what_compile_makes(tmp_path: Path) -> None:
    path = tmp_path / "compiled.marshal"
    texts = [
        ("lambda _cls, x, y: _tuple_new(_cls, (x, y))", "<string>", "eval"),
        ("def __create_fn__(a):\n def f(self, x: a) -> None:\n  self.x = x\n return f", "<string>", "exec"),
        ("typing.Optional[int]", "<string>", "eval"),
    ]
    writer = code_cache.CodeCache(path)
    made = [writer.code(text, name, mode, 0, -1) for text, name, mode in texts]
    assert writer.save() and writer.misses == 3
    reader = code_cache.CodeCache(path)
    again = [reader.code(text, name, mode, 0, -1) for text, name, mode in texts]
    assert reader.hits == 3 and reader.misses == 0
    for text_name_mode, code, read in zip(texts, made, again, strict=True):
        stock = compile(text_name_mode[0], text_name_mode[1], text_name_mode[2], 0, True)
        assert read == code == stock and read.co_consts == stock.co_consts


def test_flags_are_the_calling_codes_not_this_modules(tmp_path: Path) -> None:
    """This test module (and code_cache) import ``annotations`` from __future__; generated code must not."""
    cache = code_cache.CodeCache(None)
    plain = _module(
        cache,
        "def make():\n"
        "    ns = {}\n"
        "    exec('def f(x: int) -> int:\\n    return x', {}, ns)\n"
        "    return ns['f'], eval('lambda y: y', {}), compile('z: int = 1', '<s>', 'exec')\n",
    )
    f, _, module_code = plain.make()
    assert inspect.get_annotations(f) == {"x": int, "return": int}
    assert not module_code.co_flags & code_cache.FUTURE_FLAGS
    deferred = _module(
        cache,
        "from __future__ import annotations\n"
        "def make():\n"
        "    ns = {}\n"
        "    exec('def f(x: int) -> int:\\n    return x', {}, ns)\n"
        "    return ns['f']\n",
    )
    assert inspect.get_annotations(deferred.make()) == {"x": "int", "return": "int"}
    assert cache.misses == 4  # same text, other flags: compiled apart


def test_builtins_keep_their_behaviour(tmp_path: Path) -> None:
    cache = code_cache.CodeCache(None)
    module = _module(
        cache,
        "scale = 3\n"
        "exec('top = 2')\n"
        "def times(v):\n"
        "    return eval('  v * scale')\n"  # leading blanks, the caller's globals and locals
        "def names():\n"
        "    exec('made = 1')\n"
        "    return locals().get('made'), 'made' in globals()\n"
        "def bad():\n"
        "    return compile('1 +', '<s>', 'eval')\n"
        "def tree():\n"
        "    import ast\n"
        "    return compile('x', '<s>', 'eval', ast.PyCF_ONLY_AST)\n",
    )
    assert module.times(2) == 6
    assert module.top == 2 and module.names() == (1, False)
    with pytest.raises(SyntaxError):
        module.bad()
    assert type(module.tree()).__name__ == "Expression"  # not cached: not code
    assert cache.misses == 3  # the syntax error is not kept


def test_dataclasses_and_forward_refs_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = code_cache.CodeCache(tmp_path / "c.marshal")
    monkeypatch.setitem(dataclasses.__dict__, "exec", cache.exec)
    monkeypatch.setitem(typing.__dict__, "compile", cache.compile)

    @dataclasses.dataclass(order=True)
    class Pair:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)

    assert Pair(1) < Pair(2) and Pair(1, [2]) == Pair(1, [2]) and repr(Pair(1)).endswith("Pair(a=1, b=[])")
    assert inspect.signature(Pair).parameters["a"].annotation == "int"  # this module's own annotations
    assert typing.ForwardRef("list[int]")._evaluate({}, {}, frozenset()) == list[int]
    with pytest.raises(SyntaxError):
        typing.ForwardRef("1 +")
    assert cache.misses > 3


def test_saves_merge_and_stop_at_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.marshal"
    one, two = code_cache.CodeCache(path), code_cache.CodeCache(path)
    one.code("1", "<s>", "eval", 0, -1)
    two.code("2", "<s>", "eval", 0, -1)
    assert one.save() and not one.save()  # nothing new the second time
    monkeypatch.setattr(code_cache, "MIN_NEW", 0)
    assert two.save()
    assert len(code_cache.CodeCache(path).entries) == 2  # the second writer kept the first one's
    few = code_cache.CodeCache(path)
    few.code("3", "<s>", "eval", 0, -1)
    monkeypatch.setattr(code_cache, "MIN_NEW", 16)
    assert not few.save()  # a handful of new texts: not worth a rewrite
    monkeypatch.setattr(code_cache, "MAX_ENTRIES", 2)
    full = code_cache.CodeCache(path)
    full.code("4", "<s>", "eval", 0, -1)
    assert len(code_cache.CodeCache(path).entries) == 2
    path.write_bytes(b"not marshal")
    assert code_cache.CodeCache(path).entries == {}


def test_regular_expressions_read_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "c.marshal"
    patterns = [
        (r"(?P<key>[a-z_]+)\s*=\s*(?P<value>\d+)", re.IGNORECASE),
        (rb"^(?:GET|POST) (\S+)", re.MULTILINE),
        (r"(?x) a+ | b{2,}", 0),
    ]
    writer = code_cache.CodeCache(path)
    made = [writer.pattern(text, flags) for text, flags in patterns]
    with pytest.raises(re.error):
        writer.pattern("(unclosed", 0)
    assert writer.save() and writer.misses == 3
    reader = code_cache.CodeCache(path)
    again = [reader.pattern(text, flags) for text, flags in patterns]
    assert reader.hits == 3 and reader.misses == 0
    samples = ["Size = 42", "GET /x\nPOST /y", "aaa bb", "SIZE=7"]
    for (text, flags), first, read in zip(patterns, made, again, strict=True):
        stock = re.compile(text, flags)
        for one in (first, read):
            assert (one.pattern, one.flags, one.groups, one.groupindex) == (
                stock.pattern,
                stock.flags,
                stock.groups,
                stock.groupindex,
            )
            for sample in samples:
                subject = sample.encode() if isinstance(text, bytes) else sample
                assert [m.groups() for m in one.finditer(subject)] == [
                    m.groups() for m in stock.finditer(subject)
                ]
