"""Points need work: when an exercise earns nothing whatever its checks say.

:func:`work_problems` finds what an exercise's function (and every notebook
function it calls) uses that does the work for it: ``course_lib`` (the
reference implementations) or a torch built-in the exercise forbids
(``EXERCISES[id].forbidden`` when the registry declares it, else
:data:`FORBIDDEN`). Such an exercise gets 0 with the reason.
"""

from __future__ import annotations

import ast

from ..framework import EXERCISES
from .policy import name_chain

__all__ = ["FORBIDDEN", "forbidden_names", "work_problems"]

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
            chain = name_chain(n)
            if chain:
                out.append((chain, getattr(n, "lineno", 0)))
            elif isinstance(n, ast.Attribute):  # x.float().softmax: a method of some value
                out.append((["<value>", n.attr], getattr(n, "lineno", 0)))
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr"
              and len(n.args) > 1 and isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str)):
            base = name_chain(n.args[0])
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
