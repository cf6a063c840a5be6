"""The code policy: what the worker accepts from a submission's collected
source, and when an exercise earns nothing because the work was not done.

1. :func:`sanitize_definitions` keeps only imports, ``def``, ``class`` and
   ``NAME = literal``; definition-time code must be a literal or a plain
   reference; bodies that reach for the system or the checker (``os``,
   ``setattr`` on modules, ``__dict__``, computed attribute names,
   ``timeit("code")``...) are not run but flagged for review.
2. :func:`work_problems` finds, for one exercise, what its function (and every
   notebook function it calls) uses that does the work for it: ``course_lib``
   (the reference implementations) or a torch built-in the exercise forbids
   (``EXERCISES[id].forbidden`` when the registry declares it, else
   :data:`FORBIDDEN`). Such an exercise gets 0 with the reason.
"""

from __future__ import annotations

import ast

from ..framework import EXERCISES

__all__ = ["DENIED_MODULES", "DENIED_NAMES", "DENIED_ATTRS", "FORBIDDEN", "forbidden_names",
           "sanitize_definitions", "work_problems"]

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




# --------------------------------------------------------------------------- points need work

# Torch built-ins that do an exercise's work, used until the registry declares
# its own (``ExerciseSpec.forbidden``). ``torch.Tensor.X`` also forbids the method ``x.X(...)``.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "00.1": ("torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax", "torch.Tensor.softmax",
             "torch.nn.Softmax"),
    "01.1": ("torch.nn.RNN", "torch.nn.RNNCell", "torch.rnn_tanh", "torch.rnn_tanh_cell"),
    "03.1": ("torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.multi_head_attention_forward",
             "torch.nn.MultiheadAttention"),
    "04.3": ("torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.multi_head_attention_forward",
             "torch.nn.MultiheadAttention"),
    "06.1": ("torch.nn.functional.layer_norm", "torch.layer_norm", "torch.nn.LayerNorm"),
    "06.2": ("torch.nn.TransformerEncoderLayer", "torch.nn.TransformerEncoder"),
    "09.1": ("torch.nn.functional.scaled_dot_product_attention",),
}
_SHORT = {"F": "torch.nn.functional", "nn": "torch.nn"}


def forbidden_names(exercise_id: str) -> tuple[str, ...]:
    """Dotted names of the built-ins ``exercise_id`` forbids (``F.x`` spelled out as ``torch.nn.functional.x``)."""
    declared = getattr(EXERCISES.get(exercise_id), "forbidden", None)
    names = FORBIDDEN.get(exercise_id, ()) if declared is None else tuple(declared)
    out = []
    for name in names:
        head, _, rest = str(name).partition(".")
        out.append(f"{_SHORT[head]}.{rest}" if head in _SHORT and rest else str(name))
    return tuple(out)


def _resolve_dotted(dotted: str):
    """The object a dotted name names, importing its module (only torch names reach here); None if none."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _uses(node) -> list[tuple[list[str], int]]:
    """Every name chain a body reads (``F.softmax`` -> ['F', 'softmax'], and
    ``getattr(F, "softmax")`` alike), with its line."""
    out = []
    for n in ast.walk(node):
        if isinstance(n, (ast.Name, ast.Attribute)) and isinstance(n.ctx, ast.Load):
            chain = _chain(n)
            if chain:
                out.append((chain, getattr(n, "lineno", 0)))
            elif isinstance(n, ast.Attribute):  # x.float().softmax: a method of some value
                out.append((["<value>", n.attr], getattr(n, "lineno", 0)))
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr"
              and len(n.args) > 1 and isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str)):
            base = _chain(n.args[0])
            if base:
                out.append((base + [n.args[1].value], getattr(n, "lineno", 0)))
        elif isinstance(n, (ast.Import, ast.ImportFrom)):  # an import inside the function
            for a in n.names:
                dotted = a.name if isinstance(n, ast.Import) else f"{n.module or ''}.{a.name}"
                out.append((["<import>", dotted], getattr(n, "lineno", 0)))
    return out


def _reachable(source_tree: ast.Module, name: str) -> list:
    """The definitions (functions, classes) of the collected source that ``name`` uses, itself first."""
    defs = {s.name: s for s in source_tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for s in source_tree.body:  # `alias = name` lines the collector writes for renamed functions
        if isinstance(s, ast.Assign) and isinstance(s.value, ast.Name) and s.value.id in defs:
            for t in s.targets:
                if isinstance(t, ast.Name):
                    defs.setdefault(t.id, defs[s.value.id])
    order, todo, seen = [], [name], set()
    while todo:
        n = todo.pop()
        if n in seen or n not in defs:
            continue
        seen.add(n)
        order.append(defs[n])
        todo += [c[0] for c, _ in _uses(defs[n])]
    return order


def _is_course_lib(obj) -> bool:
    import types

    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    return isinstance(name, str) and (name == "course_lib" or name.startswith("course_lib."))


def work_problems(exercise_id: str, source: str, namespace: dict) -> list[str]:
    """Why ``exercise_id`` earns nothing whatever its checks say: its function, or
    a notebook function it calls, uses ``course_lib`` or a forbidden built-in.
    ``namespace`` is where the collected definitions were executed; names are
    resolved to objects there, so any alias (``from torch.nn import functional
    as G``, ``sdpa = F.scaled_dot_product_attention``) is caught."""
    import types

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    spec = EXERCISES[exercise_id]
    banned = {}
    methods = {}
    for dotted in forbidden_names(exercise_id):
        obj = _resolve_dotted(dotted)
        if obj is not None:
            banned[id(obj)] = dotted
        owner, _, attr = dotted.rpartition(".")
        if owner == "torch.Tensor":
            methods[attr] = dotted
    problems: list[str] = []
    reachable = _reachable(tree, spec.function)
    own = {d.name for d in reachable}
    for node in reachable:
        where = f"`{node.name}`"
        for chain, line in _uses(node):
            at = f"{where}, line {line}"
            if chain[0] == "<import>":
                if chain[1].split(".")[0] == "course_lib":
                    problems.append(f"{at}: imports `{chain[1]}` (course_lib's reference implementation)")
                elif chain[1] in banned.values():
                    problems.append(f"{at}: uses `{chain[1]}`, which this exercise asks you to write yourself")
                continue
            obj = namespace.get(chain[0]) if chain[0] not in own else None
            resolved = obj is not None
            for attr in chain[1:]:
                if obj is None or not isinstance(obj, (types.ModuleType, type)):
                    break
                obj = getattr(obj, attr, None)
            text = ".".join(chain)
            if resolved and obj is not None and _is_course_lib(obj):
                problems.append(f"{at}: uses `{text}` from course_lib (the reference implementation); "
                                "write it yourself")
            elif resolved and obj is not None and id(obj) in banned:
                problems.append(f"{at}: uses `{text}` ({banned[id(obj)]}), which this exercise asks you to "
                                "write yourself")
            elif not resolved and len(chain) > 1 and chain[-1] in methods:
                problems.append(f"{at}: uses the method `.{chain[-1]}` ({methods[chain[-1]]}), which this "
                                "exercise asks you to write yourself")
    return list(dict.fromkeys(problems))
