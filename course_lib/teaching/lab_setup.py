"""JupyterLab settings of the course's environment, applied by `make setup` and repo2docker's postBuild.

Learners get the slideshow button (jupyterlab-rise) and the widgets, and not the instructor-side nbgrader
extensions that come with the nbgrader package (installed for the course's nbgrader test and for instructors who
grade with it): those add menus that need a course directory and would only confuse a learner. An instructor who
wants formgrader in this environment re-enables them (docs/instructor.md).

Run as ``python -m course_lib.teaching.lab_setup``; idempotent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# mathjax3-extension is a dependency of jupyterlab-rise that JupyterLab 4 replaces with its own MathJax;
# left enabled it is flagged as incompatible by `jupyter labextension list`.
LAB_EXTENSIONS_OFF = ("@jupyter/nbgrader", "@jupyterlab/mathjax3-extension")
SERVER_EXTENSIONS_OFF = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.assignment_list",
                         "nbgrader.server_extensions.course_list", "nbgrader.server_extensions.validate_assignment")


def main(prefix: str | None = None) -> int:
    """Write the settings into the environment's own configuration (sys.prefix/etc/jupyter): a page_config.json
    that disables the lab extensions and a jupyter_server_config.d file, sorted after nbgrader's own, that
    disables its server extensions. Plain JSON files: fast, and the same as `jupyter labextension disable
    --level=sys_prefix` and `jupyter server extension disable --sys-prefix` write."""
    etc = Path(prefix or sys.prefix) / "etc" / "jupyter"
    page = etc / "labconfig" / "page_config.json"
    page.parent.mkdir(parents=True, exist_ok=True)
    config = json.loads(page.read_text()) if page.exists() else {}
    config.setdefault("disabledExtensions", {}).update({name: True for name in LAB_EXTENSIONS_OFF})
    page.write_text(json.dumps(config, indent=2))
    server = etc / "jupyter_server_config.d" / "zz_course_lab_setup.json"
    server.parent.mkdir(parents=True, exist_ok=True)
    server.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {n: False for n in SERVER_EXTENSIONS_OFF}}},
                                 indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
