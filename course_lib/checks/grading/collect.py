"""The collector: finds, in the learner's kernel, the source of each graded
function and of what it uses.

:func:`__course_lib_collect__` is real, tested code, but it never runs in the
grader: :func:`collector_cell` turns its source (``inspect.getsource``) into a
code cell that the worker runs in the kernel after the cells that define
something, so the work is collected as the notebook runs and a crash late in a
notebook keeps what came before. It imports what it needs inside its body,
because the kernel's globals are the learner's. Its answer is the cell's value,
a JSON string; anything may have been patched in that kernel, so the worker
validates the answer (worker.py) and treats the source as untrusted
(policy.py)."""

from __future__ import annotations

import inspect
import json

__all__ = ["collector_cell", "read_payload"]


def __course_lib_collect__(names, ns=None):
    """JSON ``{"source", "missing", "notes"}``: imports, literal values and
    definitions that ``names`` need, read from ``ns`` (the kernel's globals)."""
    import ast
    import dis
    import inspect
    import json
    import linecache
    import math
    import sys
    import textwrap
    import types

    ns = globals() if ns is None else ns
    imports, values, defs, notes, missing = [], [], [], [], []
    seen = set()
    need_torch = []

    def literal(v, depth=0):
        if depth > 5:
            raise ValueError("too deeply nested")
        if v is None or isinstance(v, (bool, int, str, bytes)):
            return repr(v)
        if isinstance(v, float):
            return repr(v) if math.isfinite(v) else "float(%r)" % repr(v)
        if isinstance(v, (tuple, list, set)):
            items = [literal(i, depth + 1) for i in v]
            if isinstance(v, tuple):
                return "(" + "".join(i + ", " for i in items) + ")"
            if isinstance(v, list):
                return "[" + ", ".join(items) + "]"
            return "{" + ", ".join(items) + "}" if items else "set()"
        if isinstance(v, dict):
            return "{" + ", ".join(literal(k, depth + 1) + ": " + literal(i, depth + 1) for k, i in v.items()) + "}"
        if type(v).__module__ == "torch" and type(v).__name__ == "dtype":
            need_torch.append(1)
            return "__course_torch__." + str(v).split(".", 1)[1]
        if type(v).__module__ == "torch" and type(v).__name__ == "device":
            return repr(str(v))
        raise ValueError(type(v).__name__)

    def code_globals(code):
        out = [ins.argval for ins in dis.get_instructions(code)
               if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL")]
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                out.extend(code_globals(const))
        return out

    def class_source(cls):
        funcs = [f for f in vars(cls).values() if isinstance(f, types.FunctionType)]
        if not funcs:
            return None
        lines = linecache.getlines(funcs[0].__code__.co_filename)
        start = getattr(cls, "__firstlineno__", None)
        if start is None:
            for i, line in enumerate(lines):
                if line.lstrip().startswith("class " + cls.__name__):
                    start = i + 1
        if not start:
            return None
        return "".join(inspect.getblock(lines[start - 1:]))

    def header_names(src):
        node = ast.parse(src).body[0]
        parts = list(getattr(node, "decorator_list", []))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parts += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
        elif isinstance(node, ast.ClassDef):
            parts += node.bases + [k.value for k in node.keywords]
            parts += [s for s in node.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return [n.id for p in parts for n in ast.walk(p) if isinstance(n, ast.Name)]

    def visit(name):
        if name in seen or name not in ns:
            return
        seen.add(name)
        obj = ns[name]
        if isinstance(obj, types.ModuleType):
            imports.append("import %s" % name if obj.__name__ == name else "import %s as %s" % (obj.__name__, name))
            return
        module = getattr(obj, "__module__", None)
        if isinstance(obj, (types.FunctionType, type)) and module == "__main__":
            try:
                src = inspect.getsource(obj) if isinstance(obj, types.FunctionType) else class_source(obj)
            except (OSError, TypeError):
                src = None
            if not src:
                notes.append("the source of `%s` could not be found (was it defined with exec?)" % name)
                return
            src = textwrap.dedent(src)
            try:
                deps = header_names(src)
            except SyntaxError:
                notes.append("the source of `%s` could not be read back" % name)
                return
            codes = [obj.__code__] if isinstance(obj, types.FunctionType) else [
                f.__code__ for f in vars(obj).values() if isinstance(f, types.FunctionType)]
            for code in codes:
                deps.extend(code_globals(code))
            for dep in deps:
                visit(dep)
            defs.append(src)
            if obj.__name__ != name:
                defs.append("%s = %s\n" % (name, obj.__name__))
            return
        if callable(obj) and module and getattr(obj, "__name__", None):
            owner = sys.modules.get(module)
            if owner is not None and getattr(owner, obj.__name__, None) is obj:
                imports.append("from %s import %s as %s" % (module, obj.__name__, name))
                return
            for value in list(ns.values()):
                if isinstance(value, types.ModuleType) and getattr(value, obj.__name__, None) is obj:
                    imports.append("from %s import %s as %s" % (value.__name__, obj.__name__, name))
                    return
        try:
            values.append("%s = %s" % (name, literal(obj)))
        except ValueError:
            notes.append("`%s` (a %s) is used by your functions but cannot be carried to the grader: "
                         "create it inside the function that uses it" % (name, type(obj).__name__))

    for name in names:
        if name not in ns:
            missing.append(name)
        else:
            visit(name)
    head = ["from __future__ import annotations"] + (["import torch as __course_torch__"] if need_torch else [])
    source = "\n".join(head + imports + values) + "\n\n" + "\n\n".join(defs)
    return json.dumps({"source": source, "missing": missing, "notes": notes})


def collector_cell(names: list[str]) -> str:
    """The code of the collection cell: the collector's own source, then one
    expression (the cell's value) that calls it and removes it again, so the
    learner's namespace is left as it was."""
    return (inspect.getsource(__course_lib_collect__)
            + f"\n(__course_lib_collect__({list(names)!r}), globals().pop('__course_lib_collect__'))[0]\n")


def read_payload(text: str) -> dict:
    """The collector's answer from the text/plain value of its cell (``repr`` of
    a JSON string), checked field by field: ValueError when it is not one."""
    import ast

    try:
        raw = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError("not a string literal") from exc
    if not isinstance(raw, str):
        raise ValueError("not a string")
    payload = json.loads(raw)
    if not isinstance(payload, dict) or not isinstance(payload.get("source"), str):
        raise ValueError("unexpected payload")
    for key in ("missing", "notes"):
        value = payload.get(key, [])
        payload[key] = [str(v)[:300] for v in value][:20] if isinstance(value, list) else []
    return {"source": payload["source"], "missing": payload["missing"], "notes": payload["notes"]}
