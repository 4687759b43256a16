"""The dashboard in a real browser (headless Chromium through chromedriver, Selenium).

Run by dashboard.rs against `abm serve` on a seeded SQLite database:
    python3 dashboard_browser.py BASE_URL REVIEWER_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
Flows: a reviewer signs in, filters to Active Focus candidates, opens one, approves its
checkpoint with a comment and sees its cluster and the queue change; pages through the
accounts; a viewer sees no approve button and a forged POST gets 403. A screenshot of each
page goes to SCREENSHOT_DIR. Exits non-zero, saying why, on any failure.
"""

import os
import re
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait as _Wait

BASE, REVIEWER, VIEWER, SHOTS = sys.argv[1:5]
os.makedirs(SHOTS, exist_ok=True)


def browser(width=1280, height=860):
    opts = webdriver.ChromeOptions()
    opts.add_argument("--headless=new")
    opts.add_argument("--no-sandbox")
    opts.add_argument("--disable-dev-shm-usage")
    opts.add_argument("--disable-gpu")
    opts.add_argument(f"--window-size={width},{height}")
    for path in ("/usr/bin/chromium", "/usr/lib/chromium/chromium"):
        if os.path.exists(path):
            opts.binary_location = path
            break
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def WebDriverWait(d, timeout):
    """A wait that looks again when the page it looked at was replaced meanwhile."""
    return _Wait(d, timeout, ignored_exceptions=(StaleElementReferenceException,))


def click_away(d, el):
    """Click `el`, which leaves the page, and wait until the old page is gone."""
    el.click()
    WebDriverWait(d, 20).until(expected_conditions.staleness_of(el))


def check(cond, why):
    if not cond:
        raise AssertionError(why)


def wait_url(d, part):
    WebDriverWait(d, 20).until(lambda d: part in d.current_url)


def wait_title(d, part):
    WebDriverWait(d, 20).until(lambda d: part in d.title)


def shot(d, name):
    d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def sign_in(d, token):
    d.get(BASE + "/signin")
    check(d.title.startswith("Sign in"), f"sign-in page: {d.title}")
    field = d.find_element(By.ID, "token")
    label = d.find_element(By.CSS_SELECTOR, "label[for=token]")
    check(label.text, "the token field is labelled")
    field.send_keys(token)
    field.send_keys(Keys.ENTER)
    WebDriverWait(d, 20).until(lambda d: d.current_url.rstrip("/") == BASE)


def pending_count(d):
    d.get(BASE + "/review")
    h = d.find_element(By.ID, "pending-h").text
    return int(h.split()[0].replace(",", ""))


