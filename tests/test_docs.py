"""The documentation site (mkdocs.yml, docs/): it builds strictly, loads nothing
from the network, renders in a real browser, its config-key table is the
schema's, and the Python blocks of its guides run as written."""

import functools
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

# Integration tier (the documentation's examples and mkdocs);
# the fast tier, `pytest -m "not integration"`, leaves it out.
pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Screenshots of the rendered pages, kept after the run (CI artefacts).
ARTEFACTS = pathlib.Path(os.environ.get("RDML_TEST_ARTEFACTS", ROOT / "tmp" / "artefacts")) / "docs"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NOT_RUN = "<!-- not run:"


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The site as `mkdocs build --strict` writes it (any warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_hook_examples():
    import doctest
    import importlib.util

    for name in ("docs_hooks", "docs_griffe"):
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, name


# ----------------------------------------------------------------------------
# Offline: nothing is loaded from another host


def test_pages_load_nothing_from_another_host(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    remote = re.compile(
        r"<(script|link|img|iframe|source|video|audio)\b[^>]*\b(src|href)=\"((https?:)?//[^\"]*)\"",
        re.I,
    )
    found = {
        (str(page.relative_to(site)), match.group(3))
        for page in pages
        for match in remote.finditer(page.read_text())
    }
    assert not found, f"pages load from other hosts: {sorted(found)[:10]}"
    # The stylesheets ask for no web fonts, and MathJax comes from the site itself.
    for css in site.rglob("*.css"):
        assert "fonts.googleapis" not in css.read_text(), css
    assert (site / "javascripts/mathjax/tex-svg.js").stat().st_size > 1_000_000
    assert (site / "search/search_index.js").is_file()  # the offline search index


def test_api_reference_renders_docstrings_as_code_and_text(site):
    """Doctest sessions are code blocks (tools/docs_griffe.py), and no docstring
    line turns into a Markdown block quote."""
    for page in sorted((site / "api").glob("*.html")):
        html = page.read_text()
        assert "<blockquote>" not in html, f"{page.name}: a docstring line starts with '>'"
        assert "&gt;&gt;&gt;" not in html.replace('<span class="gp">&gt;&gt;&gt; </span>', ""), (
            f"{page.name}: a doctest prompt outside a code block"
        )


# ----------------------------------------------------------------------------
# A real browser: headless Chromium from Debian's packages (.ci/run installs it)


class _Handler(http.server.SimpleHTTPRequestHandler):
    failed = []  # (path, status) of every request the site could not answer

    def log_message(self, *args):
        pass

    def send_error(self, code, *args, **kwargs):
        self.failed.append((self.path, code))
        super().send_error(code, *args, **kwargs)


def require_browser(chromium=CHROMIUM, chromedriver=CHROMEDRIVER):
    """Fail (never skip) when Chromium or its driver is missing."""
    missing = [p for p in (chromium, chromedriver) if not pathlib.Path(p).exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: apt-get install -y chromium chromium-driver "
            "(README's test command does it: tools/install_test_deps.sh)"
        )


def test_a_missing_browser_fails_the_tests_loudly(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="chromium-driver"):
        require_browser(CHROMIUM, str(tmp_path / "chromedriver"))


@pytest.fixture(scope="module")
def browser(site):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


def _open(browser, path, name, base=None):
    """Load a page, wait for MathJax to finish, screenshot it; return the driver."""
    driver, served = browser
    base = base or served
    _Handler.failed.clear()
    driver.get_log("browser")
    driver.get_log("performance")
    driver.get(f"{base}/{path}")
    # MathJax typesets asynchronously: wait on its promise.
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise) {"
        "  MathJax.startup.promise.then(() => done(true), () => done(false));"
        "} else { done(true); }"
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTEFACTS / f"{name}.png"))
    return driver


def _problems(driver):
    """Console errors, and requests that failed or were answered with an error."""
    problems = [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
    ]
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.loadingFailed":
            problems.append(f"request failed: {message['params'].get('errorText')}")
        elif message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            if response["status"] >= 400:
                problems.append(f"{response['url']}: HTTP {response['status']}")
    problems += [f"{path}: HTTP {status}" for path, status in _Handler.failed]
    return problems


