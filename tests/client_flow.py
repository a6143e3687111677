"""An app's whole flow through a client generated from openapi.yaml, with no
raw HTTP: what an app team gets from the contract (run by tests/client.rs).

    python3 tests/client_flow.py BASE_URL YIZHAN_BIN DATA_DIR

The generated package (`yizhan_client`, openapi-python-client) must be on
PYTHONPATH. The sign-in code comes from `yizhan admin code` (the development
SMS provider), run in DATA_DIR, where the server keeps ./data/yizhan.db.
Each step checks what it got; the first that does not hold raises.
"""

import csv
import datetime
import io
import subprocess
import sys

from yizhan_client import AuthenticatedClient, Client
from yizhan_client.api.accounts import request_code, sign_in
from yizhan_client.api.events import (
    attendees_csv,
    book,
    booking_ics,
    booking_or_ics,
    cancel,
    create_event,
)
from yizhan_client.api.map_ import viewport
from yizhan_client.api.notifications import inbox
from yizhan_client.api.sites import nearby, site_detail
from yizhan_client.models import (
    Booking,
    BookingStatus,
    CodeSent,
    CreateEventBody,
    Crs,
    EventDoc,
    EventKind,
    InboxResponse,
    Kind,
    NearbyResponse,
    NoticeType,
    Problem,
    RequestCodeBody,
    SignInBody,
    SiteDoc,
    SiteFeatureCollection,
    TokenResponse,
)

BASE, BIN, DATA = sys.argv[1], sys.argv[2], sys.argv[3]
steps = []