def reviewer_flow():
    d = browser()
    try:
        d.get(BASE + "/signin")
        shot(d, "signin")
        sign_in(d, REVIEWER)
        check("Clusters against capacity" in d.page_source, "the overview shows the funnel")
        shot(d, "overview")
        # Keyboard: the first Tab reaches the skip link.
        d.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        check(d.switch_to.active_element.text == "Skip to content", "the skip link comes first")
        before = pending_count(d)
        check(before > 0, "the seeded database has pending checkpoints")
        shot(d, "review")
        # Accounts: filter to Active Focus candidates.
        d.get(BASE + "/accounts")
        Select(d.find_element(By.ID, "candidate")).select_by_value("active_focus")
        click_away(d, d.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
        wait_url(d, "candidate=active_focus")
        shot(d, "accounts")
        rows = d.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")
        check(rows, "some accounts are Active Focus candidates")
        target = None
        for r in rows:
            cells = r.find_elements(By.TAG_NAME, "td")
            if cells[2].text.strip() != "Active Focus":
                target = cells[0].find_element(By.TAG_NAME, "a")
                break
        check(target is not None, "a candidate still waits for a reviewer")
        account = target.text
        click_away(d, target)
        wait_title(d, account)
        check("The decision table" in d.page_source, "the account page explains the decision")
        check(d.find_elements(By.CSS_SELECTOR, "svg.chart"), "the events timeline is drawn")
        shot(d, "account")
        forms = d.find_elements(By.CSS_SELECTOR, "form.decide")
        check(forms, "a reviewer sees the decision form")
        # Approve the promotion to Active Focus (the form whose checkpoint says so).
        form = next(
            (f for f in forms if "Active Focus" in f.find_element(By.XPATH, "..").text),
            forms[0],
        )
        form.find_element(By.TAG_NAME, "textarea").send_keys("Approved in the browser test")
        click_away(d, form.find_element(By.CSS_SELECTOR, "button[value=approve]"))
        WebDriverWait(d, 20).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "form.decide textarea") or
                                   "Active Focus" in d.find_element(By.CSS_SELECTOR, ".cards .card .badge").text)
        check(account in d.title, "back on the account page")
        now = d.find_element(By.CSS_SELECTOR, ".cards .card .badge").text
        check(now == "Active Focus", f"the account is Active Focus at once (shows {now})")
        after = pending_count(d)
        check(after < before, f"the queue shrank ({before} → {after})")
        check("Approved in the browser test" in d.page_source, "the decision says why")
        # Paging through the accounts: each page new, ids ascending.
        d.get(BASE + "/accounts")
        firsts = []
        for _ in range(4):
            rows = d.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")
            check(len(rows) == 50, f"a full page ({len(rows)} rows)")
            firsts.append(rows[0].find_element(By.TAG_NAME, "a").text)
            before = d.current_url
            click_away(d, d.find_element(By.CSS_SELECTOR, "a[rel=next]"))
            WebDriverWait(d, 20).until(lambda d: d.current_url != before)
        check(firsts == sorted(set(firsts)), f"pages move forward: {firsts}")
        # Sorting this page by score, with the keyboard.
        head = d.find_element(By.XPATH, "//table[@id='accounts']//th[5]/button")
        head.send_keys(Keys.ENTER)
        scores = [
            float(t.text or 0)
            for t in d.find_elements(By.CSS_SELECTOR, "#accounts tbody tr td:nth-child(5)")
        ]
        check(scores == sorted(scores), "sorted by score")
        # Runs and a transition matrix.
        d.get(BASE + "/runs")
        shot(d, "runs")
        click_away(d, d.find_element(By.CSS_SELECTOR, "table tbody th a"))
        wait_title(d, "transitions")
        shot(d, "transitions")
        link = d.find_element(By.CSS_SELECTOR, "table.matrix td a")
        click_away(d, link)
        wait_url(d, "run=")
        # Tablet width: the page still fits (no horizontal scroll of the whole page).
        d.set_window_size(800, 1000)
        d.get(BASE + "/")
        width = d.execute_script("return document.documentElement.scrollWidth")
        check(width <= 820, f"the overview fits a tablet ({width}px)")
        shot(d, "overview-tablet")
        d.find_element(By.CSS_SELECTOR, "form.signout button").click()
        wait_url(d, "/signin")
        return account
    finally:
        d.quit()


def viewer_flow():
    d = browser()
    try:
        sign_in(d, VIEWER)
        d.get(BASE + "/review")
        check(not d.find_elements(By.CSS_SELECTOR, "button[value=approve]"), "no approve button in the queue")
        link = d.find_element(By.CSS_SELECTOR, "ol.items a")
        account = link.text
        link.click()
        wait_title(d, account)
        check(not d.find_elements(By.CSS_SELECTOR, "button[value=approve]"), "no approve button on the account")
        shot(d, "account-viewer")
        ids = re.findall(r"#(\d+)", d.find_element(By.CSS_SELECTOR, "section.pending").text)
        check(ids, "the pending checkpoint is shown to the viewer")
        # Forged POSTs, as a page could send them: a form with the viewer's own CSRF token
        # (the role refuses it) and one without (the CSRF check refuses it).
        forge = """
            const f = document.createElement('form');
            f.method = 'post'; f.action = arguments[0];
            for (const [k, v] of Object.entries(arguments[1])) {
                const i = document.createElement('input');
                i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
            }
            document.body.appendChild(f); f.submit();
        """
        csrf = d.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        d.execute_script(forge, "/review", {"csrf": csrf, "id": ids[0], "action": "approve", "comment": "forged"})
        wait_title(d, "Not allowed")
        check(d.title.startswith("Not allowed"), f"a viewer's forged POST is refused: {d.title}")
        check("needs the reviewer role" in d.page_source, "403: the role")
        shot(d, "forbidden")
        d.get(BASE + "/runs")
        d.execute_script(forge, "/runs", {"as_of": ""})
        wait_title(d, "Not allowed")
        check(d.title.startswith("Not allowed"), f"a POST without the CSRF token is refused: {d.title}")
        check("CSRF" in d.page_source, "403: the CSRF token")
    finally:
        d.quit()


try:
    account = reviewer_flow()
    viewer_flow()
except Exception as e:  # the Rust test prints this and fails
    import traceback

    here = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
    where = (here or traceback.extract_tb(e.__traceback__))[-1]
    print(f"FAILED at line {where.lineno} ({where.line}): {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print(f"ok: approved {account}; screenshots in {SHOTS}")
