"""Issue 21, item 2: every path a caller names is held to the data roots.

`POST /datasets` once opened a file outside every root through `options.csv` (nih) or `options.file`
(medmnist) and echoed its first line; its messages told a caller whether a path outside existed; its
options were not validated. Each attack here runs against the real server.
"""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest
from PIL import Image

from tests.security.conftest import SECRET_LINE

pytestmark = [pytest.mark.integration]


def _register(client, kind: str, path: str, **options: object):
    body = {"name": f"d-{uuid.uuid4().hex[:10]}", "kind": kind, "path": path, "options": options}
    # encoded here, ASCII-only: a lone surrogate travels as the escape JSON allows
    return client.post("/datasets", content=json.dumps(body), headers={"Content-Type": "application/json"})


def _names(client) -> set[str]:
    return {d["name"] for d in client.get("/datasets").json()["items"]}


def _refused(r, field: str) -> dict:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json", r.text
    body = r.json()
    assert field in [d["field"] for d in body.get("details", [])], body
    assert SECRET_LINE not in r.text and "second,line" not in r.text
    return body


def _without(body: dict, *given: str) -> str:
    """The message with the caller's own path taken out (it is echoed back)."""
    message = body["message"]
    for text in given:
        message = message.replace(text, "<given>")
    return message


@pytest.mark.parametrize(
    ("kind", "path", "option", "existing", "missing"),
    [
        ("nih", "nih-sample", "csv", "{outside}/secret.csv", "{outside}/no-such.csv"),
        ("medmnist", "tiny", "file", "{outside}/secret.npz", "{outside}/no-such.npz"),
        ("pneumoniamnist", "tiny", "file", "{outside}/secret.npz", "{outside}/no-such.npz"),
        ("nih", "nih-sample", "csv", "../../outside/secret.csv", "../../outside/no-such.csv"),
        ("nih", "nih-sample", "split_dir", "{outside}", "{outside}/no-such"),
        ("medmnist", "tiny", "file", "{root}/escape/secret.npz", "{root}/escape/no-such.npz"),
        ("medmnist", "tiny", "file", "../escape/secret.npz", "../escape/no-such.npz"),
        ("folder", "kermany-sample", "label_authority", "{outside}", "{outside}/no-such"),
        ("folder", "kermany-sample", "label_authority", "../../outside", "../../outside/no-such"),
    ],
)
def test_a_file_option_outside_the_roots_gets_one_answer_whether_it_exists(
        deployment, trainer, kind, path, option, existing, missing):
    before = _names(trainer)
    where = {"outside": deployment.outside, "root": deployment.root}
    bodies = []
    for value in (existing.format(**where), missing.format(**where)):
        bodies.append((_refused(_register(trainer, kind, path, **{option: value}), f"options.{option}"), value))
    (first, a), (second, b) = bodies
    assert _without(first, a) == _without(second, b), (first, second)
    assert first["error"] == second["error"] and first["details"][0]["field"] == second["details"][0]["field"]
    assert _names(trainer) == before


@pytest.mark.parametrize(("existing", "missing"), [("{outside}/secret.npz", "{outside}/no-such.npz"),
                                                   ("escape/secret.npz", "escape/no-such.npz"),
                                                   ("/etc/passwd", "/etc/no-such-file")])
def test_the_dataset_path_outside_the_roots_gets_one_answer_whether_it_exists(deployment, trainer, existing, missing):
    a, b = existing.format(outside=deployment.outside), missing.format(outside=deployment.outside)
    first, second = _refused(_register(trainer, "pneumoniamnist", a), "path"), \
        _refused(_register(trainer, "pneumoniamnist", b), "path")
    assert _without(first, a) == _without(second, b) and "outside the configured data roots" in first["message"]


