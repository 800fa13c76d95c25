#!/usr/bin/env python3
"""End-to-end test of the worklist (/ui/) in a real browser.

Starts the real vigil-server (with a tokens file) and Debian's chromedriver
with headless Chromium, and drives them through W3C WebDriver over HTTP (the
standard library only): sign in; a PutPatient (the `vigil` client) raises an
alert that appears live; open it with the keyboard, override it with a coded
reason; it leaves the active list and the acknowledgement is on the feed (the
page's feed, AlertFeed.ListAlerts and AlertFeed.Subscribe); the event stream
resumes after a Last-Event-ID; a POST without the CSRF token is refused; the
monograph search finds silperisone.

  e2e_ui_test.py SERVER_BIN CLIENT_BIN KB_DIR [--screenshot PNG]

With --screenshot it stores demo patients and saves the worklist at 1280x800
instead of testing. Fails when chromium or chromedriver is missing: CI
installs them with scripts/install-deps.sh.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CLINICIAN_TOKEN = "ui-test-clinician-token-5c1b"
FEEDER_TOKEN = "ui-test-ehr-token-93fa"
READER_TOKEN = "ui-test-reader-token-1d07"
PATIENT = "ui-e2e-patient-7"


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def wait_for(what, probe, timeout=20.0, interval=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (Failure, KeyError, IndexError, ValueError) as err:
            last = err
        time.sleep(interval)
    raise Failure(f"timed out waiting for {what}" + (f" ({last})" if last else ""))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """vigil-server with a tokens file, on free ports."""

    def __init__(self, binary, kb, workdir):
        tokens = os.path.join(workdir, "tokens")
        with open(tokens, "w") as f:
            for token, roles, name in ((CLINICIAN_TOKEN, "clinician,subscriber", "alice"),
                                       (FEEDER_TOKEN, "ehr,subscriber", "ehr-feed"),
                                       (READER_TOKEN, "subscriber", "reader")):
                f.write(f"{hashlib.sha256(token.encode()).hexdigest()} {roles} {name}\n")
        os.chmod(tokens, 0o600)
        self.log = []
        self.proc = subprocess.Popen(
            [binary, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0", f"--kb={kb}",
             f"--db={os.path.join(workdir, 'vigil.db')}", f"--tokens_file={tokens}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.grpc_port = self.http_port = 0
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                event = re.search(r'"event":"(\w+)".*"port":"(\d+)"', line)
                if event and event.group(1) == "http_listening":
                    self.http_port = int(event.group(2))
                if event and event.group(1) == "listening":
                    self.grpc_port = int(event.group(2))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        ready.wait(60)
        check(self.grpc_port and self.http_port, "the server did not start:\n" + "".join(self.log))
        self.base = f"http://127.0.0.1:{self.http_port}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Browser:
    """A headless Chromium session through chromedriver's W3C WebDriver API."""

    def __init__(self, chromium, chromedriver, workdir):
        self.port = free_port()
        self.driver = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for("chromedriver", lambda: self._call("GET", "/status")["value"]["ready"])
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", f"--user-data-dir={os.path.join(workdir, 'chromium')}",
                     "--no-first-run", "--disable-extensions", "--force-device-scale-factor=1"]}}}}
        self.session = self._call("POST", "/session", caps)["value"]["sessionId"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return json.loads(res.read())
        except urllib.error.HTTPError as err:
            raise Failure(f"WebDriver {method} {path}: {err.read().decode(errors='replace')[:500]}")
        except urllib.error.URLError as err:
            raise Failure(f"WebDriver {method} {path}: {err}")

    def cmd(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)["value"]

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def find(self, css, many=False):
        found = self.cmd("POST", "/elements", {"using": "css selector", "value": css})
        elements = [next(iter(e.values())) for e in found]
        return elements if many else (elements[0] if elements else None)

    def must(self, css, timeout=20):
        return wait_for(f"'{css}'", lambda: self.find(css) if self.displayed(self.find(css)) else None, timeout)

    def displayed(self, element):
        return bool(element) and self.cmd("GET", f"/element/{element}/displayed")

    def text(self, element):
        return self.cmd("GET", f"/element/{element}/text")

    def click(self, element):
        self.cmd("POST", f"/element/{element}/click", {})

    def type(self, element, text):
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def script(self, source, *args):
        return self.cmd("POST", "/execute/sync", {"script": source, "args": list(args)})

    def async_script(self, source, *args):
        return self.cmd("POST", "/execute/async", {"script": source, "args": list(args)})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))

    def quit(self):
        try:
            self.cmd("DELETE", "")
        except Failure:
            pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()


