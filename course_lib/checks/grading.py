"""Self-check and grading: run a notebook in a fresh kernel, grade it in a clean process.

How one submission is graded (design and limits: docs/instructor.md):

1. The grader (the parent process) reads the notebook, hashes it and finds its
   exercises. It starts a *worker* process (``python -m
   course_lib.checks.grading --worker ...``) in a fresh session, with a time
   limit.
2. The worker imports the canonical checkers first, before any learner code
   exists in it. It then runs the notebook's cells in a fresh Jupyter kernel
   (nbclient; errors do not stop later cells; ``check(...)`` cells do nothing
   because COURSE_LIB_GRADING=1; the whole run is limited to ``timeout``
   seconds, after which the kernel is interrupted).
3. A cell injected at the end collects, from the kernel, the *source* of each
   graded function and of what it uses (the functions and classes it calls,
   the modules it imports, the plain values it reads). The kernel is then shut
   down. Nothing else of the kernel's state leaves it: a redefined ``check``,
   a monkeypatched ``torch.allclose`` or ``course_lib.checks.run_check``, or a
   printed "All checks passed" all stay behind in the dead kernel.
4. The worker treats the collected source as untrusted: it keeps only
   imports, function and class definitions and literal values, rejects
   definition-time code (decorators, defaults, base classes) that could run
   anything, and flags function bodies that reach for the system or the
   checker (``os``, ``sys``, ``setattr`` on modules, ``__dict__``,
   ``course_lib.checks``...). It executes what is left in a new module and runs the
   canonical ``run_check`` on each graded function. Results go back to the
   parent as JSON, written after each exercise.

The parent records a row per submission whatever happened: invalid notebook,
kernel death, time-out, a crash of the worker.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .framework import (
    DEFAULT_TIME_LIMIT,
    EXERCISES,
    GRADING_ENV,
    CheckResult,
    _load_checker,
    exercises_of,
    run_check,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "SubmissionGrade",
    "detect_exercises",
    "grade_submission",
    "grade_folder",
    "format_score_table",
    "feedback_markdown",
    "sanitize_definitions",
]

DEFAULT_TIMEOUT = 300.0  # seconds for running a whole notebook
COLLECT_TIMEOUT = 60  # seconds for the injected collection cell
KERNEL_STARTUP = 60  # seconds allowed for a kernel to start
ROOT = Path(__file__).resolve().parents[2]  # the folder holding the course_lib package


# --------------------------------------------------------------------------- result of one submission


@dataclass
class SubmissionGrade:
    submission: str
    sha256: str = ""
    notebook: str = ""
    exercises: list[str] = field(default_factory=list)
    results: dict[str, CheckResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[tuple[int, str]] = field(default_factory=list)  # (code cell number, exception name)
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return round(sum(r.points for r in self.results.values()), 4)

    @property
    def max_total(self) -> float:
        return round(sum(EXERCISES[i].points for i in self.exercises if i in EXERCISES), 4)

    def points(self, exercise_id: str) -> float:
        r = self.results.get(exercise_id)
        return r.points if r is not None else 0.0


# --------------------------------------------------------------------------- which exercises a notebook holds

_CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d\d\.\d+)["']""")


