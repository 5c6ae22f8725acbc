"""Datasets the workers can read, registered by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.api.auth import AUTH_ERRORS, TrainKey
from app.api.deps import SessionDep, SettingsDep, ViewerDep
from app.api.errors import error_responses
from app.schemas.registry import Dataset, DatasetList, DatasetRequest
from app.services.datasets import register_dataset
from registry.audit import record_event
from registry.datasets import get_dataset, list_datasets
from registry.versions import NAME_PATTERN

router = APIRouter(prefix="/datasets", tags=["datasets"])


EXAMPLES = {409: ("conflict", "a dataset named 'pneumoniamnist' already exists"),
            404: ("not_found", "dataset 'chexpert' is not registered")}


@router.post("", status_code=201, response_model=Dataset, responses={**AUTH_ERRORS, **error_responses(409, 422, examples=EXAMPLES)})
def register(body: DatasetRequest, session: SessionDep, settings: SettingsDep, response: Response,
             caller: TrainKey, viewer: ViewerDep) -> Dataset:
    """Register a dataset under a data root."""
    record = register_dataset(session, name=body.name, kind=body.kind, path=body.path, options=body.options,
                              description=body.description, data_roots=settings.data_roots)
    record_event(session, actor=caller.name, action="dataset.registered", target=f"/datasets/{record.name}",
                 details={"kind": record.kind, "location": record.location})
    response.headers["Location"] = f"/datasets/{record.name}"
    return Dataset.of(record, viewer)


@router.get("", response_model=DatasetList)
def list_registered(session: SessionDep, viewer: ViewerDep) -> DatasetList:
    """List the registered datasets."""
    return DatasetList(items=[Dataset.of(d, viewer) for d in list_datasets(session)])


@router.get("/{name}", response_model=Dataset, responses=error_responses(404, 422, examples=EXAMPLES))
def show(name: Annotated[str, Path(pattern=f"^{NAME_PATTERN}$", examples=["pneumoniamnist"])], session: SessionDep,
         viewer: ViewerDep) -> Dataset:
    """Show a registered dataset."""
    return Dataset.of(get_dataset(session, name=name), viewer)