def put_patient(client, server, workdir, patient):
    path = os.path.join(workdir, f"{patient['id']}.json")
    with open(path, "w") as f:
        json.dump(patient, f)
    run = subprocess.run([client, f"--server=127.0.0.1:{server.grpc_port}", f"--token={FEEDER_TOKEN}", "patient",
                          "put", path], capture_output=True, text=True, timeout=60)
    check(run.returncode == 0, f"vigil patient put: {run.stdout}{run.stderr}")


def vigil_json(client, server, *args):
    run = subprocess.run([client, f"--server=127.0.0.1:{server.grpc_port}", f"--token={CLINICIAN_TOKEN}", "--json",
                          *args], capture_output=True, text=True, timeout=60)
    check(run.returncode == 0, f"vigil {' '.join(args)}: {run.stdout}{run.stderr}")
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def sign_in(browser, server, token):
    browser.go(server.base + "/ui/")
    browser.type(browser.must("#token"), token)
    browser.click(browser.find("#signin-submit"))
    browser.must("#worklist")
    wait_for("the live state", lambda: browser.text(browser.find("#live-status")) == "Live")


def test_headers(server):
    with urllib.request.urlopen(server.base + "/ui/", timeout=10) as res:
        csp = res.headers.get("Content-Security-Policy", "")
        check("default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp,
              f"Content-Security-Policy: {csp!r}")
        check(res.headers.get("X-Content-Type-Options") == "nosniff", "X-Content-Type-Options")
        check(res.headers.get("Referrer-Policy") == "no-referrer", "Referrer-Policy")
    try:
        urllib.request.urlopen(server.base + "/ui/api/worklist", timeout=10)
        raise Failure("the worklist answered without a session")
    except urllib.error.HTTPError as err:
        check(err.code == 401, f"the worklist without a session: HTTP {err.code}")
    print("ok - security headers, and no worklist without a session")


def test_cookie(browser):
    cookies = {c["name"]: c for c in browser.cmd("GET", "/cookie")}
    cookie = cookies.get("__Host-vigil_session")
    check(cookie is not None, f"no session cookie: {list(cookies)}")
    check(cookie.get("httpOnly") and cookie.get("secure") and cookie.get("sameSite") == "Strict"
          and cookie.get("path") == "/", f"cookie attributes: {cookie}")
    check("vigil_session" not in browser.script("return document.cookie;"), "the page's script reads the cookie")
    print("ok - signed in; the session cookie is HttpOnly, Secure, SameSite=Strict")
    return cookie["value"]


