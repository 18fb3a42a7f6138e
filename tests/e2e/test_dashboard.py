"""The web dashboard in a real browser (Playwright driving Debian's Chromium, headless) against a
real `convoy coordinator serve` with real `convoy agent run` processes, one of which runs in its
own UTS namespace with a hostile hostname: sign in, the fleet, a staggered rollout created with
the New deployment form (an API refusal first, shown as worded), initialized, started, paused and
resumed from the page and followed live to completed, a failed device's output,
a refused action's error as the API gives it, and device data rendered as text everywhere.

Without Chromium the test skips, except under CI=true, where it fails (`make test` installs it).
Set CONVOY_DASHBOARD_SCREENSHOTS=DIR to keep the screenshots (docs/dashboard*.png come from here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import wait_for
from tests.harness import ROOT, CoordinatorProcess, InProcessCoordinator
from tests.real_agents import RealAgent, RealFleet

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags a closed network and a root user need (no background calls home, no sandbox).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
HOSTILE = "<img src=x onerror=alert(1)>"
# Fails on the device whose id has a marker file; prints markup that must stay text.
SCRIPT = """#!/bin/sh
if [ -e "$CONVOY_PARAM_DIR/fail-$CONVOY_DEVICE_ID" ]; then
  echo "<b>disk full</b> on $CONVOY_DEVICE_ID"
  exit 3
