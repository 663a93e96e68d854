"""A small client that drives a Gradio app the way its web page does, over HTTP.

``gradio_client`` refuses private handlers (``api_visibility="private"``); a browser does
not: it reads ``/config``, posts ``/gradio_api/queue/join`` with a ``fn_index`` and reads
the result from ``/gradio_api/queue/data`` (server-sent events), then follows the
``.then``/``.success`` chain itself. :class:`PageClient` does the same, keeps component
values and properties like the page, and records every byte it receives in
:attr:`PageClient.transcript`, so a test can scan all of it.

Used by the UI tests and by the load benchmarks in ``bench/``; it imports nothing from the
workbench.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


class CallFailed(RuntimeError):
    """A handler finished with an error (``success: false``); ``message`` is what the page shows."""

    def __init__(self, message: str | None, fn_index: int):
        super().__init__(message or "(no message)")
        self.message = message or ""
        self.fn_index = fn_index


@dataclass
class Result:
    fn_index: int
    data: list
    seconds: float  # from join to completion
    raw: dict = field(repr=False, default_factory=dict)


class PageClient:
    """One browser tab: a login (optional), a session hash and the page's component values."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None, *, timeout: float = 60.0, record: bool = True):
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=True)
        self.record = record
        self.transcript: list[tuple[str, str]] = []  # (what, text received)
        if auth is not None:
            self.login(*auth)
        self.reload()

    # ------------------------------------------------------------------ plumbing

    def _keep(self, what: str, text: str) -> None:
        if self.record:
            self.transcript.append((what, text))

    def login(self, user: str, password: str) -> None:
        r = self.http.post("/login", data={"username": user, "password": password})
        self._keep("POST /login", r.text)
        if r.status_code != 200:
            raise PermissionError(f"login as {user!r} refused ({r.status_code}): {r.text[:200]}")

    def reload(self) -> None:
        """Like reloading the page: fresh config, values and session (server state is lost)."""
        page = self.http.get("/")
        self._keep("GET /", page.text)
        r = self.http.get("/config")
        self._keep("GET /config", r.text)
        r.raise_for_status()
        self.config = r.json()
        self.session_hash = secrets.token_hex(6)
        self.components = {c["id"]: c for c in self.config["components"]}
        self.values: dict[int, Any] = {i: c.get("props", {}).get("value") for i, c in self.components.items()}
        self.props: dict[int, dict] = {i: dict(c.get("props", {})) for i, c in self.components.items()}
        self.deps = {d["id"]: d for d in self.config["dependencies"]}

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ lookup

    def find(self, elem_id: str | None = None, *, label: str | None = None, kind: str | None = None) -> int:
        """Component id by ``elem_id``, or by label (and type)."""
        for i, c in self.components.items():
            p = c.get("props", {})
            if elem_id is not None and p.get("elem_id") == elem_id:
                return i
            if label is not None and p.get("label") == label and (kind is None or c.get("type") == kind):
                return i
            if label is not None and kind == "button" and c.get("type") == "button" and p.get("value") == label:
                return i
        raise KeyError(f"no component with elem_id={elem_id!r} label={label!r} type={kind!r}")

    def deps_for(self, target: int, event: str) -> list[dict]:
        return [d for d in self.deps.values() if [target, event] in [list(t) for t in d["targets"]]]

    def load_deps(self) -> list[dict]:
        return [d for d in self.deps.values() if any(t[1] == "load" for t in d["targets"])]

    # ------------------------------------------------------------------ calling

    def call(self, fn_index: int, data: list, *, trigger_id: int | None = None) -> Result:
        """Run handler ``fn_index`` with raw ``data`` and wait for the result (no value bookkeeping).

        Queued handlers join the queue and stream the result; others (``queue=False``)
        answer one POST to ``/gradio_api/run/predict``, as the page does.
        """
        t0 = time.perf_counter()
        body = {
            "data": data,
            "event_data": None,
            "fn_index": fn_index,
            "trigger_id": trigger_id,
            "session_hash": self.session_hash,
        }
        if self.deps.get(fn_index, {}).get("queue") is False:
            r = self.http.post("/gradio_api/run/predict", json=body)
            self._keep(f"predict {fn_index}", r.text)
            out = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            if r.status_code != 200:
                raise CallFailed(out.get("error") or f"HTTP {r.status_code}: {r.text[:300]}", fn_index)
            return Result(fn_index, out["data"], time.perf_counter() - t0, out)
        r = self.http.post("/gradio_api/queue/join", json=body)
        self._keep(f"join {fn_index}", r.text)
        if r.status_code != 200:
            raise CallFailed(f"join refused ({r.status_code}): {r.text[:300]}", fn_index)
        event_id = r.json()["event_id"]
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                self._keep(f"sse {fn_index}", line)
                msg = json.loads(line[5:])
                if msg.get("event_id") != event_id:
                    continue
                if msg.get("msg") == "process_completed":
                    seconds = time.perf_counter() - t0
                    if not msg.get("success"):
                        out = msg.get("output") or {}
                        raise CallFailed(out.get("error") or msg.get("title"), fn_index)
                    return Result(fn_index, msg["output"]["data"], seconds, msg)
        raise CallFailed("the event stream ended without a result", fn_index)

    def run_dep(self, dep: dict, *, trigger_id: int | None = None, follow: bool = True) -> list[Result]:
        """Run one dependency with the page's current input values, apply its outputs, follow its chain."""
        data = [None if self.components[i]["type"] == "state" else self.values.get(i) for i in dep["inputs"]]
        results: list[Result] = []
        ok = True
        try:
            res = self.call(dep["id"], data, trigger_id=trigger_id)
            self._apply(dep["outputs"], res.data)
            results.append(res)
        except CallFailed:
            ok = False
            if not follow:
                raise
            chained_failure = [
                d
                for d in self.deps.values()
                if d.get("trigger_after") == dep["id"] and d.get("trigger_only_on_failure")
            ]
            for d in chained_failure:
                results += self.run_dep(d)
            raise
        if follow:
            for d in self.deps.values():
                if d.get("trigger_after") != dep["id"] or not d.get("backend_fn"):
                    continue
                if d.get("trigger_only_on_failure") or (d.get("trigger_only_on_success") and not ok):
                    continue
                results += self.run_dep(d)
        return results

    def trigger(self, target: int | str, event: str = "click") -> list[Result]:
        """Fire ``event`` on a component (id or elem_id) like the page would."""
        cid = self.find(target) if isinstance(target, str) else target
        deps = [d for d in self.deps_for(cid, event) if d.get("backend_fn")]
        if not deps:
            raise KeyError(f"no handler for {event} on component {target!r}")
        out: list[Result] = []
        for d in deps:
            out += self.run_dep(d, trigger_id=cid)
        return out

    def page_load(self) -> list[Result]:
        """Run the page's load events. Like a page, carry on past one that fails (see ``load_errors``)."""
        out: list[Result] = []
        self.load_errors: list[CallFailed] = []
        for d in self.load_deps():
            if d.get("backend_fn"):
                try:
                    out += self.run_dep(d)
                except CallFailed as e:
                    self.load_errors.append(e)
        return out

    def set(self, target: int | str, value: Any) -> None:
        cid = self.find(target) if isinstance(target, str) else target
        self.values[cid] = value

    def _apply(self, outputs: list[int], data: list) -> None:
        for cid, v in zip(outputs, data, strict=False):
            if self.components.get(cid, {}).get("type") == "state":
                continue
            if isinstance(v, dict) and v.get("__type__") == "update":
                for k, val in v.items():
                    if k == "__type__":
                        continue
                    if k == "value":
                        self.values[cid] = val
                    else:
                        self.props[cid][k] = val
            else:
                self.values[cid] = v

    def fetch(self, url: str) -> bytes:
        """GET a file URL the page received (recorded under its URL)."""
        try:
            r = self.http.get(url)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            # a kept-alive connection the server closed as idle just as it was reused (uvicorn
            # drops idle ones after 5 s): a GET is idempotent, so retry once, as browsers do
            r = self.http.get(url)
        self._keep(f"GET {url}", "")
        r.raise_for_status()
        return r.content
