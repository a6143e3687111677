#!/usr/bin/env python3
"""End-to-end test of the managers' console in headless Chromium.

Starts `yizhan serve` (the binary named by YIZHAN_BIN) on a fresh SQLite file,
prepares an admin, a site, its manager and a worker with the command line and
the API, then drives the console as the manager on a phone-sized screen:
sign in with the SMS code (read from the server's log, as a developer does),
change the site's hours in the weekly editor (and see GET /v1/sites/nearby
report the new state), mark it temporarily closed, lose a race to another
editor and reapply, create an event, have the worker book it through the API,
check the worker in by code, export the CSV, read the history, create a draw
event (抽签) and see its applicants per priority group and enter its public
value (the draw itself, at draw_at, is tested in tests/api/console.rs with
the test clock); then, as the admin, assign a manager and import a GeoJSON
file after its preview. Every page gets an axe-core check (no serious or
critical violations); screenshots go to SCREENSHOTS (default target/console-screenshots). With
UPDATE_README_SCREENSHOT=1 the hours editor's screenshot is also written to
docs/console-hours.png.

Run by `cargo test --test console_browser` (which builds the binary), or by
hand: YIZHAN_BIN=target/debug/yizhan python3 tests/console/e2e.py
"""

import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

from playwright.sync_api import sync_playwright

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("YIZHAN_BIN", os.path.join(ROOT, "target", "debug", "yizhan"))
SHOTS = os.environ.get("SCREENSHOTS", os.path.join(ROOT, "target", "console-screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AXE = os.path.join(HERE, "axe.min.js")
CHINA = timezone(timedelta(hours=8))
DEADLINE_S = 20

ADMIN, MANAGER, OTHER, WORKER = "13900000001", "13900000002", "13900000003", "13900000004"


def deadline(what, probe, seconds=DEADLINE_S):
    """Poll `probe` until it returns something truthy, or fail naming `what`."""
    end = time.monotonic() + seconds
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Server:
    def __init__(self, tmp):
        self.db = f"sqlite:{tmp}/yizhan.db"
        self.log_path = os.path.join(tmp, "server.log")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        env = dict(os.environ, YIZHAN_LOG="info,yizhan::sms=debug")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--no-seed", "--listen", f"127.0.0.1:{self.port}",
             "--database-url", self.db, "--log-format", "json", "--follow-interval", "0.2"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline("the server to be ready", self.ready)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("yizhan serve exited:\n" + open(self.log_path).read()[-3000:])
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def cli(self, *args):
        out = subprocess.run([BIN, *args, "--database-url", self.db],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def api(self, method, path, token=None, body=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")

    def last_code(self, phone):
        """The sign-in code the log sender wrote for `phone`, if any yet (the
        log shows the number masked, 138****5678, never whole)."""
        code = None
        masked = phone[:3] + "****" + phone[7:]
        with open(self.log_path) as f:
            for line in f:
                assert phone not in line, "a whole phone number in the log"
                if '"yizhan::sms"' in line and masked in line:
                    # INFO on a loopback listener: "sign-in code for 139****0002: 123456 …";
                    # DEBUG elsewhere: a "code" field.
                    m = re.search(r'sign-in code for \d{3}\*{4}\d{4}: (\d{6})', line) or re.search(r'"code":"(\d{6})"', line)
                    if m:
                        code = m.group(1)
        return code

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Checks:
    def __init__(self):
        self.pages = []

    def axe(self, page, name):
        """No serious or critical axe-core violations on this page."""
        page.add_script_tag(path=AXE)
        found = page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']}))
                 .violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))""")
        bad = [v for v in found if v["impact"] in ("serious", "critical")]
        self.pages.append((name, len(found), len(bad)))
        assert not bad, f"axe on {name}: " + json.dumps(bad, ensure_ascii=False, indent=1)

    def shot(self, page, name, **kw):
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, f"{name}.png")
        (kw.pop("element", None) or page).screenshot(path=path, **kw)
        return path


def local_input(dt):
    return dt.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M")


def sign_in(page, server, checks, phone, name):
    page.goto(server.url("/console/"))
    assert page.url.endswith("/console/login"), page.url
    checks.axe(page, f"{name}: sign-in")
    checks.shot(page, f"{name}-01-sign-in")
    page.fill("#phone", phone)
    page.click("text=获取验证码")
    page.wait_for_selector("#code")
    code = deadline(f"the code for {phone} in the log", lambda: server.last_code(phone))
    checks.axe(page, f"{name}: code")
    page.fill("#code", code)
    page.click("button:has-text('登录')")
    page.wait_for_url("**/console/sites")


def main():
    tmp = tempfile.mkdtemp(prefix="yizhan-console-")
    server = Server(tmp)
    checks = Checks()
    try:
        run(server, checks)
    except BaseException:
        print("--- server log (tail) ---\n" + open(server.log_path).read()[-4000:], file=sys.stderr)
        raise
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for name, found, bad in checks.pages:
        print(f"axe: {name}: {found} violation(s), {bad} serious or critical")
    print(f"console e2e passed; screenshots in {SHOTS}")


def run(server, checks):
    # Arrange: an admin, a site that is never open, its manager, another
    # editor of it, and a worker; through the command line and the API.
    server.cli("admin", "user", "create", "--phone", ADMIN, "--role", "admin")
    admin_token = server.cli("admin", "token", "--phone", ADMIN)
    status, _, site = server.api("POST", "/v1/sites", admin_token, {
        "ref": "e2e-1", "kind": "outdoor_station", "name": "泉城路户外劳动者服务站点",
        "address": "山东省济南市历下区泉城路1号", "adcode": "370102",
        "lat": 36.6612, "lon": 117.0201, "opening_hours": "Mo-Su off"})
    assert status == 201, site
    sid = site["id"]
    server.cli("admin", "user", "create", "--phone", MANAGER, "--role", "site_manager", "--site", sid)
    server.cli("admin", "user", "create", "--phone", OTHER, "--role", "site_manager", "--site", sid)
    other_token = server.cli("admin", "token", "--phone", OTHER)
    server.cli("admin", "user", "create", "--phone", WORKER, "--role", "worker")
    worker_token = server.cli("admin", "token", "--phone", WORKER)
    nearby = f"/v1/sites/nearby?lat=36.6612&lon=117.0201&k=1"
    assert server.api("GET", nearby)[2]["items"][0]["is_open"] is False

    with sync_playwright() as p:
        # Chinese formats in date and time inputs (24-hour times), as on a
        # manager's phone.
        browser = p.chromium.launch(executable_path=CHROMIUM, env=dict(
            os.environ, LANG="zh_CN.UTF-8", LANGUAGE="zh_CN:zh"), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--lang=zh-CN"])
        # bypass_csp: for axe, injected inline (see below).
        phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                    is_mobile=True, has_touch=True, locale="zh-CN",
                                    accept_downloads=True, bypass_csp=True)
        page = phone.new_page()
        page.set_default_timeout(DEADLINE_S * 1000)

        # Sign in on a phone: the sites in scope, with their state now.
        sign_in(page, server, checks, MANAGER, "manager")
        assert "泉城路户外劳动者服务站点" in page.inner_text("main")
        assert "已关门" in page.inner_text("ul.sites"), page.inner_text("ul.sites")
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the sites page scrolls sideways on a phone ({width} px)"
        checks.axe(page, "manager: sites")
        checks.shot(page, "manager-02-sites", full_page=True)

        # The hours: every day, midnight to midnight, in the weekly editor.
        page.click("text=泉城路户外劳动者服务站点")
        page.wait_for_selector("#hours-form")
        checks.axe(page, "manager: site")
        # "Mo-Su off" is one row of every day without times: keep its days.
        row = page.locator(".week-row").nth(0)
        for day in ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]:
            chip = row.locator(f"label.chip:has-text('{day}')")
            if not chip.locator("input").is_checked():
                chip.click()
        page.fill("[name=row0_open1]", "00:00")
        page.fill("[name=row0_close1]", "00:00")
        # The script asks the server for the preview and shows the string.
        deadline("the editor to write opening_hours",
                 lambda: page.input_value("#opening_hours") == "Mo-Su 00:00-24:00")
        deadline("the preview to show the new hours",
                 lambda: "00:00–24:00" in page.inner_text("#preview"))
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the site page scrolls sideways on a phone ({width} px)"
        page.locator("summary").click()
        hours = page.locator("#hours")
        checks.shot(page, "manager-03-hours-editor", element=hours)
        checks.axe(page, "manager: hours edited")
        page.click("button:has-text('保存营业时间')")
        page.wait_for_selector("text=营业时间已保存")
        item = server.api("GET", nearby)[2]["items"][0]
        assert item["is_open"] is True and item["opening_hours"] == "Mo-Su 00:00-24:00", item
        assert "营业中" in page.inner_text("#state-now")

        # Temporarily closed, with a reason and a reopening time.
        reopen = datetime.now(CHINA).replace(second=0, microsecond=0) + timedelta(days=3)
        page.check("input[name=status][value=temporarily_closed]")
        page.fill("#status_reason", "设备检修")
        page.fill("#reopens_at", local_input(reopen))
        page.click("button:has-text('保存状态')")
        page.wait_for_selector("text=状态已保存")
        assert "暂停开放（设备检修）" in page.inner_text("#state-now")
        item = server.api("GET", nearby)[2]["items"][0]
        assert item["is_open"] is False and item["status"] == "temporarily_closed", item
        checks.shot(page, "manager-04-temporarily-closed", full_page=True)

        # Someone else saves first: the page says who and what, keeps the
        # manager's input, and saving again applies it.
        _, headers, _ = server.api("GET", f"/v1/sites/{sid}")
        st, _, body = server.api("PATCH", f"/v1/sites/{sid}", other_token,
                                 {"phone": "0531-88880000"}, {"If-Match": headers["etag"]})
        assert st == 200, body
        page.locator("label.chip:has-text('微波炉')").click()
        page.click("button:has-text('保存设施与电话')")
        page.wait_for_selector(".conflict")
        conflict = page.inner_text("#amenities .conflict")
        assert "139****0003" in conflict and "0531-88880000" in conflict, conflict
        assert page.is_checked("input[name=amenities][value=microwave]")
        assert page.input_value("#phone") == "0531-88880000"
        checks.axe(page, "manager: conflict")
        checks.shot(page, "manager-05-conflict", full_page=True)
        page.click("button:has-text('保存设施与电话')")
        page.wait_for_selector("text=设施和电话已保存")
        st, _, doc = server.api("GET", f"/v1/sites/{sid}")
        # Both changes hold: the manager's microwave, the other's phone.
        assert "microwave" in doc["amenities"] and doc["phone"] == "0531-88880000", doc

        # History: who and what.
        page.click("text=修改记录")
        page.wait_for_selector("ol.history")
        text = page.inner_text("ol.history")
        assert "营业时间" in text and "139****0002" in text and "139****0003" in text, text
        checks.axe(page, "manager: history")

        # An event at the site, published at once.
        page.goto(server.url(f"/console/sites/{sid}/events"))
        checks.axe(page, "manager: events")
        now = datetime.now(CHINA).replace(second=0, microsecond=0)
        page.fill("#title", "电动车安全驾驶培训")
        page.fill("#description", "骑手安全课，免费。")
        page.fill("#starts_at", local_input(now + timedelta(days=2)))
        page.fill("#ends_at", local_input(now + timedelta(days=2, hours=2)))
        page.fill("#booking_opens_at", local_input(now - timedelta(hours=1)))
        page.fill("#capacity", "20")
        page.click("button:has-text('创建活动')")
        page.wait_for_selector("text=活动已创建")
        eid = page.url.split("/console/events/")[1].split("?")[0]
        checks.axe(page, "manager: event")

        # The worker books it through the API.
        st, _, booking = server.api("POST", f"/v1/events/{eid}/bookings", worker_token, {},
                                    {"Idempotency-Key": "e2e-booking-1"})
        assert st == 201 and booking["status"] == "confirmed", booking

        # Check-in by the code, pasted; a second time says so.
        page.reload()
        assert page.inner_text("dl.counts").count("1") >= 1
        page.fill("#code", booking["checkin_code"])
        page.click("#checkin-form button[type=submit]")
        page.wait_for_selector("text=签到成功")
        assert "已签到" in page.inner_text("table:has(caption:has-text('报名名单'))")
        page.fill("#code", booking["checkin_code"])
        page.click("#checkin-form button[type=submit]")
        page.wait_for_selector("text=无需重复签到")
        page.fill("#code", "not-a-code")
        page.click("#checkin-form button[type=submit]")
        page.wait_for_selector("text=签到码无效")
        checks.axe(page, "manager: check-in refused")
        checks.shot(page, "manager-06-event", full_page=True)

        # The attendees as CSV, the API's own export.
        with page.expect_download() as d:
            page.click("text=导出报名名单（CSV）")
        rows = list(csv.DictReader(io.StringIO(open(d.value.path(), encoding="utf-8").read())))
        assert len(rows) == 1 and rows[0]["booking_id"] == booking["id"], rows
        assert rows[0]["status"] == "checked_in" and rows[0]["checked_in_at"], rows
        assert rows[0]["phone"] == "139****0004", rows

        # A draw event (抽签): its form sits beside the first-come one; a bad
        # priority group is named on the form and marked, the typing kept.
        page.goto(server.url(f"/console/sites/{sid}/events"))
        page.click("a:has-text('新建抽签活动')")
        page.wait_for_selector("#draw_at")
        checks.axe(page, "manager: new draw")
        page.fill("#title", "一线职工疗休养")
        page.fill("#starts_at", local_input(now + timedelta(days=10)))
        page.fill("#ends_at", local_input(now + timedelta(days=12)))
        page.fill("#booking_opens_at", local_input(now - timedelta(hours=1)))
        page.fill("#booking_closes_at", local_input(now + timedelta(days=1)))
        page.fill("#draw_at", local_input(now + timedelta(days=1, hours=1)))
        page.fill("#capacity", "2")
        page.fill("#group0_name", "一线职工")
        page.select_option("#group0_frontline", "true")
        page.fill("#group1_name", "青年女职工")
        page.select_option("#group1_gender", "female")
        page.fill("#group1_min_age", "40")
        page.fill("#group1_max_age", "35")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the draw form scrolls sideways on a phone ({width} px)"
        page.click("button:has-text('创建抽签活动')")
        page.wait_for_selector("text=第2个优先组的最大年龄")
        assert page.get_attribute("#group1_max_age", "aria-invalid") == "true"
        assert page.input_value("#group1_name") == "青年女职工"
        checks.axe(page, "manager: new draw refused")
        checks.shot(page, "manager-07-draw-refused", full_page=True)
        page.fill("#group1_min_age", "")
        page.click("button:has-text('创建抽签活动')")
        page.wait_for_selector("text=活动已创建")
        did = page.url.split("/console/events/")[1].split("?")[0]
        st, _, ev = server.api("GET", f"/v1/events/{did}")
        assert st == 200 and ev["allocation"] == "draw", ev
        assert ev["priority_groups"] == [{"name": "一线职工", "frontline": True},
                                         {"name": "青年女职工", "gender": "female", "max_age": 35}], ev

        # Three apply through the API: one in each group and one in none.
        for i, profile in enumerate([{"frontline": True}, {"gender": "female", "birth_year": 2000},
                                     {"gender": "male", "birth_year": 1970}]):
            phone = f"1370000000{i + 1}"
            server.cli("admin", "user", "create", "--phone", phone, "--role", "worker")
            token = server.cli("admin", "token", "--phone", phone)
            st, _, body = server.api("PUT", "/v1/me/profile", token, profile)
            assert st == 200, body
            st, _, body = server.api("POST", f"/v1/events/{did}/applications", token, None,
                                     {"Idempotency-Key": f"e2e-apply-{i}"})
            assert st == 201 and body["status"] == "applied", body

        # Before the draw: the commitment, and how many applied in each group.
        page.reload()
        rows = {r.locator("th").inner_text(): r.locator("td").nth(1).inner_text()
                for r in page.locator("#draw-groups tbody tr").all()}
        assert rows == {"一线职工": "1", "青年女职工": "1", "未进入优先组": "1"}, rows
        assert page.inner_text("#applied-total") == "3"
        assert page.inner_text("#seed-commitment") == ev["seed_commitment"]
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the draw page scrolls sideways on a phone ({width} px)"
        # The public value, entered before the draw.
        value = "福利彩票双色球第2026141期开奖号码 03 07 12 19 25 31 + 09"
        page.fill("#public_value", value)
        page.click("button:has-text('保存公开随机值')")
        page.wait_for_selector("text=公开随机值已保存")
        assert server.api("GET", f"/v1/events/{did}")[2]["public_value"] == value
        checks.axe(page, "manager: draw event")
        checks.shot(page, "manager-08-draw-event", full_page=True)
        # The record so far, downloaded: the commitment, the value, no entrants yet.
        with page.expect_download() as d:
            page.click("text=下载抽签记录（JSON）")
        assert d.value.suggested_filename == f"draw-{did}.json", d.value.suggested_filename
        record = json.load(open(d.value.path(), encoding="utf-8"))
        assert record["seed_commitment"] == ev["seed_commitment"], record
        assert record["public_value"] == value and record["entrants"] == [], record

        # Signing out ends the session.
        page.click("button:has-text('退出')")
        page.wait_for_url("**/console/login")
        page.goto(server.url(f"/console/sites/{sid}"))
        assert page.url.endswith("/console/login")

        # The admin: search every site, assign a manager, import GeoJSON.
        # bypass_csp: axe is injected as an inline script, which the
        # console's Content-Security-Policy (rightly) refuses.
        desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                   bypass_csp=True)
        page = desk.new_page()
        page.set_default_timeout(DEADLINE_S * 1000)
        sign_in(page, server, checks, ADMIN, "admin")
        page.fill("#q", "泉城路")
        page.click("button:has-text('搜索')")
        page.wait_for_selector("text=泉城路户外劳动者服务站点")
        checks.axe(page, "admin: search")
        page.goto(server.url("/console/admin/managers"))
        checks.axe(page, "admin: managers")
        page.fill("#phone", "13900000005")
        page.fill("#site", sid)
        page.click("button:has-text('分配这些站点')")
        page.wait_for_selector("text=已分配")
        assert "泉城路户外劳动者服务站点" in page.inner_text("main")
        page.goto(server.url("/console/admin/import"))
        checks.axe(page, "admin: import")
        feature = lambda ref, name: {
            "type": "Feature", "geometry": {"type": "Point", "coordinates": [117.03, 36.67]},
            "properties": {"ref": ref, "kind": "union_station", "name": name,
                           "adcode": "370102", "opening_hours": "Mo-Fr 09:00-17:00"}}
        geo = {"type": "FeatureCollection", "features": [
            feature("e2e-2", "历下区工会驿站"), feature("e2e-3", "高新区工会驿站")]}
        page.set_input_files("#file", files=[{"name": "sites.geojson", "mimeType": "application/geo+json",
                                              "buffer": json.dumps(geo, ensure_ascii=False).encode()}])
        page.click("button:has-text('预览变化')")
        page.wait_for_selector("text=新建 2 个")
        assert server.api("GET", "/v1/sites/search?q=" + urllib.parse.quote("工会驿站"))[2]["items"] == []
        checks.axe(page, "admin: import preview")
        checks.shot(page, "admin-01-import-preview", full_page=True)
        page.click("button:has-text('确认导入')")
        page.wait_for_selector("text=导入完成")
        found = server.api("GET", "/v1/sites/search?q=" + urllib.parse.quote("工会驿站"))[2]["items"]
        assert sorted(i["ref"] for i in found) == ["e2e-2", "e2e-3"], found
        # The hours editor at the front desk: rows and their preview side by
        # side (nothing saved), the README's screenshot.
        page.goto(server.url(f"/console/sites/{sid}"))
        rows = page.locator(".week-row")
        for i, days, times in [(0, "一二三四五", ["08:00", "12:00", "14:00", "20:00"]),
                               (1, "六日", ["09:00", "17:00"])]:
            for d in "一二三四五六日":
                chip = rows.nth(i).locator(f"label.chip:has-text('周{d}')")
                if chip.locator("input").is_checked() != (d in days):
                    chip.click()
            for j, t in enumerate(times):
                kind = "open" if j % 2 == 0 else "close"
                page.fill(f"[name=row{i}_{kind}{j // 2 + 1}]", t)
        page.locator("label.check:has-text('法定节假日休息') input").check()
        want = "Mo-Fr 08:00-12:00,14:00-20:00; Sa,Su 09:00-17:00; PH off"
        deadline("the editor's string", lambda: page.input_value("#opening_hours") == want)
        deadline("the preview", lambda: "14:00–20:00" in page.inner_text("#preview"))
        page.locator("summary").click()
        shot = checks.shot(page, "admin-02-hours-editor", element=page.locator("#hours"))
        if os.environ.get("UPDATE_README_SCREENSHOT") == "1":
            shutil.copy(shot, os.path.join(ROOT, "docs", "console-hours.png"))
        checks.axe(page, "admin: hours editor, wide")
        page.goto(server.url("/console/no-such-page"))
        checks.axe(page, "admin: not found")
        api_reference(browser, server, checks)
        browser.close()


def api_reference(browser, server, checks):
    """The API reference that yizhan serves itself: the vendored Redoc renders
    /openapi.json under the page's own Content-Security-Policy (not bypassed
    here), with nothing fetched from elsewhere."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = ctx.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    errors, elsewhere = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: elsewhere.append(r.url)
            if not r.url.startswith(server.url("/")) and not r.url.startswith(("data:", "blob:")) else None)
    page.goto(server.url("/api/"))
    # An operation's summary and a schema's name, rendered from the document.
    page.wait_for_selector("h1:has-text('yizhan')")
    page.wait_for_selector("text=Apply for a place in a draw", state="attached")
    page.wait_for_selector("text=A draw's public record", state="attached")
    assert not errors, f"the API reference logged errors: {errors}"
    assert not elsewhere, f"the API reference fetched from elsewhere: {elsewhere}"
    checks.shot(page, "api-reference")
    ctx.close()


if __name__ == "__main__":
    main()