def step(name):
    steps.append(name)
    print(f"-- {name}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(f"{steps[-1]}: {what}")


def cli(*args):
    out = subprocess.run(
        [BIN, *args], cwd=DATA, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


anonymous = Client(base_url=BASE, raise_on_unexpected_status=True)


def sign_in_as(phone):
    sent = request_code.sync(client=anonymous, body=RequestCodeBody(phone=phone))
    check(isinstance(sent, CodeSent), f"request_code answered {sent!r}")
    code = cli("admin", "code", "--phone", phone)
    token = sign_in.sync(client=anonymous, body=SignInBody(phone=phone, code=code))
    check(isinstance(token, TokenResponse), f"sign_in answered {token!r}")
    check(token.token_type == "Bearer", token.token_type)
    return token


step("a worker signs in with an SMS code")
token = sign_in_as("13812345678")
check(token.user.role.value == "worker", token.user.role)
worker = AuthenticatedClient(
    base_url=BASE, token=token.token, raise_on_unexpected_status=True
)

step("the nearest outdoor station in GCJ-02")
near = nearby.sync(
    client=anonymous, lat=36.65, lon=117.12, crs=Crs.GCJ02, kind=[Kind.OUTDOOR_STATION], k=3
)
check(isinstance(near, NearbyResponse), f"nearby answered {near!r}")
check(near.crs == Crs.GCJ02, near.crs)
check(len(near.items) == 3, len(near.items))
check(all(i.kind == Kind.OUTDOOR_STATION for i in near.items), "kinds")
distances = [i.distance_m for i in near.items]
check(distances == sorted(distances), f"not nearest first: {distances}")
site_id = near.items[0].id

step("the map's viewport, typed GeoJSON")
box = viewport.sync(client=anonymous, bbox="116.9,36.5,117.3,36.8", crs=Crs.GCJ02, limit=50)
check(isinstance(box, SiteFeatureCollection), f"viewport answered {box!r}")
check(box.type_.value == "FeatureCollection", box.type_)
check(box.metadata.crs == Crs.GCJ02, box.metadata.crs)
check(0 < len(box.features) <= 50, len(box.features))
check(box.metadata.returned == len(box.features), box.metadata.returned)
f = box.features[0]
check(f.type_.value == "Feature" and f.geometry.type_.value == "Point", f.type_)
check(f.id == f.properties.id, (f.id, f.properties.id))
lon, lat = f.geometry.coordinates
check((lon, lat) == (f.properties.lon, f.properties.lat), (lon, lat))
check(116.9 <= lon <= 117.3 and 36.5 <= lat <= 36.8, (lon, lat))

step("site detail, then again with If-None-Match: 304")
first = site_detail.sync_detailed(site_id, client=anonymous, crs=Crs.GCJ02)
check(first.status_code == 200 and isinstance(first.parsed, SiteDoc), first.status_code)
etag = first.headers.get("etag")
check(etag, "no ETag")
again = site_detail.sync_detailed(site_id, client=anonymous, crs=Crs.GCJ02, if_none_match=etag)
check(again.status_code == 304, again.status_code)

step("the operator makes a site manager, who creates an event")
cli("admin", "user", "create", "--phone", "13900000001", "--role", "site_manager", "--site", site_id)
manager = AuthenticatedClient(
    base_url=BASE,
    token=cli("admin", "token", "--phone", "13900000001"),
    raise_on_unexpected_status=True,
)
tz = datetime.timezone(datetime.timedelta(hours=8))
starts = datetime.datetime(2030, 6, 1, 9, 0, tzinfo=tz)
created = create_event.sync_detailed(
    client=manager,
    body=CreateEventBody(
        kind=EventKind.TRAINING,
        title="电动车安全骑行培训",
        site_id=site_id,
        starts_at=starts,
        ends_at=starts + datetime.timedelta(hours=2),
        capacity=20,
        booking_opens_at=datetime.datetime(2026, 1, 1, tzinfo=tz),
    ),
)
check(created.status_code == 201 and isinstance(created.parsed, EventDoc), created.status_code)
event = created.parsed
check(created.headers.get("location", "").endswith(f"/v1/events/{event.id}"), created.headers)
check(event.starts_at == starts, event.starts_at)

step("the worker books with an Idempotency-Key; the retry replays")
booked = book.sync_detailed(event.id, client=worker, idempotency_key="client-flow-1")
check(booked.status_code == 201 and isinstance(booked.parsed, Booking), booked.status_code)
booking = booked.parsed
check(booking.status == BookingStatus.CONFIRMED, booking.status)
check("idempotent-replayed" not in booked.headers, booked.headers)
retry = book.sync_detailed(event.id, client=worker, idempotency_key="client-flow-1")
check(retry.status_code == 201, retry.status_code)
check(retry.headers.get("idempotent-replayed") == "true", retry.headers)
check(retry.parsed.id == booking.id, (retry.parsed.id, booking.id))

step("the booking, and its calendar entry")
got = booking_or_ics.sync(booking.id, client=worker)
check(isinstance(got, Booking) and got.id == booking.id, got)
ics = booking_ics.sync_detailed(booking.id, client=worker)
check(ics.status_code == 200, ics.status_code)
check(ics.headers.get("content-type", "").startswith("text/calendar"), ics.headers)
calendar = ics.parsed
check(isinstance(calendar, str), type(calendar))
check(calendar.startswith("BEGIN:VCALENDAR") and "BEGIN:VEVENT" in calendar, calendar[:80])
check("电动车安全骑行培训" in calendar, calendar)

step("the manager's attendees as CSV")
sheet = attendees_csv.sync_detailed(event.id, client=manager)
check(sheet.status_code == 200, sheet.status_code)
rows = list(csv.DictReader(io.StringIO(sheet.parsed)))
check(len(rows) == 1 and rows[0]["booking_id"] == booking.id, rows)
check(rows[0]["status"] == "confirmed", rows[0])

step("the inbox, paged by its cursor")
page = inbox.sync(client=worker, limit=1)
check(isinstance(page, InboxResponse), f"inbox answered {page!r}")
check(len(page.items) == 1, len(page.items))
check(page.items[0].type_ == NoticeType.BOOKING_CONFIRMED, page.items[0].type_)
# One notice so far: the first page is the last.
check(page.next_cursor is None, page.next_cursor)

step("the worker cancels; the booking says so")
cancelled = cancel.sync(booking.id, client=worker)
check(isinstance(cancelled, Booking), f"cancel answered {cancelled!r}")
check(cancelled.status == BookingStatus.CANCELLED, cancelled.status)

step("a problem an app can branch on, in Chinese when asked")
zh = AuthenticatedClient(
    base_url=BASE,
    token=token.token,
    headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"},
    raise_on_unexpected_status=True,
)
missing = booking_or_ics.sync_detailed("b" + "1" * 12, client=zh)
check(missing.status_code == 404 and isinstance(missing.parsed, Problem), missing.status_code)
check(missing.parsed.type_ == f"{BASE}/problems/not-found", missing.parsed.type_)
check(any("\u4e00" <= c <= "\u9fff" for c in missing.parsed.detail), missing.parsed.detail)

print(f"client flow: {len(steps)} steps passed")