def test_live_override(browser, server, client, workdir):
    before = set(browser.script(
        "return [...document.querySelectorAll('#alert-rows tr')].map(r => r.dataset.alertId);"))
    put_patient(client, server, workdir, {"id": PATIENT, "medications": [{"drug": "sertraline"},
                                                                          {"drug": "silperisone"}]})
    row = wait_for("the new alert in the worklist, without a reload", lambda: browser.script(
        "const rows = [...document.querySelectorAll('#alert-rows tr')].filter(r =>"
        " r.querySelector('.patient').textContent === arguments[0]);"
        "return rows.length ? rows[0].dataset.alertId : null;", PATIENT))
    check(row not in before, "the alert was there before the PutPatient")
    check(browser.script("return performance.getEntriesByType('navigation').length;") == 1, "the page reloaded")
    print(f"ok - the PutPatient's alert appeared live")
    # Open it from the keyboard: Enter on the row's button.
    button = browser.find(f'#alert-rows button[data-alert-id="{row}"]')
    browser.type(button, "\ue007")
    browser.must("#alert-view")
    check(browser.script("return document.activeElement.id;") == "alert-title", "the focus is not on the alert")
    title = browser.text(browser.find("#alert-title"))
    check(title, "the alert view has no summary")
    check(PATIENT in browser.text(browser.find("#alert-patient")), "the alert view does not name the patient")
    context = browser.text(browser.find("#patient-context")).lower()
    check("sertraline" in context and "silperisone" in context, f"patient context: {context}")
    check(browser.find("#alert-evidence li") and browser.find("#alert-history li"), "no evidence or history")
    browser.click(browser.find("#outcome-overridden"))
    browser.click(browser.find('#reason option[value="benefit-outweighs-risk"]'))
    browser.type(browser.find("#comment"), "discussed with the prescriber")
    browser.click(browser.find("#ack-submit"))
    wait_for("the alert to leave the active list", lambda: browser.script(
        "return document.querySelector('#worklist') && !document.querySelector('#worklist').hidden &&"
        " !document.querySelector('#alert-rows tr[data-alert-id=\"' + arguments[0] + '\"]');", row))
    feed = wait_for("the acknowledgement on the page's feed", lambda: browser.script(
        "const li = document.querySelector('#activity li[data-type=\"ACKNOWLEDGED\"]');"
        "return li ? li.textContent : null;"))
    check("Overridden by alice" in feed, f"feed entry: {feed}")
    print("ok - overridden with a reason: it left the active list; the feed shows it")
    # The acknowledgement on the gRPC feed: ListAlerts and Subscribe.
    records = [r for r in vigil_json(client, server, "alerts", PATIENT, "--all") if r["alert"]["id"] == row]
    check(records and records[0]["status"] == "ALERT_STATUS_OVERRIDDEN", f"ListAlerts: {records}")
    acks = [h for h in records[0]["history"] if h["type"] == "ALERT_EVENT_TYPE_ACKNOWLEDGED"]
    check(acks and acks[0]["acknowledgement"]["agent"] == "alice" and
          acks[0]["acknowledgement"]["reason"]["code"] == "benefit-outweighs-risk", f"history: {acks}")
    number = int(acks[0].get("eventNumber", acks[0].get("event_number", 0)))
    events = vigil_json(client, server, "subscribe", f"--after={number - 1}", "--count=1")
    check(events and "alice" in json.dumps(events[0]), f"Subscribe: {events}")
    print("ok - AlertFeed.ListAlerts and AlertFeed.Subscribe carry the override by alice")
    return row, number


def test_resume(server, cookie, number):
    req = urllib.request.Request(server.base + "/ui/api/events",
                                 headers={"Cookie": f"__Host-vigil_session={cookie}", "Last-Event-ID": str(number - 1)})
    with urllib.request.urlopen(req, timeout=20) as res:
        check(res.headers.get("Content-Type", "").startswith("text/event-stream"), "not an event stream")
        seen = None
        for raw in res:
            line = raw.decode().strip()
            if line.startswith("id: "):
                seen = int(line[4:])
                break
    check(seen == number, f"resumed at event {seen}, expected {number}")
    print("ok - the event stream resumes after Last-Event-ID")


def test_csrf(browser, row):
    script = """
      const done = arguments[arguments.length - 1];
      const headers = {'Content-Type': 'application/json'};
      if (arguments[1]) headers['X-CSRF-Token'] = arguments[1];
      fetch('/ui/api/ack', {method: 'POST', headers, credentials: 'same-origin',
                            body: JSON.stringify({alertId: arguments[0], outcome: 'accepted'})})
        .then(r => done(r.status), e => done(String(e)));"""
    check(browser.async_script(script, row, None) == 403, "a POST without the CSRF token was not refused")
    check(browser.async_script(script, row, "0" * 64) == 403, "a POST with a wrong CSRF token was not refused")
    print("ok - POSTs without or with a wrong CSRF token are refused (403)")


