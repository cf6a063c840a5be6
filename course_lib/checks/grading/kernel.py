"""Run a submission's notebook in a fresh Jupyter kernel, collecting its graded
functions as it runs (collect.py), inside the worker."""

from __future__ import annotations

import re
import time

from .collect import collector_cell, read_payload

__all__ = ["COLLECT_TIMEOUT", "KERNEL_STARTUP", "run_notebook"]

KERNEL_STARTUP = 60  # seconds allowed for a kernel to start
COLLECT_TIMEOUT = 60  # seconds for one collection cell
_DEFINES = re.compile(r"^\s*(?:async\s+def|def|class)\s", re.MULTILINE)


def run_notebook(nb, names: list[str], timeout: float, kernel_cwd: str, notes: list[str],
                 cell_errors: list, on_kernel=None) -> dict | None:
    """Run the notebook's code cells in a fresh kernel (errors do not stop later
    cells; the whole run limited to ``timeout`` s, then interrupted), running the
    collector after every cell that defines a function or class or names a graded
    function, and once at the end.
    Returns the last collection that succeeded, or None. ``on_kernel(pid)`` is
    called once the kernel has started."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    deadline = time.monotonic() + timeout
    client = NotebookClient(
        nb, kernel_name="python3", timeout=int(max(1, timeout)), allow_errors=True,
        interrupt_on_timeout=True, startup_timeout=KERNEL_STARTUP, record_timing=False,
        shutdown_kernel="immediate",
        error_on_timeout={"ename": "TimeoutError", "evalue": f"the notebook ran past {timeout:g} s",
                          "traceback": []},
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic()) + 1),
        extra_arguments=["--HistoryManager.enabled=False"],
        resources={"metadata": {"path": kernel_cwd}},
    )
    payload = None
    slot = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(""))  # where collection cells run; never part of the notebook's numbering
    source = collector_cell(names)

    def collect():
        nonlocal payload
        cell = nbformat.v4.new_code_cell(source)
        saved = client.timeout_func, client.timeout
        client.timeout_func, client.timeout = None, COLLECT_TIMEOUT
        try:
            client.execute_cell(cell, slot, store_history=False)
        finally:
            client.timeout_func, client.timeout = saved
        for out in cell.get("outputs", []):
            if out.get("output_type") == "execute_result":
                try:
                    payload = read_payload(str(out.get("data", {}).get("text/plain", "")))
                    return True
                except ValueError:
                    return False
        return False

    number = 0
    try:
        with client.setup_kernel():
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            if pid and on_kernel is not None:
                on_kernel(pid)
            for index, cell in enumerate(nb.cells[:slot]):
                if cell.cell_type != "code":
                    continue
                number += 1
                if time.monotonic() >= deadline:
                    notes.append(f"stopped at code cell {number}: the notebook ran past {timeout:g} s "
                                 "(an infinite loop?); the functions defined before were graded")
                    break
                client.execute_cell(cell, index)
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        cell_errors.append((number, str(out.get("ename"))[:80]))
                if time.monotonic() >= deadline:
                    notes.append(f"code cell {number} ran past the {timeout:g} s limit for the whole notebook "
                                 "(an infinite loop?) and was interrupted; the functions defined before were graded")
                    break
                if _DEFINES.search(cell.source) or any(n in cell.source for n in names):
                    collect()
            number = -1  # past the notebook's cells
            if not collect() and payload is not None:
                notes.append("the last collection of your functions failed; an earlier one was graded")
    except DeadKernelError:
        where = f"while running code cell {number}" if number > 0 else "while the grader collected your functions"
        kept = "; the functions defined before it were graded" if payload is not None else "; nothing could be graded"
        notes.append(f"the kernel died {where} (os._exit, a crash or running out of memory){kept}")
    except RuntimeError as exc:  # the kernel failed to start
        notes.append(f"the kernel could not run the notebook ({str(exc)[:200]})")
    if cell_errors:
        shown = [f"code cell {n}: {e}" for n, e in cell_errors[:5]]
        more = f" and {len(cell_errors) - 5} more" if len(cell_errors) > 5 else ""
        notes.append(f"errors while running the notebook: {', '.join(shown)}{more}")
    if payload is None and not any("kernel" in n for n in notes):
        notes.append("the grader could not collect your functions from the kernel "
                     "(the notebook could not be interrupted, or the collection failed)")
    return payload
