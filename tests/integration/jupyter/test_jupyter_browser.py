"""The launcher card as a user meets it: headless Chromium (Debian's) driving the real JupyterLab."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from imagebuild.manifest import Manifest
from tests.integration.conftest import need
from tests.integration.jupyter.conftest import Jupyter, editor_environ, start_jupyter, stop_jupyter
from tests.integration.runtime_support import docker, make_sandbox, me

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytest_plugins = ["tests.integration.runtime_fixtures"]
pytestmark = [pytest.mark.jupyter, pytest.mark.browser, pytest.mark.engine, pytest.mark.image]

CHROMIUM = Path(os.environ.get("SAGECODE_CHROMIUM", "/usr/bin/chromium"))
# The flags Debian's Chromium needs to run headless as root in a container, and no
# background traffic: this machine reaches only package registries.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"
UI_TIMEOUT_MS = 60_000
EDITOR_TIMEOUT_MS = 120_000  # the first click starts the container
MARKER = "made-by-the-browser-test.txt"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright; Playwright never downloads a browser here."""
    need(CHROMIUM.is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    need(importlib.util.find_spec("playwright") is not None, "no playwright (pip install playwright)")
    # Imported here, once known to be there: a missing playwright then fails in CI and
    # skips elsewhere, instead of breaking the collection of every test.
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def lab(browser: Browser, jupyter: Jupyter) -> Iterator[Page]:
    """JupyterLab's launcher, logged in with the token."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{jupyter.url}lab?token={jupyter.token}")
    page.locator(".jp-LauncherCard").first.wait_for()
    yield page
    page.close()


def test_launcher_has_one_code_server_card_with_its_icon(lab: Page) -> None:
    """The launcher shows exactly one "Code Server" card, and its icon image is loaded and visible."""
    cards = lab.locator(".jp-LauncherCard").filter(has_text="Code Server")
    assert cards.count() == 1
    icon = cards.locator(".jp-LauncherCard-icon img")
    icon.wait_for(state="visible")
    assert icon.evaluate("img => img.complete && img.naturalWidth > 0")
    screenshot(lab, "jupyter-launcher.png")


def test_card_opens_the_workbench_on_the_workspace(lab: Page, workspace: Path) -> None:
    """Clicking the card opens the VS Code workbench in a JupyterLab tab, showing the workspace's files."""
    (workspace / MARKER).write_text("written on the host\n")
    lab.locator(".jp-LauncherCard").filter(has_text="Code Server").click()
    lab.locator(".lm-TabBar-tab.lm-mod-current", has_text="Code Server").wait_for()
    editor = lab.frame_locator(".jp-ServerProxy iframe")
    editor.locator(".monaco-workbench").wait_for(timeout=EDITOR_TIMEOUT_MS)
    # The explorer lists the folder and its files only over the remote connection (websocket).
    explorer = editor.locator(".explorer-folders-view")
    explorer.get_by_text(MARKER, exact=True).wait_for(timeout=EDITOR_TIMEOUT_MS)
    title = editor.locator(".part.sidebar .pane-header", has_text=re.compile(workspace.name, re.IGNORECASE))
    title.first.wait_for()
    screenshot(lab, "jupyter-code-server-tab.png")


def test_card_during_a_restore_waits_on_a_page_that_becomes_the_workbench(
    browser: Browser, jupyter_glue: Path, editor_state: Path, editor_image: Manifest, tmp_path: Path
) -> None:
    """After a restart the card answers at once, with a page that waits for the restore and
    turns into the workbench by itself: the proxy's readiness back-off is not waited for.

    The image is missing under its name (a copy of the editor's, saved in the sandbox), and
    the test holds the restore's lock as a start hook restoring it would.
    """
    image = replace(editor_image, image=f"sagecode-waitpage-test:{editor_image.content[:12]}")
    box = make_sandbox(me(), image, saved=editor_state / "images")
    lock_path = box.state / "run" / "build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    server = start_jupyter(jupyter_glue, tmp_path, editor_environ(box))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(f"{server.url}lab?token={server.token}")
        clicked = time.monotonic()
        page.locator(".jp-LauncherCard").filter(has_text="Code Server").click()
        editor = page.frame_locator(".jp-ServerProxy iframe")
        editor.get_by_text("its image is being restored").wait_for()
        waiting = time.monotonic() - clicked
        screenshot(page, "jupyter-code-server-restoring.png")
        time.sleep(3)  # the restore is held: the page stays, polling
        assert editor.locator(".monaco-workbench").count() == 0
        os.close(lock)  # the restore goes on
        lock = -1
        editor.locator(".monaco-workbench").wait_for(timeout=EDITOR_TIMEOUT_MS)
        print(f"\nthe waiting page after {waiting:.1f} s; the workbench {time.monotonic() - clicked:.1f} s "
              "after the click (3 s of it the held restore)")
        assert "restoring it" in (box.state / "logs/wrapper.log").read_text()
    finally:
        page.close()
        if lock >= 0:
            os.close(lock)
        stop_jupyter(server)
        docker("rmi", image.image)
        box.close()


def test_card_after_a_failed_restore_says_why(
    browser: Browser, jupyter_glue: Path, editor_image: Manifest, tmp_path: Path
) -> None:
    """A restore that fails (the saved image's blobs are gone) shows its reason in the tab,
    not a page that waits for ever nor the proxy's bare 500."""
    image = replace(editor_image, image=f"sagecode-failing-test:{editor_image.content[:12]}")
    box = make_sandbox(me(), image)  # current.json only: nothing to restore from
    server = start_jupyter(jupyter_glue, tmp_path, editor_environ(box))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(f"{server.url}lab?token={server.token}")
        page.locator(".jp-LauncherCard").filter(has_text="Code Server").click()
        editor = page.frame_locator(".jp-ServerProxy iframe")
        editor.get_by_text("Code Server could not start").wait_for()
        screenshot(page, "jupyter-code-server-restore-failed.png")
        assert "sagecode logs" in editor.locator("body").inner_text()
    finally:
        page.close()
        stop_jupyter(server)
        box.close()


def screenshot(page: Page, name: str) -> None:
    """Keep what the user would see, under artifacts/ (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
