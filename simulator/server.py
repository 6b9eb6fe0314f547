"""The simulator's HTTP server: one Starlette app on loopback for every outside feed.

Routes mimic the real services' formats: a meter head-end (`/v1/facilities`,
`/v1/meters`, `/v1/readings`, `/v1/sim/modes`), Open-Meteo (`/v1/forecast`,
`/v1/archive`), ComEd's price feed (`/api`) plus generic day-ahead prices
(`/v1/prices/day-ahead`), Electricity Maps (`/v3/carbon-intensity/...`), and the
facilities' building-management system (`/v1/bms/dispatches`, DR commands). Faults
(errors, rate limits, slow, cut or malformed bodies) can be injected into any of them
through `/v1/sim/faults`.
"""

import email.utils
import threading
import time
import urllib.request

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator import bms_api, carbon_api, faults, headend_api, prices_api, weather_api
from simulator.config import SimulatorConfig
from simulator.fleet import build_fleet
from simulator.modes import ModeBook
from simulator.params import BadRequest

STARTUP_TIMEOUT_S = 30.0
# Loopback never goes through a proxy, whatever the environment says.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def create_app(config: SimulatorConfig) -> Starlette:
    """The simulator as an ASGI app. `app.state.fleet`, `app.state.modes` (a ModeBook),
    `app.state.faults` (a FaultBook) and `app.state.commands` (the BMS's CommandBook)
    expose the world it serves, for in-process callers."""
    fleet = build_fleet(config.seed, config.facilities, config.interval_s)
    book = ModeBook(config.modes)
    commands = bms_api.CommandBook()
    fault_book = faults.FaultBook(config.faults)

    async def healthz(request: Request):
        return JSONResponse({"status": "ok"})

    async def bad_request(request: Request, exc: BadRequest):
        return JSONResponse(exc.body, status_code=exc.status)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            *headend_api.routes(config, fleet, book, commands),
            *bms_api.routes(fleet, commands),
            *weather_api.routes(config),
            *prices_api.routes(config),
            *carbon_api.routes(config),
            *faults.routes(fault_book),
        ],
        middleware=[Middleware(OriginDate, config=config), Middleware(faults.FaultMiddleware, book=fault_book)],
        exception_handlers={BadRequest: bad_request},
    )
    app.state.fleet = fleet
    app.state.modes = book
    app.state.faults = fault_book
    app.state.commands = commands
    return app


class OriginDate:
    """Dates every answer (`Date`) by the simulator's clock, as a real feed's server
    dates its answers by its own: the platform judges what a delivery can hold as of
    then. Serve the app with uvicorn's own Date header off, or there are two."""

    def __init__(self, app, config: SimulatorConfig):
        self.app, self.config = app, config

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def dated(message):
            if message["type"] == "http.response.start":
                stamp = email.utils.format_datetime(self.config.current_time(), usegmt=True).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", stamp)]}
            await send(message)

        await self.app(scope, receive, dated)


class BackgroundServer:
    """Any ASGI app served by uvicorn in a daemon thread on loopback (port 0 picks a
    free port); `url` is set by start()."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, date_header: bool = True):
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, date_header=date_header)
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # the main thread owns signals
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"uvicorn-{host}:{port}")
        self.host = host
        self.url = ""

    def start(self) -> "BackgroundServer":
        """Start serving; returns once the socket listens (raises if it cannot bind)."""
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.host} (is the port in use?)")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SimulatorServer(BackgroundServer):
    """The simulator on loopback: `SimulatorServer(config).start().url`, or as a
    context manager. start() returns once /healthz answers."""

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0):
        self.config = config
        self.app = create_app(config)
        # The app dates its answers by the simulated clock (OriginDate).
        super().__init__(self.app, host, port, date_header=False)

    def start(self) -> "SimulatorServer":
        super().start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                with _DIRECT.open(f"{self.url}/healthz", timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the simulator at {self.url} does not answer /healthz") from None
            time.sleep(0.01)
