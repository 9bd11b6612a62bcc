"""`segserve MODEL`: serve an exported model over HTTP with Ray Serve (Open Inference Protocol).

By default it starts a local Ray instance (the embedded default); with `--address` it deploys
onto an existing Ray cluster (`auto`, or `HOST:PORT`). The model is opened here first, so a
bad model file is one error line before Ray starts. SIGINT or SIGTERM deletes the
application and shuts down what this command started (Serve and a local Ray), within
seconds. See `serving.app` for the endpoints.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from runtime.cli_errors import CONTEXT_SETTINGS, SegkitCommand
from runtime.errors import ArgumentError
from serving.limits import MAX_BODY_MB, MAX_PIXELS, Limits

APP_NAME = "segkit"
READY_TIMEOUT_S = 600
# Ray Serve kills an HTTP proxy that is not ready within 5 s (health check: 10 s). A busy
# small machine misses that while the replicas load their models, and `serve.start` then
# fails; these longer limits apply unless the environment sets its own.
PROXY_TIMEOUTS = {
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "30",
}


@click.command(cls=SegkitCommand, context_settings=CONTEXT_SETTINGS)
@click.argument("model")
@click.option("--name", help="Model name in the URLs [default: the file's stem].")
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", default=8000, type=click.IntRange(1, 65535), help="HTTP port.")
@click.option("--replicas", default=1, type=click.IntRange(min=1), help="Model replicas.")
@click.option("--max-batch", default=8, type=click.IntRange(min=1), help="Requests per batch.")
@click.option(
    "--batch-wait-ms",
    default=10.0,
    type=click.FloatRange(min=0),
    help="How long a batch waits for more requests.",
)
@click.option(
    "--address", help="Ray cluster to deploy onto ('auto' or HOST:PORT) [default: local]."
)
@click.option(
    "--max-body-mb", default=MAX_BODY_MB, type=click.FloatRange(min=0, min_open=True),
    help="Larger request bodies are refused (413).",
)  # fmt: skip
@click.option(
    "--max-pixels", default=MAX_PIXELS, type=click.IntRange(min=1),
    help="Images stating more pixels in their header are refused (413) before decoding.",
)  # fmt: skip
@click.option(
    "--threads", type=click.IntRange(min=1),
    help="Inference threads per replica [default: the cores divided by the replicas].",
)  # fmt: skip
def main(
    model, name, host, port, replicas, max_batch, batch_wait_ms, address, max_body_mb,
    max_pixels, threads,
) -> None:  # fmt: skip
    """Serve MODEL (.onnx, .engine) at http://HOST:PORT/v2/models/NAME and /segment."""
    from runtime import Segmenter
    from serving.app import ServerConfig

    if not model.startswith(("http://", "https://")):
        model = str(Path(model).resolve())
    Segmenter(model).close()  # a bad model is an error here, before Ray starts
    config = ServerConfig(
        model=model,
        name=name or Path(model).stem,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        threads=threads or max(1, (os.cpu_count() or 1) // replicas),
        limits=Limits(int(max_body_mb * 1e6), max_pixels),
    )
    stop = _stop_on_signals()
    started_ray = _start(config, host, port, replicas, address)
    click.echo(
        f"segserve: {config.name} at http://{host}:{port}/v2/models/{config.name} and "
        f"http://{host}:{port}/segment ({replicas} replica(s), batches of up to {max_batch}, "
        f"{batch_wait_ms:g} ms wait); Ctrl-C stops",
        err=True,
    )
    stop.wait()
    _stop(started_ray)
    click.echo("segserve: stopped", err=True)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _start(config, host: str, port: int, replicas: int, address: str | None) -> bool:
    """Start (or join) Ray, start Serve and deploy; True when this process started Ray."""
    for name, value in PROXY_TIMEOUTS.items():  # before Ray starts its processes
        os.environ.setdefault(name, value)
    import ray
    from ray import serve

    from serving.app import build_app

    started = not ray.is_initialized() and address is None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except ConnectionError as err:
        raise ArgumentError("--address", f"no Ray cluster at {address!r} ({err})") from err
    serve.start(http_options={"host": host, "port": port})
    deadline = time.monotonic() + READY_TIMEOUT_S
    serve.run(build_app(config, replicas), name=APP_NAME, route_prefix="/", blocking=False)
    while serve.status().applications[APP_NAME].status != "RUNNING":
        if time.monotonic() > deadline:
            raise ArgumentError(config.model, "the application did not become ready")
        status = serve.status().applications[APP_NAME]
        if status.status == "DEPLOY_FAILED":
            raise ArgumentError(config.model, f"the deployment failed: {status.message}")
        time.sleep(0.5)
    return started


def _stop(started_ray: bool) -> None:
    import ray
    from ray import serve

    try:
        serve.delete(APP_NAME)
        if started_ray:
            serve.shutdown()
    finally:
        if started_ray:
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
