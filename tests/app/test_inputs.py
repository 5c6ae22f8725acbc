"""Every file of the input corpus through `POST /predict` on the real server: the status and message each
must get, no 5xx, and the server's memory stays bounded while it refuses bombs and broken files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.app.inputs.corpus import Case, build, dicom, radiograph, twelve_bit
from tests.app.live_server import Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def corpus(samples_dir: Path) -> list[Case]:
    return build(samples_dir)


def _send(client: httpx.Client, case: Case) -> httpx.Response:
    part = (case.filename, case.data, case.content_type) if case.content_type else (case.filename, case.data)
    return client.post("/predict", files=[("file", part)])


def _mismatch(case: Case, response: httpx.Response) -> str | None:
    """What is wrong with the answer to `case`, or None."""
    if response.status_code != case.status:
        return f"{case.id}: {response.status_code} {response.text[:200]} (expected {case.status})"
    body = response.json()
    if case.status == 200:
        if not 0 <= body["probabilities"]["Pneumonia"] <= 1:
            return f"{case.id}: probability out of range: {body['probabilities']}"
        if case.size is not None and (body["width"], body["height"]) != case.size:
            return f"{case.id}: size {body['width']}x{body['height']}, expected {case.size}"
        return None
    if body.get("error") != case.error or case.message not in body.get("message", ""):
        return f"{case.id}: {body} (expected error {case.error!r} with {case.message!r})"
    return None


def test_the_corpus_gets_its_answers_and_memory_stays_bounded(
    client: httpx.Client, server: Server, corpus: list[Case]
) -> None:
    assert len(corpus) >= 25 and sum(c.status != 200 for c in corpus) >= 20
    client.post("/predict", files=[("file", ("warm.png", corpus[0].data, "image/png"))])
    rss_start = server.rss_bytes()
    problems = [m for case in corpus if (m := _mismatch(case, _send(client, case)))]
    assert not problems, "\n".join(problems)
    rss_first = server.rss_bytes()
    for case in corpus:  # a second pass: nothing a refused file left behind may accumulate
        assert _send(client, case).status_code == case.status, case.id
    rss_second = server.rss_bytes()
    assert rss_first - rss_start < 250 * 2**20, (rss_start, rss_first)  # a decoded bomb alone would be 1.6 GB
    assert rss_second - rss_first < 40 * 2**20, (rss_first, rss_second)
    assert client.get("/health/live").status_code == 200
    assert "Traceback" not in server.log_tail(200_000)


def test_dicom_monochrome1_reads_as_the_same_image_as_monochrome2(
    client: httpx.Client, samples_dir: Path
) -> None:
    values = twelve_bit(radiograph(samples_dir))

    def probability(data: bytes) -> float:
        response = client.post("/predict", files=[("file", ("x.dcm", data, "application/dicom"))])
        assert response.status_code == 200, response.text
        return response.json()["probabilities"]["Pneumonia"]

    mono2 = probability(dicom(values))
    assert probability(dicom(4095 - values, photometric="MONOCHROME1")) == pytest.approx(mono2, abs=1e-6)
    # the inversion matters: the same stored values read as MONOCHROME2 are a different image
    assert abs(probability(dicom(4095 - values)) - mono2) > 1e-3


def _chunked_multipart(size: int):
    yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
    yield b"Content-Type: image/png\r\n\r\n"
    for _ in range(size // 2**16):
        yield b"\x00" * 2**16
    yield b"\r\n--b--\r\n"


REQUEST_CASES = [
    # (id, request keyword arguments, status, error code, message fragment)
    ("json-body", {"json": {"file": "x"}}, 415, "unsupported_content_type", "multipart/form-data"),
    ("no-body", {}, 415, "unsupported_content_type", "missing"),
    (
        "form-without-file",
        {"files": [("image", ("a.png", b"x", "image/png"))]},
        422,
        "validation_error",
        "file",
    ),
    (
        "unknown-model",
        {"params": {"model": "no-such-model"}},
        404,
        "not_found",
        "no model named 'no-such-model'",
    ),
    ("unknown-version", {"params": {"model": "pneumonia:999"}}, 404, "not_found", "pneumonia:999"),
    ("unknown-alias", {"params": {"model": "pneumonia@nightly"}}, 404, "not_found", "pneumonia@nightly"),
    ("malformed-model", {"params": {"model": "bad name!"}}, 422, "invalid_model_reference", "name@alias"),
    (
        "too-many-files",
        {"files": [("file", (f"{i}.png", b"x", "image/png")) for i in range(5)]},
        400,
        "bad_request",
        "Too many files",
    ),
    (
        "body-over-limit",
        {"files": [("file", ("a.png", b"\x89PNG" + b"\x00" * (7 * 2**20), "image/png"))]},
        413,
        "too_large",
        "request body is larger than the limit of 6,291,456 bytes",
    ),
    (
        "chunked-body-over-limit",
        {
            "content": _chunked_multipart(7 * 2**20),
            "headers": {"content-type": "multipart/form-data; boundary=b"},
        },
        413,
        "too_large",
        "request body is larger than the limit of 6,291,456 bytes",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "error", "message"),
    [c[1:] for c in REQUEST_CASES],
    ids=[c[0] for c in REQUEST_CASES],
)
def test_bad_requests_get_a_json_error_that_says_what_is_wrong(
    client: httpx.Client, samples_dir: Path, kwargs: dict, status: int, error: str, message: str
) -> None:
    if "params" in kwargs:  # a good file, so that only the model is wrong
        kwargs = {
            **kwargs,
            "files": [("file", ("x.png", (samples_dir / "nih_cxr_1024.png").read_bytes(), "image/png"))],
        }
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and message in body["message"], body
    assert client.get("/health/live").status_code == 200
