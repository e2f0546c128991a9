"""A stand-in of a Sky Port gate service (aiohttp, plain http on 127.0.0.1), for the cloud gate tests.

It follows ``shared/skyport-gate-protocol.md``: ``/<kind>/<section>[/<id>]`` paths, inputs as
lower-case headers, an optional ``{"pem_data": ...}`` JSON body on every request (checked when the
stand-in is given one), wrapped lists, both error styles (HTTP error with ``detail``; ``200`` with
``error``, with a failed partition), and asynchronous deletion. Partitions stay ``creating`` for
``creating_delay`` seconds and then are ``succeeded`` with ``master_public_ip`` set to
``master_ip`` (the test sshd's loopback address), so jobs really run over SSH.

It behaves as the real gate does where that differs from what one would guess:

- **Azure** names a partition's resource group ``<partname>-resource-group``: the listing and the
  create answer carry that name, the id is the group's resource path
  (``/subscriptions/<s>/resourceGroups/<partname>-resource-group``, asked for as
  ``partitions//subscriptions/...``), and ``GET partitions/<partname>`` looks the group up.
- The templates call ``.split`` on ``ports``, ``runtime`` and ``containerimage`` (and Azure on
  ``location``): when one of these headers is missing, the POST answers ``{"partition": {}}`` and
  makes nothing.
- **OpenStack** takes the image from ``vmimage`` (not ``osversion``): without it the stack fails.
- ``runtime`` is ``k=v,k=v``; ``ssh_pub_key`` in it is the key cloud-init installs (kept in
  ``_runtime`` of the partition for tests to read).

Failures on demand: ``fail_create`` (``"failed"``: the partition fails after the delay;
``"error200"``: the POST answers 200 with ``error``, a traceback showing every header's value, and
a failed partition; ``"http500"``;
``"no_id"``: the POST answers ``{"partition": {"name": ...}}``, with no id, and makes nothing),
``catalogue_error`` (the same styles for ``GET flavors``), ``lookup_errors`` (that many
``GET partitions/<name or id>`` answer HTTP 500), ``hold_creating`` (never leaves
``creating``) and :meth:`down`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from typing import Any

from aiohttp import web

FLAVORS = [
    {"id": "f-small", "name": "small", "cpus": 2, "gpus": 0, "mem": 4096, "storage": 32, "price": 0.1},
    {"id": "f-large", "name": "large", "cpus": 8, "gpus": 0, "mem": 32768, "storage": 128, "price": 0.8},
    {"id": "f-gpu", "name": "gpu", "cpus": 8, "gpus": 1, "mem": 65536, "storage": 256, "price": 3.2},
]
IMAGES = [
    {"id": "i-ubuntu", "name": "ubuntu-22.04", "extra": {"os": "linux"}},
    {"id": "i-rocky", "name": "rocky-9", "extra": {"os": "linux"}},
]
#: The headers a POST /partitions must carry (else 400).
REQUIRED_CREATE_HEADERS = ("partname", "flavorname", "count", "jobid")
#: Headers the real gate's template code calls ``.split`` on, by kind: without one of them the
#: POST answers ``{"partition": {}}``.
SPLIT_HEADERS = {
    "azure": ("ports", "runtime", "containerimage", "location", "osversion"),
    "openstack": ("ports", "runtime", "containerimage"),
}
AZURE_SUFFIX = "-resource-group"
SUBSCRIPTION = "0000-test-subscription"


class SkyPortGateStandin:
    """A Sky Port gate on ``127.0.0.1:<port>`` run in its own thread; knobs are plain attributes."""

    def __init__(
        self,
        *,
        kinds: tuple[str, ...] = ("azure", "openstack"),
        pem_data: str = "",
        master_ip: str = "127.0.0.1",
        creating_delay: float = 0.3,
        deleting_delay: float = 0.2,
    ) -> None:
        self.kinds = kinds
        self.pem_data = pem_data
        self.master_ip = master_ip
        self.creating_delay = creating_delay
        self.deleting_delay = deleting_delay
        self.fail_create: str | None = None
        self.catalogue_error: str | None = None
        self.hold_creating = False
        #: How many of the next ``GET partitions/<name or id>`` answer HTTP 500.
        self.lookup_errors = 0
        self.lock = threading.Lock()
        #: Partitions by id; each also holds ``_kind``, ``_since``, ``_fail``, ``_headers``.
        self.partitions: dict[str, dict[str, Any]] = {}
        #: How many partitions were made under each name.
        self.creates: Counter[str] = Counter()
        #: Every request: (method, path, {header: value} as sent, lower-case names kept as sent, body).
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- running ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to configure the cloud gate with."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SkyPortGateStandin:
        """Start the loop thread and listen (on a free port the first time, the same port after)."""
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="skyport-standin", daemon=True)
            self._thread.start()
        self._call(self._listen())
        return self

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{kind}/{section}", self._handle)
        app.router.add_route("*", "/{kind}/{section}/{ident:.+}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._runner = runner

    def down(self) -> None:
        """Stop answering (connections are refused); partitions are kept."""
        if self._runner is not None:
            self._call(self._runner.cleanup())
            self._runner = None

    def up(self) -> None:
        """Answer again on the same port."""
        if self._runner is None:
            self.start()

    def stop(self) -> None:
        """Stop listening and end the thread."""
        self.down()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
        self._thread = None
        self._loop = None

    def reset(self) -> None:
        """Back to normal behaviour (knobs off, short delays); the partitions and counters stay."""
        self.fail_create = None
        self.catalogue_error = None
        self.hold_creating = False
        self.lookup_errors = 0
        self.creating_delay = 0.3
        self.deleting_delay = 0.2

    # -- views for tests --------------------------------------------------------------------------

    def public(self, part: dict[str, Any]) -> dict[str, Any]:
        """A partition as the protocol shows it (status brought up to date)."""
        self._advance(part)
        return {k: v for k, v in part.items() if not k.startswith("_")}

    def live_partitions(self) -> list[dict[str, Any]]:
        """Every partition that is not deleted yet (deleting ones included)."""
        with self.lock:
            for part in list(self.partitions.values()):
                self._advance(part)
            return [self.public(p) for p in self.partitions.values()]

    def add_partition(self, name: str, kind: str = "azure", status: str = "succeeded") -> dict[str, Any]:
        """Make a partition behind the client's back (an orphan, or one a crashed server made)."""
        with self.lock:
            return self.public(self._new(kind, name, {"count": "0"}, status=status))

    def wait_empty(self, timeout: float = 10) -> list[dict[str, Any]]:
        """Wait until no partition is left (deletion is asynchronous); return what is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.live_partitions()
            if not left:
                return []
            time.sleep(0.05)
        return self.live_partitions()

    # -- the protocol -----------------------------------------------------------------------------

    def _new(self, kind: str, name: str, headers: dict[str, str], status: str = "creating") -> dict[str, Any]:
        count = int(headers.get("count") or 0)
        if kind == "azure":
            name = base(name) + AZURE_SUFFIX
            ident = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}"
        else:
            ident = str(uuid.uuid4())
        now = time.time()
        runtime = dict(pair.partition("=")[::2] for pair in headers.get("runtime", "").split(",") if pair)
        part = {
            "id": ident,
            "name": name,
            "master_public_ip": None,
            "master_private_ip": None,
            "compute_instances_ips": [],
            "status": status,
            "created": now,
            "updated": now,
            "description": f"{count + 1} VM(s) of {headers.get('flavorname', '?')}",
            "_kind": kind,
            "_since": time.monotonic(),
            "_fail": self.fail_create == "failed",
            "_hold": self.hold_creating,
            "_count": count,
            "_headers": headers,
            "_runtime": runtime,
        }
        if kind == "openstack" and not headers.get("vmimage"):
            part.update(_fail=True, _why=f"image {headers.get('vmimage')} not found (the stack needs vmimage)")
        if status == "succeeded":
            self._up(part)
        self.partitions[ident] = part
        self.creates[base(name)] += 1
        return part

    def _up(self, part: dict[str, Any]) -> None:
        part["status"] = "succeeded"
        part["master_public_ip"] = self.master_ip
        part["master_private_ip"] = "10.0.0.4"
        part["compute_instances_ips"] = [f"10.0.0.{5 + i}" for i in range(part["_count"])]
        part["updated"] = time.time()

    def _advance(self, part: dict[str, Any]) -> None:
        elapsed = time.monotonic() - part["_since"]
        if part["status"] == "creating" and not part["_hold"] and elapsed >= self.creating_delay:
            if part["_fail"]:
                why = part.get("_why") or "quota exceeded (on demand)"
                part.update(status="failed", description=why, updated=time.time())
            else:
                self._up(part)
        elif part["status"] == "deleting" and elapsed >= self.deleting_delay:
            self.partitions.pop(part["id"], None)

    def _find(self, kind: str, ident: str) -> dict[str, Any] | None:
        """``GET partitions/<ident>``: by id; by name as the kind does it (Azure: the group of
        ``<ident>-resource-group``; OpenStack: the stack's name)."""
        for part in list(self.partitions.values()):
            self._advance(part)
        name = ident + AZURE_SUFFIX if kind == "azure" and not ident.startswith("/") else ident
        matches = [p for p in self.partitions.values() if p["_kind"] == kind and p["id"] == ident]
        matches += [p for p in self.partitions.values() if p["_kind"] == kind and p["name"] == name]
        return matches[0] if matches else None

    async def _handle(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        section = request.match_info["section"]
        ident = request.match_info.get("ident")
        raw = await request.text()
        sent = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.raw_headers}
        with self.lock:
            self.requests.append((request.method, request.path, sent, raw))
        if self.pem_data:
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            if not isinstance(body, dict) or body.get("pem_data") != self.pem_data:
                return web.json_response({"detail": "no valid pem_data in the request body"}, status=401)
        if kind not in self.kinds:
            return web.json_response({"detail": f"unknown cloud kind {kind}"}, status=404)
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self.lock:
            if section == "flavors" and request.method == "GET" and ident is None:
                if self.catalogue_error == "error200":
                    return web.json_response({"error": "the cloud API refused the credentials (on demand)"})
                if self.catalogue_error == "http500":
                    return web.json_response({"detail": "the cloud API failed (on demand)"}, status=500)
                return web.json_response({"flavors": FLAVORS})
            if section == "images" and request.method == "GET":
                if ident is None:
                    return web.json_response({"images": IMAGES})
                image = next((i for i in IMAGES if ident in (i["id"], i["name"])), None)
                if image is None:
                    return web.json_response({"detail": f"no image {ident}"}, status=404)
                return web.json_response(image)
            if section != "partitions":
                return web.json_response({"detail": f"no section {section}"}, status=404)
            if request.method == "GET" and ident is None:
                for part in list(self.partitions.values()):
                    self._advance(part)
                parts = [self.public(p) for p in self.partitions.values() if p["_kind"] == kind]
                return web.json_response({"partitions": parts})
            if request.method == "GET":
                if self.lookup_errors > 0:
                    self.lookup_errors -= 1
                    return web.json_response({"detail": "the cloud API failed (on demand)"}, status=500)
                part = self._find(kind, ident or "")
                if part is None:
                    return web.json_response({"detail": "Partition not found"}, status=404)
                shown = self.public(part)
                if kind == "azure":  # the real gate answers with the name it was asked for, no suffix
                    shown["name"] = base(shown["name"])
                return web.json_response(shown)
            if request.method == "POST" and ident is None:
                return self._create(kind, headers)
            if request.method == "DELETE" and ident is not None:
                part = self.partitions.get(ident)
                if part is None or part["_kind"] != kind:
                    return web.json_response({"detail": f"no partition {ident}"}, status=404)
                if part["status"] != "deleting":
                    part.update(status="deleting", _since=time.monotonic(), updated=time.time())
                return web.json_response({"result": "Deletion started"})
        return web.json_response({"detail": "method not allowed"}, status=405)

    def _create(self, kind: str, headers: dict[str, str]) -> web.Response:
        missing = [h for h in REQUIRED_CREATE_HEADERS if h not in headers]
        if missing:
            return web.json_response({"detail": f"missing headers: {', '.join(missing)}"}, status=400)
        if not headers["partname"]:
            return web.json_response({"detail": "empty partname"}, status=400)
        if not any(headers["flavorname"] in (f["name"], f["id"]) for f in FLAVORS):
            return web.json_response({"error": f"unknown flavor {headers['flavorname']}"})
        if self.fail_create == "http500":
            return web.json_response({"detail": "the cloud API failed (on demand)"}, status=500)
        if any(h not in headers for h in SPLIT_HEADERS.get(kind, ())):
            return web.json_response({"partition": {}})  # 'NoneType' object has no attribute 'split'
        if self.fail_create == "no_id":
            return web.json_response({"partition": {"name": headers["partname"], "status": None}})
        part = self._new(kind, headers["partname"], headers)
        if self.fail_create == "error200":
            part.update(status="failed", description="deployment failed (on demand)")
            # As the real gate does, the error is a traceback that may show the call's arguments.
            words = f"the deployment failed (on demand); create_stack({', '.join(headers.values())})"
            return web.json_response({"error": words, "partition": self.public(part)})
        return web.json_response({"partition": self.public(part)})


def base(name: str) -> str:
    """A partition name without the Azure suffix."""
    return name[: -len(AZURE_SUFFIX)] if name.endswith(AZURE_SUFFIX) else name


__all__ = ["AZURE_SUFFIX", "FLAVORS", "IMAGES", "SkyPortGateStandin", "base"]
