"""The simulator's HTTP face: every node's /metrics, the ground truth, faults and Slurm's verbs.

    GET    /nodes/<node>/metrics        the node's exposition (what its exporter would serve)
    GET    /fabric/metrics              the fabric collector over the simulated fat-tree (job clusterwatch-fabric)
    GET    /api/fleet                   ground truth: nodes, jobs, faults
    GET    /api/faults                  every fault injected so far
    POST   /api/faults                  inject one: {"kind": "xid", "node": "gpu-007", "gpu": 3, "xid": 79}
    DELETE /api/faults/<id>             clear a lasting fault
    POST   /api/clock/advance           {"seconds": 600}: move simulated time forward (at most a day)
    GET    /api/file_sd                 Prometheus file_sd targets for the fleet
    GET    /slurm/squeue, /slurm/sinfo  Slurm 22.05-shaped JSON
    POST   /slurm/<tool>                squeue, sinfo, scontrol or scancel run with {"args": [...], "user": "..."}
                                        -> {"returncode", "stdout", "stderr"}: the scheduler adapter's
                                        command face (docs/scheduler.md), the same for the CLI client

A body that is not JSON is a 400; a request whose values the simulation cannot take (a field
missing, out of range, or naming hardware the node does not have) is a 422 whose ``error``
starts with the field: ``{"error": "xid: must be an integer from 1 to 999 ..."}``.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exporter.server import wants_gzip, wants_openmetrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from simulator.fleet import Fleet, NodeUnreachable, ExporterHung
from simulator.validation import RequestError, shown

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20
CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")
FAULT_ID = re.compile(r"[0-9]{1,18}")
HANG_SECONDS = 120.0  # a hung exporter holds the scrape longer than any scrape timeout


class _Handler(BaseHTTPRequestHandler):
    server: "SimulatorHTTPServer"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a kept-alive scraper then waits
    # ~40 ms for the delayed ACK on every response.
    disable_nagle_algorithm = True
    # A client that stops sending (half a request, an idle keep-alive) gives up its thread after this.
    timeout = 60

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s - %s", self.address_string(), format % args)

    # ---- routing ---------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        fleet = self.server.fleet
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "metrics":
            self._node_metrics(parts[1])
        elif path == "/fabric/metrics":
            self._fabric_metrics()
        elif path == "/api/fleet":
            self._json(200, fleet.ground_truth())
        elif path == "/api/faults":
            self._json(200, {"faults": fleet.faults_json()})
        elif path == "/api/file_sd":
            self._json(200, fleet.file_sd(self.server.base_url))
        elif path == "/slurm/squeue":
            self._json(200, fleet.squeue())
        elif path == "/slurm/sinfo":
            self._json(200, fleet.sinfo())
        elif path in ("", "/-/healthy"):
            self._json(200, {"status": "ok", "nodes": len(fleet.node_names())})
        else:
            self._json(404, {"error": f"no such path: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        body = self._body()
        if body is None:
            return
        fleet = self.server.fleet
        try:
            if path == "/api/faults":
                fault = fleet.inject(body)
                self._json(201, {"id": fault.id, "fault": fault.to_json()})
            elif path == "/api/clock/advance":
                self._json(200, {"now": fleet.advance(body.get("seconds") if isinstance(body, dict) else None)})
            elif path.startswith("/slurm/") and path.count("/") == 2:
                args = body.get("args") if isinstance(body, dict) else None
                if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                    raise RequestError("args: must be a list of strings")
                result = fleet.slurm_command(path.rsplit("/", 1)[1], args, str(body.get("user") or "root"))
                if result is None:
                    self._json(404, {"error": f"no such Slurm tool: {path}"})
                else:
                    self._json(200, {"returncode": result.exit_code, "stdout": result.stdout, "stderr": result.stderr})
            else:
                self._json(404, {"error": f"no such path: {path}"})
        except RequestError as exc:
            self._json(422, {"error": str(exc)})

    def do_DELETE(self) -> None:  # noqa: N802
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 3 or parts[:2] != ["api", "faults"] or not FAULT_ID.fullmatch(parts[2]):
            self._json(404, {"error": "DELETE /api/faults/<id>"})
            return
        status, message = self.server.fleet.clear(int(parts[2]))
        self._json(status, {"id": int(parts[2]), "result": message})

    # ---- helpers ---------------------------------------------------------------------------------

    def _node_metrics(self, node: str) -> None:
        try:
            body = self.server.fleet.render_metrics(
                node, wants_openmetrics(self.headers.get("Accept", "")), wants_gzip(self.headers.get("Accept-Encoding", "")))
        except KeyError:
            self._json(404, {"error": f"no such node: {shown(node)}"})
            return
        except NodeUnreachable:
            # A dead node answers nothing at all: drop the connection without a response.
            self.close_connection = True
            self.connection.close()
            return
        except ExporterHung:
            self.server.stopping.wait(HANG_SECONDS)
            self.close_connection = True
            return
        self._exposition(body)

    def _fabric_metrics(self) -> None:
        self._exposition(self.server.fleet.render_fabric_metrics(
            wants_openmetrics(self.headers.get("Accept", "")), wants_gzip(self.headers.get("Accept-Encoding", ""))))

    def _exposition(self, body: bytes) -> None:
        openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
        gzipped = wants_gzip(self.headers.get("Accept-Encoding", ""))
        self.send_response(200)
        self.send_header("Content-Type", OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE_LATEST)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> Any:
        """The request's JSON body, or None once a 400/413 has been sent for it."""
        declared = self.headers.get("Content-Length") or "0"
        if not CONTENT_LENGTH.fullmatch(declared):
            self.close_connection = True  # the rest of the stream cannot be framed
            self._json(400, {"error": f"Content-Length: not a byte count: {shown(declared)}"})
            return None
        length = int(declared)
        if length > MAX_BODY:
            self.close_connection = True
            self._json(413, {"error": f"body too large: {length} bytes (at most {MAX_BODY})"})
            return None
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:  # bad syntax, not UTF-8, nested too deep
            reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)[:200]
            self._json(400, {"error": f"body is not JSON: {reason}"})
            return None

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], fleet: Fleet) -> None:
        super().__init__(address, _Handler)
        self.fleet = fleet
        self.stopping = threading.Event()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="simulator-http", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()