def test_home_page_renders(browser):
    driver = _open(browser, "index.html", "home")
    assert "rdml_keras" in driver.title
    assert "MutualLearner" in driver.find_element("css selector", "article").text
    assert not _problems(driver)


def test_api_page_shows_the_class_signature(browser):
    driver = _open(browser, "api/learner.html", "api_mutual_learner")
    heading = driver.find_element("id", "rdml_keras.MutualLearner")
    assert "MutualLearner" in heading.text
    signatures = [e.text for e in driver.find_elements("css selector", ".doc-signature")]
    assert any(
        "MutualLearner(" in s and 'divergence="renyi"' in s and "alpha=None" in s
        for s in signatures
    ), signatures[:3]
    # Docstring text and a method of the class are there too.
    article = driver.find_element("css selector", "article").text
    assert "predict_ensemble" in article and "stop-gradient" in article
    assert not _problems(driver)


def test_equations_are_typeset(browser):
    driver = _open(browser, "guides/divergences.html", "divergences")
    sources = driver.find_elements("css selector", ".arithmatex")
    typeset = driver.find_elements("css selector", ".arithmatex mjx-container svg")
    assert len(sources) >= 10
    assert len(typeset) == len(sources), (len(typeset), len(sources))
    assert not driver.find_elements("css selector", "mjx-merror"), "a TeX error on the page"
    text = driver.find_element("css selector", "article").text
    assert "\\(" not in text and "\\[" not in text, "raw TeX left on the page"
    display = driver.find_element("css selector", "mjx-container[display='true']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", display)
    driver.save_screenshot(str(ARTEFACTS / "divergences_equation.png"))
    assert not _problems(driver)


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_search_works_from_the_built_files(browser, site, scheme):
    """Over a local server, and from the files themselves (file://, where the
    offline plugin's search index and the vendored iframe-worker shim do it)."""
    from selenium.webdriver.common.by import By

    base = site.as_uri() if scheme == "file" else None
    driver = _open(browser, "index.html", f"search_{scheme}", base)
    driver.find_element(By.CSS_SELECTOR, "label.md-search__icon, .md-search__input").click()
    box = driver.find_element(By.CSS_SELECTOR, ".md-search__input")
    box.send_keys("Rényi")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not driver.find_elements(
        By.CSS_SELECTOR, ".md-search-result__item"
    ):
        time.sleep(0.2)
    driver.save_screenshot(str(ARTEFACTS / f"search_{scheme}.png"))
    assert driver.find_elements(By.CSS_SELECTOR, ".md-search-result__item")
    assert not _problems(driver)


# ----------------------------------------------------------------------------
# The config-key table is the schema's


