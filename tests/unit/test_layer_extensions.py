"""The background extension installer, against a fake code-server and gallery.

The fake records installs in a file; the "gallery" is the set of ids it can fetch
(empty: offline). The installer must install offline .vsix files, fetch the rest, keep
going when the gallery is down, and never reinstall what a user removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imagebuild.layers.model import FILES_DIR
from tests.unit.layer_fixtures import load_script

FAKE = """#!{python}
import os, sys
db = os.environ["FAKE_DB"]
have = open(db).read().split() if os.path.exists(db) else []
args = sys.argv[1:]
if "--list-extensions" in args:
    print("\\n".join(have))
    sys.exit(0)
gallery = os.environ.get("FAKE_GALLERY", "").split()
failed = False
for i, arg in enumerate(args):
    if arg != "--install-extension":
        continue
    name = args[i + 1]
    ext = open(name).read().strip() if name.endswith(".vsix") else name
    if name.endswith(".vsix") or name in gallery:
        have.append(ext)
    else:
        print("Failed Installing Extensions: " + name, file=sys.stderr)
        failed = True
open(db, "w").write("\\n".join(have))
sys.exit(1 if failed else 0)
"""


extensions = load_script(FILES_DIR / "extensions.py", "sagecode_extensions")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake code-server; returns its installed-extensions file."""
    exe = tmp_path / "code-server"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setattr(extensions, "CODE_SERVER", str(exe))
    monkeypatch.setenv("FAKE_DB", str(tmp_path / "installed"))
    return tmp_path / "installed"


def _run(tmp_path: Path, fake: Path, ids: list[str], gallery: str) -> list[str]:
    """One background run with ``gallery`` reachable; returns what is installed after it."""
    listing = tmp_path / "extensions.txt"
    listing.write_text("# curated\n" + "\n".join(ids) + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_GALLERY", gallery)  # the fake code-server reads it
        env = {"HOME": str(tmp_path / "home")}
        assert extensions.main([str(listing), "--user-data-dir", str(tmp_path / "data")], env) == 0
    return fake.read_text().split() if fake.exists() else []


def test_extensions_from_gallery(tmp_path: Path, fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every curated id the gallery has is installed, in one code-server run."""
    assert _run(tmp_path, fake, ["a.one", "b.two"], "a.one b.two") == ["a.one", "b.two"]
    assert "done: 2 newly installed" in capsys.readouterr().out


def test_extensions_gallery_down_is_a_warning(tmp_path: Path, fake: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Offline, nothing installs, the log says why, and the next start tries again."""
    assert _run(tmp_path, fake, ["a.one"], "") == []
    out = capsys.readouterr().out
    assert "warning: not installed (gallery unreachable?): a.one" in out
    assert _run(tmp_path, fake, ["a.one"], "a.one") == ["a.one"]


def test_extensions_offline_vsix_first(tmp_path: Path, fake: Path) -> None:
    """.vsix files in ~/.sagecode/vsix are installed, and their ids need no gallery."""
    vsix = tmp_path / "home/.sagecode/vsix"
    vsix.mkdir(parents=True)
    (vsix / "a.one-1.0.0.vsix").write_text("a.one")
    assert _run(tmp_path, fake, ["a.one"], "") == ["a.one"]


def test_extensions_removed_by_user_stay_removed(tmp_path: Path, fake: Path) -> None:
    """What was installed once is recorded and never installed again."""
    _run(tmp_path, fake, ["a.one", "b.two"], "a.one b.two")
    fake.write_text("b.two")  # the user uninstalled a.one
    assert _run(tmp_path, fake, ["a.one", "b.two"], "a.one b.two") == ["b.two"]


def test_extensions_ids_are_case_insensitive(tmp_path: Path, fake: Path) -> None:
    """An id installed in another case counts as installed."""
    fake.write_text("pkief.material-icon-theme")
    assert _run(tmp_path, fake, ["PKief.material-icon-theme"], "") == ["pkief.material-icon-theme"]
