"""Runs: what a job produced, with metric series, checkpoints and downloadable artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.deps import ArtifactsDep, SessionDep, ViewerDep
from app.api.errors import error_responses
from app.schemas.registry import Artifact, Checkpoint, Run, RunList, RunPage, RunSummary, metric_series
from registry.datasets import get_dataset, list_datasets
from registry.records import MAX_INT
from registry.runs import (
    get_artifact,
    get_run,
    list_runs,
    metrics_of_runs,
    run_artifacts,
    run_checkpoints,
    run_metrics,
    versions_of_runs,
)

router = APIRouter(prefix="/runs", tags=["runs"])

RUN_EXAMPLES = {404: ("not_found", "run 7 does not exist")}
ARTIFACT_EXAMPLES = {
    404: ("not_found", "run 7 has no artifact 'roc.png' (artifacts: config.json, metrics.jsonl, report.json)"),
    409: ("integrity_failure", "artifact 'runs/7/report.json' has sha256 5be1c0d2a9e4..., the registry recorded "
          "41ab0c9e7d12...: the file was changed or replaced"),
}
RunId = Annotated[int, Path(ge=1, le=MAX_INT, description="the run's id (a job's `run_id`)", examples=[7])]
ArtifactName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$", examples=["report.json"])]


@router.get("", response_model=RunList, responses=error_responses(422))
def list_all(session: SessionDep, page: Annotated[RunPage, Query()]) -> RunList:
    """List runs, newest first, with their key metrics."""
    runs, total = list_runs(session, model=page.model, dataset=page.dataset, status=page.status,
                            limit=page.limit, offset=page.offset)
    ids = [r.id for r in runs]
    names = {d.id: d.name for d in list_datasets(session)}
    metrics, versions = metrics_of_runs(session, run_ids=ids), versions_of_runs(session, run_ids=ids)
    items = [RunSummary.of(r, names.get(r.dataset_id, "?"), metrics[r.id], versions.get(r.id)) for r in runs]
    return RunList(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{run_id}", response_model=Run, responses=error_responses(404, 422, examples=RUN_EXAMPLES))
def show(run_id: RunId, session: SessionDep, viewer: ViewerDep) -> Run:
    """Show a run with its metric series, checkpoints and artifacts."""
    run = get_run(session, run_id=run_id)
    return Run(
        id=run.id, job_id=run.job_id, model=run.model, dataset=get_dataset(session, dataset_id=run.dataset_id).name,
        status=run.status, device=run.device, config=viewer.value(run.config), best_epoch=run.best_epoch,
        resumed_from_epoch=run.resumed_from_epoch, report=run.report, started_at=run.started_at,
        finished_at=run.finished_at, metrics=metric_series(run_metrics(session, run_id=run.id)),
        checkpoints=[Checkpoint.of(c, viewer) for c in run_checkpoints(session, run_id=run.id)],
        artifacts=[Artifact.of(run.id, a) for a in run_artifacts(session, run_id=run.id)],
    )


@router.get(
    "/{run_id}/artifacts/{name}",
    response_class=Response,
    responses={200: {"description": "the file", "content": {"image/png": {}, "application/json": {},
                                                            "application/x-ndjson": {}}},
               **error_responses(404, 409, 422, examples=ARTIFACT_EXAMPLES)},
)
def download(run_id: RunId, name: ArtifactName, session: SessionDep, artifacts: ArtifactsDep) -> Response:
    """Download a run artifact (a PNG plot or a JSON report)."""
    artifact = get_artifact(session, run_id=run_id, name=name)
    data = artifacts.read_bytes(artifact.uri, sha256=artifact.sha256)
    return Response(content=data, media_type=artifact.media_type)