fi
sleep 0.3
echo "hello from $CONVOY_DEVICE_ID"
"""
SCHEMA = json.dumps({"type": "object", "properties": {"dir": {"type": "string"}}, "required": ["dir"]})


def _need(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not available")


class HostileAgent(RealAgent):
    """A real agent whose machine reports a hostile hostname: install and run happen in a new
    UTS namespace (`unshare --uts`) where the hostname was set to markup."""

    def _cmd(self, *args: str) -> list[str]:
        boot = ("import os, socket, sys; socket.sethostname(sys.argv[1]); "
                "os.execv(sys.executable, [sys.executable, '-m', 'cli.main', *sys.argv[2:]])")
        return ["unshare", "--uts", sys.executable, "-c", boot, HOSTILE, *args]

    def install(self, token: str, *extra: str) -> None:
        out = subprocess.run(self._cmd("agent", "install", "--server", self.coord.grpc_target, "--token", token,
                                       "--state-dir", str(self.state_dir), "--machine-id", f"it-{self.name}",
                                       "--no-service", "-o", "json", *self.coord.install_trust(), *extra),
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        self.device_id = json.loads(out.stdout)["device_id"]

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(self._cmd("agent", "run", "--state-dir", str(self.state_dir)), stdout=log,
                                     stderr=log, cwd=ROOT)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _need("Chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[CoordinatorProcess, RealFleet, Any]]:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--uts", "true"]).returncode != 0:
        _need("unshare --uts (root)")
    coord = CoordinatorProcess(tmp_path / "coord", insecure=True)  # TLS is tested in test_tls.py
    coord.bootstrap()
    coord.start()
    fleet = RealFleet(coord, tmp_path / "agents")
    fleet.root.mkdir()
    try:
        fleet.add(2, "--tag", "web", "--site", "berlin")
        token = coord.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=coord.client_id)).token
        hostile = HostileAgent(coord, fleet.root, "hostile")
        hostile.install(token, "--site", "lab")
        hostile.start()
        fleet.agents.append(hostile)
        fleet.wait_online([hostile])
        yield coord, fleet, hostile
    finally:
        fleet.stop()
        coord.stop()


def _shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("CONVOY_DASHBOARD_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_dashboard_follows_a_rollout_live(browser: Any, fleet: tuple[CoordinatorProcess, RealFleet, Any],
                                          tmp_path: Path) -> None:
    coord, devices, hostile = fleet
    shots = _shots(tmp_path)
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / f"fail-{hostile.device_id}").touch()
    script_id = coord.admin().CreateScript(pb.CreateScriptRequest(
        client_id=coord.client_id, name="hello", interpreter="sh", body=SCRIPT, parameters_schema=SCHEMA)).id
    ids = [a.device_id for a in devices.agents]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:  # confirmations are accepted; an alert() would be XSS
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    page.on("dialog", on_dialog)
    page.goto(coord.http_url + "/")

    # sign in: a wrong token is refused as the API says, the right one is kept for the session
    page.fill("#token", "cvy_api_wrong")
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#banner:not([hidden])")
    assert "401 unauthenticated" in page.inner_text("#banner")
    page.fill("#token", coord.token)
    page.click("#signin button[type=submit]")

    # the fleet: every device, online, counts; the hostile hostname is text, not an element
    page.wait_for_selector("#devices tbody tr[data-device]")
    assert page.locator("#devices tbody tr[data-device]").count() == 3
    assert page.inner_text("[data-count=online]").split()[0] == "3"
    assert page.get_by_text(HOSTILE, exact=True).count() == 1
    assert page.locator("#devices img").count() == 0
    page.screenshot(path=str(shots / "dashboard-fleet.png"))
    page.fill("#filter", 'hostname == "nothing-has-this-name"')
    page.click("#filter-form button")
    page.wait_for_selector("text=no device matches this filter")

    # the deployment, created with the form: the API's refusal as it words it, then a draft
    page.click("nav a[data-page=deployments]")
    page.click("#new-deployment-link")
    page.wait_for_selector(f"#nd-devices input[data-device='{hostile.device_id}']")
    assert page.get_by_text(HOSTILE, exact=True).count() == 1 and page.locator("#new-deployment img").count() == 0
    page.fill("#nd-name", "Hello fleet")
    page.fill("#nd-script", script_id)
    page.fill("#nd-parameters", json.dumps({"dir": str(marks)}))
    for device_id in ids:
        page.check(f"#nd-devices input[data-device='{device_id}']")
    page.select_option("#nd-rollout", "staggered")
    page.fill("#nd-batch-size", "0")
    page.fill("#nd-batch-delay", "0.03")
    page.fill("#nd-fail-count", "5")
    page.check("#nd-windows")
    page.fill("#nd-retries", "0")
    page.fill("#nd-backoff", "1, 2")
    page.click("#new-deployment button[type=submit]")
    page.wait_for_selector("#banner:not([hidden])")
    assert page.inner_text("#banner").startswith("400 ") and "batchSize" in page.inner_text("#banner")
    page.fill("#nd-batch-size", "1")
    page.screenshot(path=str(shots / "dashboard-new-deployment.png"), full_page=True)
    page.click("#new-deployment button[type=submit]")
    page.wait_for_selector("#dep-head [data-status=draft]")
    dep = devices.api("GET", "/deployments/" + page.evaluate("location.hash").rsplit("/", 1)[1])
    assert dep["name"] == "Hello fleet" and sorted(dep["targetConfig"]["deviceIds"]) == sorted(ids)
    rollout = dep["rolloutConfig"]
    assert rollout["staggered"]["batchSize"] == 1 and rollout["staggered"]["batchDelayMinutes"] == 0.03
    assert rollout["staggered"]["pauseOnFailureCount"] == 5 and rollout["respectMaintenanceWindows"] is True
    assert rollout["retryConfig"] == {"maxRetries": 0, "backoffMinutes": [1, 2]}
    assert dep["payload"] == {"scriptId": script_id, "parameters": {"dir": str(marks)}}

    # started from the page and followed live (no reload from here on)
    page.click("#actions button[data-action=initialize]")  # a draft: initialize shows its preview
    page.wait_for_selector("#preview p")
    assert page.inner_text("#preview p").startswith("3 device(s) in 3 batch(es)")
    page.wait_for_selector("#actions button[data-action=start]")
    page.click("#actions button[data-action=start]")
    page.wait_for_selector("#live.on")
    page.wait_for_selector("#batches tr[data-batch='3']")
    page.wait_for_function("() => /[1-3] completed/.test(document.querySelector('#progress-text').textContent)")
    page.click("#actions button[data-action=pause]")
    page.wait_for_selector("#dep-head [data-status=paused]")
    paused = devices.api("GET", f"/deployments/{dep['id']}")
    assert paused["status"] == "paused"
    page.wait_for_selector("#actions button[data-action=resume]")
    page.click("#actions button[data-action=resume]")
    page.wait_for_selector("#dep-head [data-status=completed]", timeout=60_000)
    assert "100%" in page.inner_text("#progress-text") and "1 failed" in page.inner_text("#progress-text")
    assert [d.split(":")[0] for d in dialogs] == ["confirm"] * 4  # initialize, start, pause, resume

    # the failed device: its hostname as text, its output on demand, markup kept as text
    failed = page.locator(f"#failed tr[data-failed='{hostile.device_id}']")
    assert failed.locator("a.hostname").inner_text() == HOSTILE
    page.click(f"button[data-output='{hostile.device_id}']")
    output = page.locator("#failures pre.output:visible")
    assert output.inner_text().startswith(f"<b>disk full</b> on {hostile.device_id}")
    assert page.locator("#failures b, #failures img").count() == 0
    page.screenshot(path=str(shots / "dashboard-deployment.png"), full_page=True)

    # an action the API refuses: the error as the API words it
    page.click(f"button[data-retry='{hostile.device_id}']")
    page.wait_for_selector("#banner:not([hidden])")
    banner = page.inner_text("#banner")
    assert banner.startswith("400 retries_exhausted") and "maxRetries" in banner

    # the device page
    failed.locator("a.hostname").click()
    page.wait_for_selector("#device-hostname")
    assert page.inner_text("#device-hostname").startswith(HOSTILE)
    assert page.locator("main img").count() == 0
    record = page.locator(f"#records tr[data-record='{dep['id']}']")
    assert "Hello fleet" in record.inner_text() and "failed" in record.inner_text()
    page.click(f"button[data-record-output='{dep['id']}']")
    assert page.locator("#records pre.output:visible").inner_text().startswith("<b>disk full</b>")
    assert page.locator("#history tbody tr").first.inner_text().find("success") >= 0
    assert not [d for d in dialogs if d.startswith("alert")]
    wait_for(lambda: devices.api("GET", f"/deployments/{dep['id']}")["status"] == "completed", what="completed")


def test_dashboard_is_served_with_a_strict_policy(coordinator: InProcessCoordinator) -> None:
    import httpx

    r = httpx.get(coordinator.http_url + "/")
    assert r.status_code == 200 and "<script type=\"module\" src=\"app.js\">" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert httpx.get(coordinator.http_url + "/app.js").headers["content-type"].startswith(("text/javascript",
                                                                                                "application/javascript"))
    api_404 = httpx.get(coordinator.http_url + "/v2/no-such-thing")
    assert api_404.status_code == 404 and api_404.json()["error"]["code"] == "not_found"
    unauth = httpx.get(coordinator.http_url + "/v2/me")
    assert unauth.status_code == 401 and unauth.json()["error"]["code"] == "unauthenticated"


def test_dashboard_approval_by_another_operator(browser: Any, coordinator: InProcessCoordinator) -> None:
    """docs/approvals.md in the page: a deployment over the client's policy shows why it waits,
    its creator's Approve is refused as the API words it, another operator approves it (with a
    comment for the audit trail) and starts it, and it completes on the agents."""
    from tests.component.deploy_helpers import Rest, body, fleet, script

    c = coordinator
    agents = fleet(c, 2)
    Rest(c)("PUT", f"/clients/{c.client_id}/policy", json={"requireApprovalOver": 1})

    def token(name: str) -> str:
        return str(c.admin().CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="operator",
                                                                      name=name)).token)

    alice, bob = token("alice"), token("bob")
    dep = Rest(c, alice)("POST", "/deployments", 201, json=body(script(c), [a.device_id for a in agents]))
    Rest(c, alice)("POST", f"/deployments/{dep['id']}/initialize")

    dialogs: list[str] = []
    prompts = iter(["", "CHG-42 reviewed"])

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.type)
        dialog.accept(next(prompts) if dialog.type == "prompt" else None)

    def open_as(who: str) -> Any:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", on_dialog)
        page.goto(c.http_url + f"/#/deployments/{dep['id']}")
        page.fill("#token", who)
        page.click("#signin button[type=submit]")
        page.wait_for_selector("#approval")
        return page

    page = open_as(alice)
    assert "needs approval by another operator: 2 targets over the client's limit of 1" in page.inner_text("#approval")
    page.click("#actions button[data-action=approve]")
    page.wait_for_selector("#banner:not([hidden])")
    assert page.inner_text("#banner").startswith("403 forbidden")
    assert "created this deployment cannot approve it" in page.inner_text("#banner")
    page.close()

    page = open_as(bob)
    page.click("#actions button[data-action=approve]")
    page.wait_for_function("() => /approved by bob/.test(document.querySelector('#approval').textContent)")
    assert "CHG-42 reviewed" in page.inner_text("#approval")
    page.click("#actions button[data-action=start]")
    page.wait_for_selector("#dep-head [data-status=completed]", timeout=60_000)
    assert "prompt" in dialogs and "alert" not in dialogs
    approval = Rest(c)("GET", f"/deployments/{dep['id']}")["approval"]
    assert [(a["tokenName"], a["comment"]) for a in approval["approvals"]] == [("bob", "CHG-42 reviewed")]
