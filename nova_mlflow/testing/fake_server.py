"""A local fake model server speaking both provider routes, for tests and benchmarks.

Routes: OpenAI `POST /v1/chat/completions` (Bearer auth) and Gemini
`POST /{v1,v1beta}/models/{model}:generateContent` (x-goog-api-key). Answers are scripted:
the default script runs the offline baseline detector on the image it receives and writes
the boxes in the frame of the model named in the request, so the real SDKs, the parser and
the frames are all exercised. Faults are injected at fixed rates from a seeded generator:
429 with Retry-After, 500, slow answers past the client timeout, truncated JSON bodies,
dropped connections. Every request is logged (route, model, body hash, status, and the
headers it came with) so tests can prove that nothing was asked twice and see which key, if
any, a client sent where.

Run standalone: python -m nova_mlflow.testing.fake_server --port 8765 --rate-429 0.2
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

GEMINI_ROUTE = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):generateContent$")
OPENAI_ROUTE = "/v1/chat/completions"

Script = Callable[[str, str, str, "bytes | None"], str]  # (route, model, prompt, image) -> text


@dataclass
class FaultPlan:
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_slow: float = 0.0  # answer after `slow_s` (past the client's timeout)
    rate_truncated: float = 0.0
    rate_reset: float = 0.0
    retry_after: str | None = "0"
    latency_s: float = 0.0
    slow_s: float = 3.0
    seed: int = 0


@dataclass
class LoggedRequest:
    route: str
    model: str
    body_sha256: str
    status: int
    fault: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased

    @property
    def auth(self) -> str | None:
        """The credential sent: `Authorization` (OpenAI route) or `x-goog-api-key` (Gemini);
        None when the request carried no such header."""
        if self.route == "gemini":
            return self.headers.get("x-goog-api-key")
        return self.headers.get("authorization")


def guess_task(prompt: str) -> str:
    p = prompt.lower()
    if "clinical history" in p:
        return "diagnosis"
    if "judge" in p and "verdict" in p:
        return "judge"
    if "bounding box" in p or "locate" in p or "bbox" in p:
        return "localization"
    return "captioning"


def fake_judge(prompt: str) -> str:
    """A scripted judge: 'yes' when one side's words contain the other's (not a real judge)."""
    truth = re.search(r"Ground-truth diagnosis:\s*(.+)", prompt)
    pred = re.search(r"Predicted diagnosis:\s*(.+)", prompt)
    if not (truth and pred):
        return "I cannot judge this."
    words = [set(re.findall(r"[a-z0-9]+", m.group(1).lower())) for m in (truth, pred)]
    same = bool(words[0]) and bool(words[1]) and (words[0] <= words[1] or words[1] <= words[0])
    return json.dumps({"verdict": "yes" if same else "no",
                       "reason": "word sets nest" if same else "different words"})


def default_script(route: str, model: str, prompt: str, image: bytes | None) -> str:
    """Plausible answers in each model family's own box frame."""
    task = guess_task(prompt)
    if task == "diagnosis":
        return ("1. Glioblastoma\n2. Brain metastases\n3. Primary CNS lymphoma\n"
                "4. Cerebral abscess\n5. Multiple sclerosis")
    if task == "judge":
        return fake_judge(prompt)
    if task == "captioning":
        return "Axial FLAIR image shows a hyperintense lesion in the right hemisphere."
    if image is None:
        return "no target"
    import numpy as np
    from PIL import Image

    from nova_mlflow.providers.baseline.detector import detect_boxes
    from nova_mlflow.parsing.frames import frame_for, from_pixels
    from nova_mlflow.schemas import Frame
    from nova_mlflow.schemas import Box

    with Image.open(io.BytesIO(image)) as im:
        arr = np.asarray(im.convert("L"))
    h, w = arr.shape
    boxes = [Box(x1=b[0], y1=b[1], x2=b[2], y2=b[3]) for b in detect_boxes(arr)]
    if not boxes:
        return "no target"
    try:
        frame = frame_for(model)
    except ValueError:
        frame = Frame.pixel_xyxy
    vals = [[round(v, 1) for v in from_pixels(b, frame, (w, h), (w, h))] for b in boxes]
    if frame is Frame.gemini_yxyx_1000:
        return "```json\n" + json.dumps([{"box_2d": v, "label": "lesion"} for v in vals]) + "\n```"
    if frame is Frame.qwen25_resized_xyxy:
        return json.dumps([{"bbox_2d": v, "label": "lesion"} for v in vals])
    return json.dumps(vals)


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: when 32-64 clients connect at once some are
    # refused and retried after a backoff, which is the test double's fault, not the tool's
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hung up before its answer was written (a timeout test, a cancelled
        call) is the client's business, not a server error worth a traceback in test output."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


