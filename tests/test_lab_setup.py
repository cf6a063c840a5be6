"""lab_setup turns off the instructor-side nbgrader extensions and keeps what else is configured."""

import json

from course_lib.teaching import lab_setup


def test_lab_setup_writes_the_environment_config_and_is_idempotent(tmp_path):
    page = tmp_path / "etc" / "jupyter" / "labconfig" / "page_config.json"
    page.parent.mkdir(parents=True)
    page.write_text(json.dumps({"disabledExtensions": {"other": True}, "lockedExtensions": {"x": True}}))
    for _ in range(2):
        assert lab_setup.main(str(tmp_path)) == 0
    config = json.loads(page.read_text())
    assert config["disabledExtensions"] == {"other": True, **{n: True for n in lab_setup.LAB_EXTENSIONS_OFF}}
    assert config["lockedExtensions"] == {"x": True}
    server = json.loads((tmp_path / "etc/jupyter/jupyter_server_config.d/zz_course_lab_setup.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == {n: False for n in lab_setup.SERVER_EXTENSIONS_OFF}
    # sorted after nbgrader's own file, which enables them: the later file wins
    assert "zz_course_lab_setup.json" > "nbgrader.json"
