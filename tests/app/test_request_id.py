"""Request ids (app/api/request_id.py): echoed when they look like one, made otherwise, on every response
including the limits' refusals; and named in log records written while a request is served."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.request_id import RequestIdFilter, RequestIdMiddleware, accepted

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("sent", [b"abc", b"0f8c-4c1e:req.7_x", b"a" * 128])
def test_an_id_that_looks_like_one_is_kept(sent):
    assert accepted(sent) == sent.decode()


@pytest.mark.parametrize("sent", [None, b"", b"a" * 129, b"two words", b"tab\there", b"new\nline",
                                  "é".encode()])
def test_anything_else_gets_a_new_id(sent):
    assert HEX32.fullmatch(accepted(sent))


@pytest.mark.integration
def test_the_running_api_echoes_or_makes_ids_on_every_response(client: httpx.Client):
    echoed = client.get("/health/live", headers={"X-Request-ID": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    made = client.get("/health/live").headers["x-request-id"]
    assert HEX32.fullmatch(made)
    missing = client.get("/no/such/route", headers={"X-Request-ID": "trace-404"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "trace-404"
    # refused by the body limit before any route runs (the test server's limit is 6 MiB)
    too_big = client.post("/predict", content=b"x" * (7 * 2**20), headers={"X-Request-ID": "trace-413",
                                                                          "content-type": "image/png"})
    assert too_big.status_code == 413 and too_big.headers["x-request-id"] == "trace-413"
    assert len(too_big.headers.get_list("x-request-id")) == 1


def test_log_records_written_while_serving_name_the_request():
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    log = logging.getLogger("tests.request_id")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware)

    @app.get("/")
    def root() -> dict[str, str]:
        log.info("serving")
        return {}

    try:
        with TestClient(app) as test_client:
            assert test_client.get("/", headers={"X-Request-ID": "r-1"}).headers["x-request-id"] == "r-1"
        log.info("outside")
    finally:
        log.removeHandler(handler)
    assert [(r.getMessage(), r.request_id) for r in records] == [("serving", "r-1"), ("outside", "-")]
