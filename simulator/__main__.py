"""`python -m simulator`: serve the simulated outside world in the foreground."""

import argparse

import uvicorn

from simulator.config import SimulatorConfig
from simulator.server import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--facilities", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--bad-row-rate", type=float, default=0.0)
    args = parser.parse_args()
    config = SimulatorConfig(seed=args.seed, facilities=args.facilities, interval_s=args.interval_s, bad_row_rate=args.bad_row_rate)
    # The app dates its answers by the simulated clock (server.OriginDate).
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info", date_header=False)


if __name__ == "__main__":
    main()