@pytest.mark.parametrize(
    ("kind", "options", "field", "text"),
    [
        ("pneumoniamnist", {"size": "x"}, "options.size", "valid integer"),
        ("folder", {"colour": "red"}, "options.colour", "Extra inputs are not permitted"),
        ("nih", {"seed": 99999999999999999999}, "options.seed", "less than or equal to 2147483647"),
        ("nih", {"views": "PA"}, "options.views", "not allowed as a Sequence"),
        ("nih", {"fractions": {"train": "lots"}}, "options.fractions.train", "valid number"),
        ("medmnist", {"file": 7}, "options.file", "valid string"),
    ],
)
def test_options_are_validated_against_the_adapter(trainer, kind, options, field, text):
    path = {"nih": "nih-sample", "folder": "kermany-sample"}.get(kind, "tiny/tiny.npz")
    body = _refused(_register(trainer, kind, path, **options), field)
    assert body["error"] == "validation_error" and text in body["message"], body


def test_file_options_inside_the_roots_are_used_and_shown_relative(deployment, trainer, stranger, admin):
    r = _register(trainer, "nih", "nih-sample", csv="Data_Entry_2017_v2020.csv", split="patient")
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    shown = stranger.get(f"/datasets/{name}").json()
    assert shown["location"] == "nih-sample" and shown["options"]["csv"] == "nih-sample/Data_Entry_2017_v2020.csv"
    real = admin.get(f"/datasets/{name}").json()
    assert real["location"] == str((deployment.repo_data / "nih-sample").resolve())
    assert real["options"]["csv"] == str((deployment.repo_data / "nih-sample" / "Data_Entry_2017_v2020.csv").resolve())
    r = _register(trainer, "medmnist", "tiny", file="tiny.npz", labels=["a", "b", "c", "d"])
    assert r.status_code == 201 and r.json()["options"] == {"file": "tiny/tiny.npz", "labels": ["a", "b", "c", "d"]}
    r = _register(trainer, "folder", "kermany-sample", label_authority=".")  # its own labels: nothing moves
    assert r.status_code == 201 and r.json()["options"] == {"label_authority": "kermany-sample"}, r.text


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("x" * 300, "too long"),  # ENAMETOOLONG once reached the file system: a 500
        ("tiny/" + "y" * 256 + ".npz", "too long"),
        ("/".join(["\u00e9" * 120] * 18), "too long"),  # 4,337 bytes in 2,177 characters: over PATH_MAX
        ("loop", "loop of symbolic links"),  # ELOOP
        ("loop/inside.npz", "loop of symbolic links"),
        ("tiny\u0000.npz", "may not hold NUL characters or lone surrogates"),
        ("tiny/\ud800.npz", "may not hold NUL characters or lone surrogates"),  # JSON has it, UTF-8 does not
    ],
)
def test_file_system_errors_are_4xx_json_and_keep_the_connection(trainer, path, why):
    r = _register(trainer, "pneumoniamnist", path)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json", r.text
    assert why in r.text and r.headers.get("connection") != "close"
    assert trainer.get("/health/live").status_code == 200  # the same client goes on


def test_a_long_name_in_a_file_option_is_a_4xx(trainer):
    _refused(_register(trainer, "medmnist", "tiny", file="f" * 300 + ".npz"), "options.file")


def test_csv_rows_naming_files_outside_are_never_read(deployment, trainer):
    folder = deployment.root / "chexpert-attack" / "CheXpert-v1.0-small"
    rows = []
    for i, split in enumerate(["train"] * 6 + ["valid"] * 2):
        image = f"CheXpert-v1.0-small/{split}/patient{i:05d}/study1/view1_frontal.jpg"
        (folder.parent / image).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 100).save(folder.parent / image)
        rows.append({"Path": image, "Sex": "Male", "Age": 50, "Frontal/Lateral": "Frontal", "AP/PA": "PA",
                     "Edema": float(i % 2), "split": split})
    outside_image = deployment.outside / "patient99999" / "study1" / "view1_frontal.jpg"
    outside_image.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), 255).save(outside_image)
    for path in ("CheXpert-v1.0-small/../../../outside/patient99999/study1/view1_frontal.jpg", str(outside_image)):
        rows.append({**rows[0], "Path": path})
    table = pd.DataFrame(rows)
    for split, file in (("train", "train.csv"), ("valid", "valid.csv")):
        table[table["split"] == split].drop(columns="split").to_csv(folder / file, index=False)
    r = _register(trainer, "chexpert", "chexpert-attack", labels=["Edema"], val_fraction=0.34)
    assert r.status_code == 201, r.text
    assert sum(r.json()["splits"].values()) == 8  # the two rows pointing outside are not read