def detect_exercises(nb, filename: str = "", notebook: str | None = None) -> tuple[str, list[str]]:
    """(notebook name, exercise IDs) of a submission: from ``notebook`` if
    given, else the notebook metadata written by release, else its
    ``check("ID", ...)`` cells, else its file name (``NN_...``), else the
    exercise functions it defines."""
    if notebook:
        return notebook, [e.id for e in exercises_of(notebook)]
    meta = (nb.get("metadata") or {}).get("course_lib") or {}
    name = meta.get("notebook") if isinstance(meta, dict) else None
    if isinstance(name, str) and exercises_of(name):
        return name, [e.id for e in exercises_of(name)]
    sources = [c.get("source", "") for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    sources = ["".join(s) if isinstance(s, list) else str(s) for s in sources]
    found = sorted({m for s in sources for m in _CHECK_CALL.findall(s) if m in EXERCISES})
    if found:
        return EXERCISES[found[0]].notebook, found
    stem = Path(filename).stem
    if len(stem) >= 3 and stem[:2].isdigit() and stem[2] == "_" and exercises_of(stem):
        return stem, [e.id for e in exercises_of(stem)]
    defined = set(re.findall(r"^\s*(?:def|class)\s+(\w+)", "\n".join(sources), flags=re.M))
    found = sorted(e.id for e in EXERCISES.values() if e.function in defined)
    return (EXERCISES[found[0]].notebook if found else ""), found


# --------------------------------------------------------------------------- collection (in the learner's kernel)

# This code runs in the learner's kernel, where anything may have been
# patched; the worker therefore validates everything it sends back.
_COLLECTOR = r'''
def __course_lib_collect__(names, out_path):
    import ast, dis, inspect, json, linecache, math, sys, textwrap, types
    ns = globals()
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
        if isinstance(v, (tuple, list, set, frozenset)):
            items = [literal(i, depth + 1) for i in v]
            if isinstance(v, tuple):
                return "(" + "".join(i + ", " for i in items) + ")"
            if isinstance(v, list):
                return "[" + ", ".join(items) + "]"
            if isinstance(v, set):
                return "{" + ", ".join(items) + "}" if items else "set()"
            raise ValueError("frozenset")
        if isinstance(v, dict):
            return "{" + ", ".join(literal(k, depth + 1) + ": " + literal(i, depth + 1) for k, i in v.items()) + "}"
        if type(v).__module__ == "torch" and type(v).__name__ == "dtype":
            need_torch.append(1)
            return "__course_torch__." + str(v).split(".", 1)[1]
        if type(v).__module__ == "torch" and type(v).__name__ == "device":
            return repr(str(v))
        raise ValueError(type(v).__name__)

    def code_globals(code):
        out = []
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
                out.append(ins.argval)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                out.extend(code_globals(const))
        return out

    def class_source(cls):
        funcs = [f for f in vars(cls).values() if isinstance(f, types.FunctionType)]
        if not funcs:
            return None
        filename = funcs[0].__code__.co_filename
        lines = linecache.getlines(filename)
        start = getattr(cls, "__firstlineno__", None)
        if start is None:
            for i, line in enumerate(lines):
                if line.lstrip().startswith("class " + cls.__name__):
                    start = i + 1
        if not start:
            return None
        return "".join(inspect.getblock(lines[start - 1:]))

    def header_names(src):
        tree = ast.parse(src)
        node = tree.body[0]
        parts = list(getattr(node, "decorator_list", []))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parts += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
        elif isinstance(node, ast.ClassDef):
            parts += node.bases + [k.value for k in node.keywords]
            parts += [s for s in node.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return [n.id for p in parts for n in ast.walk(p) if isinstance(n, ast.Name)]

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        if name not in ns:
            return
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
            for alias, value in list(ns.items()):
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
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"source": source, "missing": missing, "notes": notes}, f)

__course_lib_collect__(__NAMES__, __PATH__)
del __course_lib_collect__
'''


# --------------------------------------------------------------------------- validation (in the worker)

DENIED_MODULES = (
    "os", "sys", "subprocess", "builtins", "importlib", "inspect", "gc", "ctypes", "signal", "threading",
    "_thread", "multiprocessing", "concurrent", "asyncio", "socket", "shutil", "pathlib", "io", "pickle",
    "marshal", "types", "unittest", "operator", "course_lib.checks", "IPython", "ipykernel", "pty", "resource",
    "code", "codeop", "runpy", "dill", "cloudpickle", "tempfile", "atexit", "faulthandler", "weakref",
    "traceback", "linecache", "sysconfig", "site", "posix", "nt", "torch.library", "torch.ops",
    "torch.overrides", "torch.utils.cpp_extension", "torch.hub", "nbclient", "jupyter_client",
)
DENIED_NAMES = {
    "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "open", "breakpoint", "input",
    "exit", "quit", "help", "delattr", "__builtins__", "__loader__", "__spec__", "memoryview",
}
DENIED_ATTRS = {
    "__dict__", "__globals__", "__builtins__", "__code__", "__closure__", "__defaults__", "__kwdefaults__",
    "__subclasses__", "__bases__", "__base__", "__mro__", "__getattribute__", "__setattr__", "__delattr__",
    "__import__", "__loader__", "__spec__", "__reduce__", "__reduce_ex__", "__self__", "__func__",
    "__wrapped__", "__class__", "__traceback__", "f_locals", "f_globals", "f_back", "f_builtins", "f_code",
    "gi_frame", "gi_code", "cr_frame", "ag_frame", "tb_frame", "tb_next", "_getframe",
}
_ALLOWED_UNDERSCORE_ATTRS = {"__init__"}


def _chain(node) -> list[str] | None:
    """['torch', 'nn', 'functional'] for torch.nn.functional; None if not a plain chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def _is_denied_module(dotted: str) -> bool:
    return any(dotted == m or dotted.startswith(m + ".") for m in DENIED_MODULES)


class _Policy:
    """What the worker accepts from a submission's collected source."""

    def __init__(self, aliases: dict[str, str]):
        self.aliases = aliases  # local name -> dotted origin ("F" -> "torch.nn.functional")

    def origin(self, chain: list[str]) -> str | None:
        if chain and chain[0] in self.aliases:
            return ".".join([self.aliases[chain[0]]] + chain[1:])
        return None

    # ---- definition-time expressions

    def literal(self, node, allow_refs: bool = True) -> bool:
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return all(self.literal(e, allow_refs) for e in node.elts)
        if isinstance(node, ast.Dict):
            return all(k is not None and self.literal(k, allow_refs) for k in node.keys) and \
                all(self.literal(v, allow_refs) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            return self.literal(node.operand, allow_refs)
        if isinstance(node, ast.BinOp):
            return self.literal(node.left, allow_refs) and self.literal(node.right, allow_refs)
        if isinstance(node, ast.Call):  # float("inf") and friends only
            return (isinstance(node.func, ast.Name) and node.func.id == "float" and len(node.args) == 1
                    and not node.keywords and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str))
        if allow_refs and isinstance(node, (ast.Name, ast.Attribute)):
            return self.reference(node)
        return False

    def reference(self, node) -> bool:
        chain = _chain(node)
        if chain is None:
            return False
        if any(part in DENIED_ATTRS or (part.startswith("_") and part not in _ALLOWED_UNDERSCORE_ATTRS
                                        and i > 0) for i, part in enumerate(chain)):
            return False
        if chain[0] in DENIED_NAMES:
            return False
        origin = self.origin(chain)
        return not (origin and _is_denied_module(origin))

    def decorator(self, node) -> bool:
        if isinstance(node, ast.Call):
            return (self.reference(node.func)
                    and all(self.literal(a, allow_refs=False) for a in node.args)
                    and all(self.literal(k.value, allow_refs=False) for k in node.keywords))
        return self.reference(node)

    def signature(self, args: ast.arguments) -> bool:
        return all(self.literal(d) for d in args.defaults + [d for d in args.kw_defaults if d is not None])

    # ---- bodies

    def scan(self, node, where: str) -> list[str]:
        """Reasons a function, lambda or class body cannot be run by the grader."""
        problems: list[str] = []
        self._scan(node, where, set(), problems)
        return problems

    def _scan(self, node, where: str, params: set[str], problems: list[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            own = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
            own |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
            body = node.body if isinstance(node.body, list) else [node.body]
            assigned = {n.id for s in body for n in ast.walk(s)
                        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
            params = own - assigned  # a parameter rebound inside no longer names the caller's object
            for d in getattr(node, "decorator_list", []):
                self._scan(d, where, params, problems)
            for d in a.defaults + [d for d in a.kw_defaults if d is not None]:
                self._scan(d, where, params, problems)
            for s in body:
                self._scan(s, where, params, problems)
            return
        line = getattr(node, "lineno", None)
        at = f"{where}, line {line}" if line else where
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level:
                problems.append(f"{at}: relative import")
            for m in modules:
                if _is_denied_module(m):
                    problems.append(f"{at}: imports `{m}`")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id in DENIED_NAMES:
                problems.append(f"{at}: uses `{node.id}`")
            origin = self.origin([node.id])
            if origin and _is_denied_module(origin):
                problems.append(f"{at}: uses `{node.id}` ({origin})")
        elif isinstance(node, ast.Attribute):
            if node.attr in DENIED_ATTRS:
                problems.append(f"{at}: uses `.{node.attr}`")
            chain = _chain(node)
            root_is_param = chain is not None and chain[0] in params
            if node.attr.startswith("_") and node.attr not in _ALLOWED_UNDERSCORE_ATTRS and not root_is_param:
                problems.append(f"{at}: uses the private attribute `.{node.attr}`")
            if isinstance(node.ctx, (ast.Store, ast.Del)) and not root_is_param:
                target = ".".join(chain) if chain else f"….{node.attr}"
                problems.append(f"{at}: assigns to `{target}`, which is not an attribute of a parameter")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for bad in DENIED_ATTRS:
                if bad in node.value:
                    problems.append(f"{at}: the string {node.value[:40]!r} names `{bad}`")
                    break
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "getattr"):
            first = node.args[0] if node.args else None
            on_param = isinstance(first, ast.Name) and first.id in params
            safe_name = (len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                         and isinstance(node.args[1].value, str) and not node.args[1].value.startswith("_"))
            if not on_param and not (node.func.id == "getattr" and safe_name):
                problems.append(f"{at}: calls `{node.func.id}` on something other than a parameter")
            for child in [*node.args, *(k.value for k in node.keywords)]:
                self._scan(child, where, params, problems)
            return
        elif isinstance(node, ast.Name) and node.id in ("setattr", "getattr") and isinstance(node.ctx, ast.Load):
            pass  # handled with the call; a bare reference is caught below
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name) and child.id in ("setattr", "getattr") and not (
                    isinstance(node, ast.Call) and node.func is child):
                problems.append(f"{at}: passes `{child.id}` around")
            self._scan(child, where, params, problems)


def sanitize_definitions(source: str) -> tuple[list[ast.stmt], dict[str, str], list[str]]:
    """Validate collected source. Returns (statements to run, {name: why it was
    not accepted}, notes). Only imports, ``def``, ``class`` and ``NAME =
    literal`` statements are accepted; definition-time expressions must be
    literals or plain references; bodies must pass the policy scan."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [], {}, [f"the collected source does not parse ({exc.msg}, line {exc.lineno})"]
    aliases: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for a in stmt.names:
                aliases[a.asname or a.name] = f"{stmt.module}.{a.name}"
    policy = _Policy(aliases)
    keep: list[ast.stmt] = []
    rejected: dict[str, str] = {}
    notes: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue
        if isinstance(stmt, ast.Import) or (isinstance(stmt, ast.ImportFrom) and not stmt.level
                                            and all(a.name != "*" for a in stmt.names)):
            keep.append(stmt)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            why = _definition_problems(policy, stmt)
            if why:
                rejected[stmt.name] = "; ".join(why[:3])
            else:
                keep.append(stmt)
        elif (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            name = stmt.targets[0].id
            if isinstance(stmt.value, ast.Lambda):
                why = policy.scan(stmt.value, f"`{name}`") + \
                    ([] if policy.signature(stmt.value.args) else [f"`{name}`: default values must be literals"])
                if why:
                    rejected[name] = "; ".join(why[:3])
                else:
                    keep.append(stmt)
            elif policy.literal(stmt.value):
                keep.append(stmt)
            else:
                rejected[name] = f"`{name}` is not a literal value"
        else:
            notes.append(f"ignored a {type(stmt).__name__} statement at line {stmt.lineno} of the collected code")
    return keep, rejected, notes


def _definition_problems(policy: _Policy, stmt) -> list[str]:
    where = f"`{stmt.name}`"
    problems = []
    if not all(policy.decorator(d) for d in stmt.decorator_list):
        problems.append(f"{where}: decorators may only be plain references such as @torch.no_grad()")
    if isinstance(stmt, ast.ClassDef):
        if not all(policy.reference(b) for b in stmt.bases) or \
                not all(k.arg != "metaclass" and policy.reference(k.value) for k in stmt.keywords):
            problems.append(f"{where}: base classes must be plain references such as nn.Module")
        for s in stmt.body:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not all(policy.decorator(d) for d in s.decorator_list):
                    problems.append(f"{where}.{s.name}: decorators may only be plain references")
                if not policy.signature(s.args):
                    problems.append(f"{where}.{s.name}: default values must be literals")
                problems += policy.scan(s, f"{where}.{s.name}")
            elif isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
                continue
            elif isinstance(s, ast.Pass):
                continue
            elif isinstance(s, (ast.Assign, ast.AnnAssign)) and (s.value is None or policy.literal(s.value)):
                continue
            else:
                problems.append(f"{where}: class bodies may only hold methods, a docstring and literal values "
                                f"(line {s.lineno})")
    else:
        if not policy.signature(stmt.args):
            problems.append(f"{where}: default values must be literals or plain references")
        problems += policy.scan(stmt, where)
    return problems


# --------------------------------------------------------------------------- the worker process


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _run_kernel(nb, names: list[str], timeout: float, workdir: Path, notes: list[str],
                cell_errors: list) -> dict | None:
    """Run the notebook's cells in a fresh kernel, then collect the graded
    functions' sources. Returns the collector's payload, or None."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    kernel_cwd = workdir / "kernel"
    kernel_cwd.mkdir(exist_ok=True)
    payload_path = workdir / "collected.json"
    deadline = time.monotonic() + timeout
    client = NotebookClient(
        nb, kernel_name="python3", timeout=int(max(1, timeout)), allow_errors=True,
        interrupt_on_timeout=True, startup_timeout=KERNEL_STARTUP, record_timing=False,
        shutdown_kernel="immediate",
        error_on_timeout={"ename": "TimeoutError", "evalue": f"the notebook ran past {timeout:g} s",
                          "traceback": []},
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic()) + 1),
        extra_arguments=["--HistoryManager.enabled=False"],
        resources={"metadata": {"path": str(kernel_cwd)}},
    )
    try:
        with client.setup_kernel():
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            if pid:
                (workdir / "kernel.pid").write_text(str(pid))
            number = 0
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                number += 1
                if time.monotonic() >= deadline:
                    notes.append(f"stopped at code cell {number}: the notebook ran past {timeout:g} s "
                                 "(an infinite loop?); the functions defined before were graded")
                    break
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    notes.append(f"the kernel died while running code cell {number} (os._exit, a crash "
                                 "or running out of memory); nothing could be graded")
                    return None
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        cell_errors.append((number, str(out.get("ename"))))
                if time.monotonic() >= deadline:
                    notes.append(f"code cell {number} ran past the {timeout:g} s limit for the whole notebook "
                                 "(an infinite loop?) and was interrupted; the functions defined before were graded")
                    break
            collector = nbformat.v4.new_code_cell(
                _COLLECTOR.replace("__NAMES__", repr(names)).replace("__PATH__", repr(str(payload_path))))
            client.timeout_func = None
            client.timeout = COLLECT_TIMEOUT
            try:
                nb.cells.append(collector)
                client.execute_cell(collector, len(nb.cells) - 1)
            except DeadKernelError:
                notes.append("the kernel died while the grader collected your functions")
                return None
    except DeadKernelError:
        notes.append("the kernel died; nothing could be graded")
        return None
    except RuntimeError as exc:  # kernel failed to start
        notes.append(f"the kernel could not run the notebook ({exc})")
        return None
    if cell_errors:
        shown = [f"code cell {n}: {e}" for n, e in cell_errors[:5]]
        more = f" and {len(cell_errors) - 5} more" if len(cell_errors) > 5 else ""
        notes.append(f"errors while running the notebook: {', '.join(shown)}{more}")
    if not payload_path.exists():
        notes.append("the grader could not collect your functions from the kernel "
                     "(the notebook could not be interrupted, or the collection failed)")
        return None
    try:
        payload = json.loads(payload_path.read_text(encoding="utf-8"))
        if not isinstance(payload, dict) or not isinstance(payload.get("source"), str):
            raise ValueError("unexpected payload")
        for key in ("missing", "notes"):  # written inside the learner's kernel: trust no type
            value = payload.get(key, [])
            payload[key] = [str(v) for v in value] if isinstance(value, list) else []
    except ValueError:
        notes.append("the grader's collection of your functions was unreadable")
        return None
    return payload