@dataclass
class FakeModelServer:
    plan: FaultPlan = field(default_factory=FaultPlan)
    script: Script = default_script
    api_key: str | None = None  # when set, requests must carry exactly this key
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._rng = random.Random(self.plan.seed)
        #: every fault drawn, counted when drawn ("" = none): a slow answer enters `log` only
        #: once it is sent, which can be after a client that gave up has finished its run
        self.drawn: Counter = Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeModelServer:
        handler = _make_handler(self)
        self._server = _Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    # -- what tests look at ----------------------------------------------------------------
    def answered(self) -> Counter:
        """How many times each distinct request body got a 200 answer."""
        with self._lock:
            return Counter(r.body_sha256 for r in self.log if r.status == 200)

    def count(self, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.log if status is None or r.status == status)

    # -- internals -----------------------------------------------------------------------
    def _draw_fault(self) -> str:
        p = self.plan
        with self._lock:
            x = self._rng.random()
            fault = ""
            for name, rate in (("429", p.rate_429), ("500", p.rate_500), ("slow", p.rate_slow),
                               ("truncated", p.rate_truncated), ("reset", p.rate_reset)):
                if x < rate:
                    fault = name
                    break
                x -= rate
            self.drawn[fault] += 1
        return fault

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.log.append(entry)


def _openai_body(model: str, text: str, prompt_tokens: int) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": prompt_tokens + max(1, len(text) // 4)}}


def _gemini_body(model: str, text: str, prompt_tokens: int) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt_tokens,
                              "candidatesTokenCount": max(1, len(text) // 4),
                              "totalTokenCount": prompt_tokens + max(1, len(text) // 4)},
            "modelVersion": model}


def _b64decode(data: str) -> bytes:
    """Standard or URL-safe base64, padded or not (google-genai sends URL-safe unpadded)."""
    data = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(data + "=" * (-len(data) % 4))


def _openai_inputs(body: dict) -> tuple[str, bytes | None]:
    prompt, image = "", None
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            prompt += content
            continue
        for part in content or []:
            if part.get("type") == "text":
                prompt += part.get("text", "")
            elif part.get("type") == "image_url":
                url = part["image_url"]["url"]
                image = _b64decode(url.split(",", 1)[1])
    return prompt, image


def _gemini_inputs(body: dict) -> tuple[str, bytes | None]:
    prompt, image = "", None
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            if "text" in part:
                prompt += part["text"]
            inline = part.get("inlineData") or part.get("inline_data")
            if inline:
                image = _b64decode(inline["data"])
    return prompt, image


def _make_handler(server: FakeModelServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: http.server writes the headers and the body separately; with Nagle on
        # the body waits for the client's delayed ACK (~40 ms per call on Linux)
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:  # quiet
            return

        def _send(self, status: int, payload: dict, headers: dict | None = None,
                  truncate: bool = False) -> None:
            data = json.dumps(payload).encode()
            if truncate:
                data = data[: max(1, len(data) // 2)]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # health check
            self._send(200, {"status": "ok", "requests": server.count()})

        def _record(self, route: str, model: str, digest: str, status: int,
                    fault: str = "") -> None:
            server._record(LoggedRequest(route, model, digest, status, fault,
                                         {k.lower(): v for k, v in self.headers.items()}))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            digest = hashlib.sha256(raw).hexdigest()
            path = self.path.split("?", 1)[0]
            gem = GEMINI_ROUTE.match(path)
            if path == OPENAI_ROUTE:
                route, key = "openai", (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            elif gem:
                route, key = "gemini", self.headers.get("x-goog-api-key") or ""
            else:
                self._record("unknown", "", digest, 404)
                self._send(404, {"error": {"message": f"no route {path}"}})
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "body is not JSON"}})
                return
            model = body.get("model", "") if route == "openai" else gem.group(2)
            if server.api_key is not None and key != server.api_key:
                self._record(route, model, digest, 401)
                self._send(401, {"error": {"code": 401, "message": "invalid api key",
                                           "status": "UNAUTHENTICATED"}})
                return
            if server.plan.latency_s:
                time.sleep(server.plan.latency_s)
            fault = server._draw_fault()
            if fault == "429":
                self._record(route, model, digest, 429, fault)
                headers = {"Retry-After": server.plan.retry_after} if server.plan.retry_after else {}
                self._send(429, {"error": {"code": 429, "message": "rate limited",
                                           "status": "RESOURCE_EXHAUSTED"}}, headers)
                return
            if fault == "500":
                self._record(route, model, digest, 500, fault)
                self._send(500, {"error": {"code": 500, "message": "internal error",
                                           "status": "INTERNAL"}})
                return
            if fault == "reset":
                self._record(route, model, digest, 0, fault)
                self.close_connection = True
                self.connection.close()
                return
            if fault == "slow":
                time.sleep(server.plan.slow_s)
            prompt, image = (_openai_inputs if route == "openai" else _gemini_inputs)(body)
            text = server.script(route, model, prompt, image)
            tokens = max(1, len(prompt) // 4) + (258 if image else 0)
            payload = (_openai_body if route == "openai" else _gemini_body)(model, text, tokens)
            truncated = fault == "truncated"
            # a truncated body is not a real answer; log it so tests can tell them apart
            self._record(route, model, digest, 200 if not truncated else 299, fault)
            self._send(200, payload, truncate=truncated)

    return Handler


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--rate-429", type=float, default=0.0)
    ap.add_argument("--rate-500", type=float, default=0.0)
    ap.add_argument("--key", default=None)
    a = ap.parse_args()
    srv = FakeModelServer(FaultPlan(rate_429=a.rate_429, rate_500=a.rate_500, latency_s=a.latency),
                          api_key=a.key, port=a.port).start()
    print(f"fake model server on {srv.url} (OpenAI base {srv.openai_base_url})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
