"""The code policy: what the worker accepts from a submission's collected source.

:func:`sanitize_definitions` keeps only imports, ``def``, ``class`` and
``NAME = literal``; definition-time code must be a literal or a plain
reference; bodies that reach for the system or the checker (``os``,
``setattr`` on modules, ``__dict__``, computed attribute names,
``timeit("code")``...) are not run but flagged for review. When the work of an
exercise is not the learner's own is work.py's question.
"""

from __future__ import annotations

import ast

__all__ = ["DENIED_ATTRS", "DENIED_MODULES", "DENIED_NAMES", "name_chain", "sanitize_definitions"]

DENIED_MODULES = (
    "os", "sys", "subprocess", "builtins", "importlib", "inspect", "gc", "ctypes", "signal", "threading",
    "_thread", "multiprocessing", "concurrent", "asyncio", "socket", "shutil", "pathlib", "io", "pickle",
    "marshal", "types", "unittest", "operator", "course_lib.checks", "IPython", "ipykernel", "pty", "resource",
    "code", "codeop", "runpy", "dill", "cloudpickle", "tempfile", "atexit", "faulthandler", "weakref",
    "traceback", "linecache", "sysconfig", "site", "posix", "nt", "torch.library", "torch.ops",
    "torch.overrides", "torch.utils.cpp_extension", "torch.hub", "nbclient", "jupyter_client",
    # modules that compile or run code given as a string
    "timeit", "doctest", "pdb", "bdb", "cProfile", "profile", "trace", "pydoc", "pkgutil", "zipimport",
    "torch.package", "torch.fx", "torch.jit", "torch.utils.benchmark",
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


def name_chain(node) -> list[str] | None:
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
        chain = name_chain(node)
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
            chain = name_chain(node)
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
            computed = len(node.args) > 1 and not (isinstance(node.args[1], ast.Constant)
                                                   and isinstance(node.args[1].value, str))
            if computed:
                problems.append(f"{at}: calls `{node.func.id}` with a computed attribute name")
            elif not on_param and not (node.func.id == "getattr" and safe_name):
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
