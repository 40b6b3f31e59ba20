"""The book itself: a quick-mode build must succeed with no cell error and no Sphinx warning, and its
pages must work in a real browser with no network: equations typeset, every image loaded, nothing
fetched from elsewhere, and the sliders moving their figures without a kernel."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
NO_BROWSER = ("needs Debian's chromium and chromium-driver (scripts/test.sh installs them when run as root; "
              "otherwise: apt-get install chromium chromium-driver)")


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [c["file"] for c in part["chapters"]]
    return files


CHAPTERS = [name for name in _toc_files() if (ROOT / "book" / f"{name}.ipynb").is_file()]


def test_toc_lists_every_chapter_and_only_existing_files():
    files = _toc_files()
    for name in files:
        assert any((ROOT / "book" / f"{name}{ext}").is_file() for ext in (".md", ".ipynb")), name
    notebooks = {str(p.relative_to(ROOT / "book").with_suffix("")) for p in (ROOT / "book").rglob("*.ipynb")
                 if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts}
    assert notebooks <= set(files), f"notebooks missing from _toc.yml: {sorted(notebooks - set(files))}"


PINNED = "nbval-check-output"  # nbval compares these cells' committed text output with what they print


def test_notebooks_are_committed_without_outputs():
    """No outputs, except the short printed text of cells tagged for nbval to compare (deterministic ones)."""
    import nbformat

    pinned = 0
    for path in sorted((ROOT / "book").rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, c in enumerate(nb.cells):
            if c.cell_type != "code" or not (c.outputs or c.execution_count):
                continue
            assert PINNED in c.metadata.get("tags", []), f"{path.relative_to(ROOT)} has outputs in cell {i}"
            assert c.outputs and all(o.output_type == "stream" for o in c.outputs), f"{path.relative_to(ROOT)} cell {i}"
            assert sum(len(o.text) for o in c.outputs) < 2000, f"{path.relative_to(ROOT)} cell {i}: keep pins short"
            pinned += 1
    assert pinned >= 5  # the shapes and sizes chapters 7, 9, 10 and 11 print


def test_no_chapter_shows_the_checks_of_its_own_claims():
    """A chapter's asserts run in cells tagged remove-cell: executed by the build and by nbval, never shown."""
    import ast

    import nbformat

    hidden = 0
    for path in sorted((ROOT / "book").rglob("*.ipynb")):
        for i, c in enumerate(nbformat.read(path, as_version=4).cells):
            if c.cell_type != "code":
                continue
            asserts = sum(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(c.source)))
            if "remove-cell" in c.metadata.get("tags", []):
                hidden += asserts
            else:
                assert not asserts, f"{path.relative_to(ROOT)} cell {i} shows {asserts} assert(s): move them to a remove-cell"
    assert hidden >= 100  # the checks are still there, only out of sight


def _executed_chapters() -> list[str]:
    """``--executed DIR`` when ``$COURSEKIT_EXECUTED`` holds every chapter as nbval executed it, else nothing."""
    folder = os.environ.get("COURSEKIT_EXECUTED")
    if folder and all((Path(folder) / f"{name}.ipynb").is_file() for name in CHAPTERS):
        return ["--executed", folder]
    return []


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The quick book, built once by the README's builder: from the chapters as the test command's nbval run
    executed them (``scripts/test.sh``), or, when this file runs alone, executing every chapter once."""
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, COURSEKIT_QUICK="1", TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)  # the kernels must use the inline backend, or plt.show() draws no PNG
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_book.py"), "--path-output", str(out),
                             *_executed_chapters(), "-W", "-n", "--keep-going"], capture_output=True, text=True,
                            env=env, timeout=1500)
    return result, out / "_build" / "html"


def test_quick_book_build(book):
    result, html = book
    log = result.stdout + result.stderr
    warnings = [line for line in log.splitlines()
                if ("WARNING" in line or "failed" in line) and "IPKernelApp" not in line]
    assert result.returncode == 0, "book build failed:\n" + "\n".join(warnings[:40]) + "\n" + log[-3000:]
    assert (html / "index.html").is_file()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not served locally"
    for name in _toc_files():
        page = (html / f"{name}.html").read_text()
        # MyST-NB shows a cell error as an "output traceback" block (pygments' CSS names "Traceback" too)
        assert 'class="output traceback' not in page and "Traceback (most recent call last)" not in page, \
            f"{name}: an error traceback is shown on the page"
        if name in CHAPTERS:
            assert re.search(r'<img[^>]+src="[^"]*\.png"', page), f"{name}: no figure on the page"


def test_pages_load_no_script_or_stylesheet_from_elsewhere(book):
    _, html = book
    for page in html.rglob("*.html"):
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', page.read_text())
        assert not remote, f"{page.relative_to(html)} loads {remote[:3]}"


@pytest.fixture(scope="module")
def browser(book):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(NO_BROWSER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(browser, html: Path, name: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((html / f"{name}.html").as_uri())
    # MathJax typesets after load: wait until every math element holds its rendered container
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && "
        "[...document.querySelectorAll('.math')].every(m => m.querySelector('mjx-container'));"))


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_page_works_offline_in_a_browser(browser, book, name):
    _, html = book
    _open(browser, html, name)
    raw = browser.execute_script(
        "return [...document.querySelectorAll('article p, article li')]"
        ".map(e => e.innerText).filter(t => /\\$[^$\\s][^$]*\\$/.test(t));")
    assert not raw, f"{name}: math left untypeset: {raw[:2]}"
    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80));")
    assert not broken, f"{name}: images that did not load: {broken[:3]}"
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name).filter(u => !u.startsWith('file:') "
        "&& !u.startsWith('data:'));")
    assert not fetched, f"{name}: requests that leave the machine: {fetched[:3]}"


@pytest.mark.parametrize("name", ["part1/05_sparse_autoencoder", "part2/09_fcn"])
def test_slider_changes_the_figure_without_a_kernel(browser, book, name, tmp_path):
    _, html = book
    _open(browser, html, name)
    slider = browser.find_element("css selector", ".coursekit-knob input[type=range]")
    shown = ("return [...arguments[0].closest('.coursekit-knob').querySelectorAll('img')]"
             ".filter(i => i.offsetParent !== null).map(i => i.src);")
    before = browser.execute_script(shown, slider)
    browser.execute_script("arguments[0].scrollIntoView()", slider)
    browser.save_screenshot(str(tmp_path / "before.png"))
    last = int(slider.get_attribute("max"))
    target = 0 if int(slider.get_attribute("value")) == last else last
    browser.execute_script("arguments[0].value = arguments[1];"
                           "arguments[0].dispatchEvent(new Event('input'));", slider, target)
    after = browser.execute_script(shown, slider)
    browser.save_screenshot(str(tmp_path / "after.png"))
    assert len(before) == len(after) == 1, (before, after)
    assert before != after, f"{name}: moving the slider did not change the figure"