def _load_definitions(payload: dict, notes: list[str]) -> tuple[dict, dict[str, str]]:
    """Execute the validated definitions in a fresh module namespace."""
    import __future__
    import builtins
    import linecache

    keep, rejected, policy_notes = sanitize_definitions(payload["source"])
    notes.extend(policy_notes)
    for n in payload.get("notes", [])[:10]:
        notes.append(str(n)[:300])
    namespace: dict = {"__name__": "submission", "__builtins__": builtins}
    source = payload["source"]
    filename = "<submission>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    flags = __future__.annotations.compiler_flag
    for stmt in keep:
        module = ast.Module(body=[stmt], type_ignores=[])
        try:
            exec(compile(module, filename, "exec", flags=flags, dont_inherit=True), namespace)
        except Exception as exc:  # noqa: BLE001 - e.g. an import the grading machine lacks
            notes.append(f"line {stmt.lineno} of your collected code failed: {type(exc).__name__}: {exc}"[:300])
    return namespace, rejected


def _worker(args) -> int:
    """Entry point of the worker process (see the module docstring)."""
    def _terminate(signum, frame):
        raise SystemExit(f"terminated by signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    import nbformat

    result_path = Path(args.result)
    workdir = result_path.parent
    ids = [i for i in args.exercises.split(",") if i]
    state: dict = {"notes": [], "results": {}, "cell_errors": [], "done": False}
    notes = state["notes"]
    _write_json(result_path, state)
    try:
        nb = nbformat.read(args.notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"not a valid notebook: {type(exc).__name__}: {str(exc)[:200]}")
        state["done"] = True
        _write_json(result_path, state)
        return 0
    names = [EXERCISES[i].function for i in ids]
    for i in ids:  # import the canonical checkers now, before any learner code exists in this process
        try:
            _load_checker(i)
        except Exception:  # noqa: BLE001 - run_check reports a broken checker module itself
            pass
    payload = _run_kernel(nb, names, args.timeout, workdir, notes, state["cell_errors"])
    _write_json(result_path, state)
    if payload is None:
        state["done"] = True
        _write_json(result_path, state)
        return 0
    namespace, rejected = _load_definitions(payload, notes)
    missing = set(payload.get("missing", []))
    for name, why in rejected.items():
        notes.append(f"`{name}` was not run by the grader: {why}")
    for i in ids:
        spec = EXERCISES[i]
        fn = namespace.get(spec.function)
        if spec.function in rejected:
            result = CheckResult(False, 0.0, spec.points,
                                 [f"not graded: needs a review by your instructor: {rejected[spec.function]}"],
                                 spec.id, spec.title, spec.function)
            notes.append(f"{i}: `{spec.function}` flagged for manual review")
        elif fn is None:
            why = ("is not defined in the notebook" if spec.function in missing
                   else "could not be rebuilt by the grader (see the notes)")
            result = CheckResult(False, 0.0, spec.points,
                                 [f"`{spec.function}` {why}; keep the exact name and define it at the top "
                                  "level of a cell"], spec.id, spec.title, spec.function)
        else:
            result = run_check(i, fn, time_limit=args.time_limit)
        state["results"][i] = result.to_dict()
        _write_json(result_path, state)
    state["done"] = True
    _write_json(result_path, state)
    sys.stdout.flush()
    os._exit(0)  # do not wait for a runaway learner thread


# --------------------------------------------------------------------------- the parent side


def _file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _environment(workdir: Path, shared: Path, threads: int) -> dict:
    env = dict(os.environ)
    env[GRADING_ENV] = "1"
    env["JUPYTER_RUNTIME_DIR"] = str(workdir / "runtime")
    env["IPYTHONDIR"] = str(shared / "ipython")
    env.setdefault("MPLCONFIGDIR", str(shared / "matplotlib"))
    env["MPLBACKEND"] = "Agg"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.pop("PYTHONSTARTUP", None)
    return env


_SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL


def _kill_group(pid: int, sig) -> None:
    """Signal a process group (POSIX), or the process alone where groups do not exist."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def grade_submission(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT,
                     time_limit: float = DEFAULT_TIME_LIMIT, notebook: str | None = None,
                     threads: int = 1, shared_dir: str | Path | None = None,
                     _active: set | None = None) -> SubmissionGrade:
    """Grade one notebook in a worker process; always returns a grade, with
    notes saying what went wrong when something did."""
    import nbformat

    path = Path(path)
    start = time.monotonic()
    grade = SubmissionGrade(submission=path.name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        grade.notes.append(f"cannot read the file: {exc}")
        return grade
    grade.sha256 = _file_hash(data)
    try:
        if not data.strip():
            raise ValueError("the file is empty")
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as exc:  # noqa: BLE001 - corrupt JSON, wrong encoding, not a notebook
        grade.notes.append(f"not a valid notebook: {type(exc).__name__}: {str(exc)[:200]}")
        if notebook:
            grade.notebook, grade.exercises = detect_exercises({}, path.name, notebook)
            grade.results = {i: _zero(i, "the notebook could not be read") for i in grade.exercises}
        grade.seconds = time.monotonic() - start
        return grade
    grade.notebook, grade.exercises = detect_exercises(nb, path.name, notebook)
    if not grade.exercises:
        grade.notes.append("no exercise found: no check(\"ID\", ...) cell and no exercise function")
        grade.seconds = time.monotonic() - start
        return grade

    own_shared = shared_dir is None
    shared = Path(tempfile.mkdtemp(prefix="course-grade-shared-")) if own_shared else Path(shared_dir)
    workdir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        (workdir / "judge").mkdir()
        (workdir / "runtime").mkdir()
        nb_copy = workdir / "submission.ipynb"
        nb_copy.write_bytes(data)
        result_path = workdir / "result.json"
        log_path = workdir / "worker.log"
        cmd = [sys.executable, "-m", "course_lib.checks.grading", "--worker", str(nb_copy),
               "--result", str(result_path), "--timeout", str(timeout), "--time-limit", str(time_limit),
               "--exercises", ",".join(grade.exercises)]
        hard_limit = _hard_limit(timeout, time_limit, len(grade.exercises))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=workdir / "judge", env=_environment(workdir, shared, threads),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            if _active is not None:
                _active.add(proc)
            stopped = False
            try:
                proc.wait(timeout=hard_limit)
            except subprocess.TimeoutExpired:
                grade.notes.append(f"grading took longer than {hard_limit:g} s and was stopped")
                _stop(proc, workdir)
                stopped = True
            finally:
                if _active is not None:
                    _active.discard(proc)
        _kill_kernel(workdir)
        state = {}
        if result_path.exists():
            try:
                state = json.loads(result_path.read_text(encoding="utf-8"))
            except ValueError:
                state = {}
        grade.notes.extend(state.get("notes", []))
        grade.cell_errors = [(int(n), str(e)) for n, e in state.get("cell_errors", [])]
        for i, r in state.get("results", {}).items():
            try:
                grade.results[i] = CheckResult.from_dict(r)
            except TypeError:
                grade.notes.append(f"{i}: unreadable result")
        if not state.get("done") and not stopped:
            tail = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                    if line.strip() and "Kernel is running over TCP" not in line][-3:]
            code = proc.returncode
            grade.notes.append(f"the grading process stopped early (exit status {code}): the graded code may "
                               "have killed it (os._exit, a crash, running out of memory)"
                               + (f"; last output: {' | '.join(tail)[:300]}" if tail else ""))
        for i in grade.exercises:
            grade.results.setdefault(i, _zero(i, "not graded (see the notes)"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_shared:
            shutil.rmtree(shared, ignore_errors=True)
    grade.seconds = time.monotonic() - start
    return grade


def _hard_limit(timeout: float, time_limit: float, n_exercises: int) -> float:
    """Last-resort limit for a whole worker: running the notebook, starting and
    stopping the kernel, and the checks (at most one timed-out call per exercise)."""
    return timeout + KERNEL_STARTUP + COLLECT_TIMEOUT + 60 + 4 * time_limit * n_exercises


def _zero(exercise_id: str, message: str) -> CheckResult:
    spec = EXERCISES[exercise_id]
    return CheckResult(False, 0.0, spec.points, [message], spec.id, spec.title, spec.function)


def _stop(proc: subprocess.Popen, workdir: Path) -> None:
    """SIGTERM (the worker then shuts its kernel down), then SIGKILL."""
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, _SIGKILL)
        proc.wait()


def _kill_kernel(workdir: Path) -> None:
    """Make sure the kernel of a worker is gone (it runs in its own session)."""
    pid_file = workdir / "kernel.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text())
    except ValueError:
        return
    try:
        os.kill(pid, 0)
    except OSError:
        return
    _kill_group(pid, _SIGKILL)
    try:
        os.kill(pid, _SIGKILL)
    except OSError:
        pass


# --------------------------------------------------------------------------- reports


def _pts(x: float) -> str:
    return f"{x:.4g}"


def format_score_table(grade: SubmissionGrade) -> str:
    """The per-exercise table printed by ``python -m course_lib check``."""
    rows = [("id", "title", "points", "first message")]
    for i in grade.exercises:
        r = grade.results.get(i) or _zero(i, "not graded")
        first = r.messages[0] if r.messages else ""
        rows.append((i, EXERCISES[i].title, f"{_pts(r.points)}/{_pts(r.max_points)}",
                     first if len(first) <= 90 else first[:87] + "..."))
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    lines = ["  ".join(row[c].ljust(widths[c]) for c in range(3)) + "  " + row[3] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 13)
    lines.append(f"total: {_pts(grade.total)} / {_pts(grade.max_total)}")
    for note in grade.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def feedback_markdown(grade: SubmissionGrade) -> str:
    """One feedback file: every exercise, every sub-check, the hint, the notes."""
    out = [f"# Feedback on `{grade.submission}`", ""]
    if grade.notebook:
        out.append(f"Notebook: {grade.notebook}  ")
    out.append(f"Total: **{_pts(grade.total)} / {_pts(grade.max_total)}** points")
    out.append("")
    if grade.notes:
        out.append("Notes from the grader:")
        out.append("")
        out += [f"- {n}" for n in grade.notes]
        out.append("")
    icons = {"passed": "✓", "failed": "✗", "skipped": "–"}
    for i in grade.exercises:
        r = grade.results.get(i) or _zero(i, "not graded")
        out.append(f"## {i} · {EXERCISES[i].title} (`{EXERCISES[i].function}`): "
                   f"{_pts(r.points)} / {_pts(r.max_points)}")
        out.append("")
        if r.subchecks and r.messages[:1] != ["not implemented yet"]:
            out += ["| | check | points | message |", "|---|---|---|---|"]
            for s in r.subchecks:
                out.append(f"| {icons.get(s.status, '?')} | {_md(s.name)} | {_pts(s.points)}/{_pts(s.max_points)} "
                           f"| {_md(s.message)} |")
            out.append("")
            if r.hint:
                out += [f"**Hint:** {r.hint}", ""]
        else:
            out += [f"- {m}" for m in r.messages] + [""]
        if r.seed is not None:
            out += [f"<sub>random inputs: seed {r.seed}</sub>", ""]
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------- a folder of submissions


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict]) -> None:
    """Write all rows atomically: a temporary file in the same folder, then os.replace."""
    ids = sorted({k for row in rows for k in row if k in EXERCISES})
    columns = ["submission", *ids, "total", "max_total", "notes", "sha256"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["submission"]):
        writer.writerow({c: row.get(c, "") for c in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _row(grade: SubmissionGrade) -> dict:
    row = {"submission": grade.submission, "total": _pts(grade.total), "max_total": _pts(grade.max_total),
           "notes": " | ".join(n.replace("\n", " ") for n in grade.notes), "sha256": grade.sha256}
    for i in grade.exercises:
        row[i] = _pts(grade.points(i))
    return row


def grade_folder(folder: str | Path, out: str | Path = "grades.csv", *, timeout: float = DEFAULT_TIMEOUT,
                 jobs: int = 1, feedback_dir: str | Path | None = None, notebook: str | None = None,
                 time_limit: float = DEFAULT_TIME_LIMIT, log=print) -> list[SubmissionGrade]:
    """Grade every ``*.ipynb`` of ``folder``, ``jobs`` at a time, into the CSV
    ``out`` (rewritten atomically after each submission) and one Markdown
    feedback file per submission. Rows whose file is unchanged (same sha256)
    are kept and not graded again. Returns the grades made in this run."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of submissions")
    feedback = Path(feedback_dir) if feedback_dir is not None else out.parent / "feedback"
    feedback.mkdir(parents=True, exist_ok=True)
    rows = {r["submission"]: r for r in _read_csv(out) if r.get("submission")}
    paths = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.name.startswith("."))
    todo = []
    for p in paths:
        try:
            digest = _file_hash(p.read_bytes())
        except OSError:
            digest = ""
        old = rows.get(p.name)
        if old is not None and old.get("sha256") == digest and digest:
            continue
        todo.append(p)
    skipped = len(paths) - len(todo)
    if skipped:
        log(f"{skipped} submission(s) already graded and unchanged: kept from {out}")
    jobs = max(1, int(jobs))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    shared = Path(tempfile.mkdtemp(prefix="course-grade-shared-"))
    active: set = set()
    lock = threading.Lock()
    done: list[SubmissionGrade] = []
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(grade_submission, p, timeout=timeout, time_limit=time_limit,
                                   notebook=notebook, threads=threads, shared_dir=shared, _active=active): p
                       for p in todo}
            try:
                for future in as_completed(futures):
                    p = futures[future]
                    try:
                        grade = future.result()
                    except Exception as exc:  # noqa: BLE001 - one submission never stops the others
                        grade = SubmissionGrade(submission=p.name,
                                                notes=[f"the grader failed on this file: {type(exc).__name__}: {exc}"])
                    with lock:
                        rows[grade.submission] = _row(grade)
                        _write_csv(out, list(rows.values()))
                        (feedback / f"{Path(grade.submission).stem}.md").write_text(
                            feedback_markdown(grade), encoding="utf-8")
                        done.append(grade)
                    note = f"  ({grade.notes[0][:80]})" if grade.notes else ""
                    log(f"[{len(done)}/{len(todo)}] {grade.submission}: {_pts(grade.total)}/"
                        f"{_pts(grade.max_total)} in {grade.seconds:.1f} s{note}")
            except KeyboardInterrupt:
                for f in futures:
                    f.cancel()
                for proc in list(active):
                    _stop(proc, Path())
                raise
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    if not paths:
        log(f"no .ipynb files in {folder}")
        if not out.exists():
            _write_csv(out, [])
    return done


# --------------------------------------------------------------------------- worker entry point


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="course_lib grading worker (internal)")
    parser.add_argument("--worker", dest="notebook", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT)
    parser.add_argument("--exercises", default="")
    return _worker(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_main())