def test_monograph(browser):
    browser.click(browser.find("#tab-drugs"))
    browser.type(browser.must("#drug-query"), "silperisone")
    browser.click(browser.find("#drug-search"))
    result = browser.must('#drug-results button[data-drug-id]')
    check("silperisone" in browser.text(result).lower(), f"first result: {browser.text(result)}")
    browser.click(result)
    heading = browser.must("#monograph h2")
    text = browser.text(browser.find("#monograph")).lower()
    check("silperisone" in browser.text(heading).lower(), "monograph heading")
    for part in ("classes:", "side effects", "contraindications", "interactions", "sources"):
        check(part in text, f"the monograph has no '{part}'")
    check("knowledge base" in browser.text(browser.find("#kb-version")).lower(), "no knowledge base version")
    print("ok - the monograph search finds silperisone and shows its monograph")


def test_reader(browser, server, row):
    browser.cmd("DELETE", "/cookie")
    sign_in(browser, server, READER_TOKEN)
    status = browser.async_script("""
      const done = arguments[arguments.length - 1];
      fetch('/ui/api/session').then(r => r.json()).then(s => fetch('/ui/api/ack', {method: 'POST',
          headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf},
          body: JSON.stringify({alertId: arguments[0], outcome: 'accepted'})}))
        .then(r => done(r.status), e => done(String(e)));""", row)
    check(status == 403, f"a subscriber acknowledged: HTTP {status}")
    browser.click(browser.find("#signout"))
    browser.must("#signin")
    print("ok - a subscriber reads but may not acknowledge (403); sign-out ends the session")


DEMO = [
    {"id": "bed-12 Ortega", "medications": [{"drug": "sertraline"}, {"drug": "silperisone"}]},
    {"id": "bed-07 Lindqvist", "conditions": [{"code": {"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                         "code": "N18.6", "display": "End stage renal disease"}}],
     "medications": [{"drug": "silperisone"}]},
    {"id": "bed-03 Achebe", "medications": [{"drug": "warfarin"}, {"drug": "aspirin"}]},
    {"id": "bed-21 Novak", "allergies": [{"substance": "penicillin", "reaction": "anaphylaxis"}],
     "medications": [{"drug": "amoxicillin"}]},
    {"id": "bed-09 Haddad", "medications": [{"drug": "zolpidem"}, {"drug": "oxycodone"}, {"drug": "baclofen"}]},
    {"id": "bed-15 Moreau", "medications": [{"drug": "lithium"}, {"drug": "lisinopril"}]},
]


def screenshot(browser, server, client, workdir, path):
    sign_in(browser, server, CLINICIAN_TOKEN)
    for patient in DEMO:
        put_patient(client, server, workdir, patient)
    wait_for("demo alerts", lambda: len(browser.find("#alert-rows tr", many=True)) >= len(DEMO))
    time.sleep(1.0)
    browser.screenshot(path)
    print(f"saved {path}")


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    server_bin, client_bin, kb = argv[1:4]
    shot = argv[argv.index("--screenshot") + 1] if "--screenshot" in argv else None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        print("FAIL: chromium and chromedriver are needed (scripts/install-deps.sh installs them)")
        return 1
    workdir = tempfile.mkdtemp(prefix="vigil-ui-e2e-")
    server = browser = None
    try:
        server = Server(server_bin, kb, workdir)
        browser = Browser(chromium, chromedriver, workdir)
        if shot:
            screenshot(browser, server, client_bin, workdir, shot)
            return 0
        test_headers(server)
        sign_in(browser, server, CLINICIAN_TOKEN)
        cookie = test_cookie(browser)
        row, number = test_live_override(browser, server, client_bin, workdir)
        test_resume(server, cookie, number)
        test_csrf(browser, row)
        test_monograph(browser)
        test_reader(browser, server, row)
        log = "".join(server.log)
        check(PATIENT not in log, "the server's log names the patient")
        print("ok - the server's log holds no patient id")
        print("PASS: the worklist in headless Chromium (9 checks)")
        return 0
    except Failure as err:
        print(f"FAIL: {err}")
        if browser:
            try:
                print("page message: " + browser.script(
                    "return document.getElementById('message').textContent + ' | ' + location.href;"))
            except Failure as again:
                print(f"(no page: {again})")
        if server:
            print("server log (tail):\n" + "".join(server.log[-30:]))
        return 1
    finally:
        if browser:
            browser.quit()
        if server:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