def test_config_key_table_is_the_schema():
    """The page's table is what `python -m rdml_keras schema --markdown` prints."""
    page = (DOCS / "guides/config-keys.md").read_text()
    assert "<!-- config keys: python -m rdml_keras schema --markdown -->" in page, (
        "docs/guides/config-keys.md lost its table of config keys"
    )
    stale = subprocess.run(
        [sys.executable, str(ROOT / "tools/paste_config_keys.py"), "--check"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert stale.returncode == 0, (
        "docs/guides/config-keys.md is stale: run `python tools/paste_config_keys.py`"
    )


# ----------------------------------------------------------------------------
# Tables that state what the code does agree with it; no placeholders

# The backends tables' row names, as `keras.backend.backend()` spells them.
_BACKEND_ROWS = {"TensorFlow": "tensorflow", "JAX": "jax", "PyTorch": "torch"}
_BACKEND_TABLES = [
    ("README.md", 'update="sequential"'),
    ("docs/getting-started.md", "update orders"),
    ("docs/guides/mutual-learner.md", 'update="sequential"'),
]


def _table_rows(text, header_word):
    """The body rows (cells) of the first Markdown table whose header has `header_word`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|") and header_word in line)
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return rows


@pytest.mark.parametrize("page,header_word", _BACKEND_TABLES)
def test_backends_tables_state_the_update_orders_each_backend_runs(page, header_word):
    """Every backend in SEQUENTIAL_BACKENDS (whose sequential step the learner tests run)
    is listed with both orders, any other with the simultaneous one only."""
    from rdml_keras.learner import UPDATE_ORDERS
    from rdml_keras.train_steps import SEQUENTIAL_BACKENDS

    rows = _table_rows((ROOT / page).read_text(), header_word)
    seen = set()
    for row in rows:
        name = next(v for k, v in _BACKEND_ROWS.items() if row["backend"].startswith(k))
        seen.add(name)
        runs = set(UPDATE_ORDERS) if name in SEQUENTIAL_BACKENDS else {"simultaneous"}
        if "update orders" in row:  # one column listing them
            listed = set(re.findall(r"`(\w+)`", row["update orders"]))
        else:  # a yes/no column per order
            listed = {o for o in UPDATE_ORDERS if row[f'`update="{o}"`'].startswith("yes")}
        assert listed == runs, (page, row["backend"], listed)
    assert seen == set(_BACKEND_ROWS.values()), (page, seen)


_PLACEHOLDERS = re.compile(r"YOUR-ORG|REPO_URL|<-- EDIT|\bTODO\b|\bFIXME\b|\bXXX\b")


def test_docs_and_notebooks_hold_no_placeholders():
    """A reader never has to fill anything in: no `YOUR-ORG`, `REPO_URL`, `<-- EDIT`."""
    files = [ROOT / "README.md", *DOCS.rglob("*.md"), *(ROOT / "colab").iterdir()]
    found = [
        f"{path.relative_to(ROOT)}: {match.group()}"
        for path in files
        if path.suffix in (".md", ".ipynb")
        for match in _PLACEHOLDERS.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


# ----------------------------------------------------------------------------
# Citations of the design page name sections it has


def test_design_citations_name_sections_of_the_design_page():
    sections = set(re.findall(r"^#+ §\S+ .*\{ #s(\S+) \}$", (DOCS / "design.md").read_text(), re.M))
    assert {"1", "1.1", "1.2", "1.3", "1.4", "1.5", "2", "3", "3a", "4", "5", "6"} <= sections
    cited = re.compile(r"design page,?\s*§\s*([0-9]+[a-z]?(?:\.[0-9]+)?)")
    texts = _tracked_texts()
    missing = {
        (name, section)
        for name, text in texts.items()
        for section in cited.findall(text)
        if section not in sections
    }
    assert not missing, f"citations of design sections the page lacks: {sorted(missing)}"
    # The design lives in the project: nothing cites a design file outside it.
    outside = re.compile("DESIGN" + r"(?:\.md)?\s*§|" + "DESIGN" + r"\.md")
    assert not [name for name, text in texts.items() if outside.search(text)]


def _tracked_texts():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {
        name: (ROOT / name).read_text(errors="replace")
        for name in files
        if name.endswith((".py", ".md", ".sh", ".yaml", ".ipynb", ".txt"))
        and (ROOT / name).exists()
    }


# ----------------------------------------------------------------------------
# The guides' Python blocks run as written


def _python_blocks(page):
    """(first line, code) of each ```python block not marked `<!-- not run: why -->`."""
    text = page.read_text()
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].startswith(NOT_RUN):
            continue
        blocks.append((text[: match.start()].count("\n") + 1, match.group(1)))
    return blocks


PAGES = sorted(p for p in DOCS.rglob("*.md") if _python_blocks(p))


def test_unrun_blocks_say_why():
    for page in DOCS.rglob("*.md"):
        for line in page.read_text().splitlines():
            if line.startswith(NOT_RUN):
                assert line.endswith("-->") and len(line) > len(NOT_RUN) + 8, (page, line)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_guide_code_runs(page, tmp_path, monkeypatch):
    # One namespace per page, blocks in order (a page builds on its earlier blocks),
    # in a scratch directory: what a block saves lands there.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    namespace = {"__name__": "__docs__"}
    for line, code in _python_blocks(page):
        exec(compile(code, f"{page}:{line}", "exec"), namespace)
