"""Serving on a CUDA device: the plan (device, batching, runtime candidates) a setting gives, and the GPU
runtimes listed as skipped, each with its reason, where there is no CUDA; on a GPU, the trial runs them."""

from __future__ import annotations

import pytest
import torch

from app.serving.device import ServeDeviceUnavailable, serving_plan
from app.settings import AppSettings
from ml.data.base import Task
from ml.evaluation.metrics import probabilities
from ml.gpu_runtimes import GPU_RUNTIMES, gpu_runtime_status
from ml.models import create_model
from ml.runtime import choose_runtime, example_inputs

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_the_cpu_plan_is_unchanged_by_default():
    plan = serving_plan(AppSettings())
    s = AppSettings()
    assert plan.device.type == "cpu" and not plan.cuda
    assert (plan.batch_max_size, plan.batch_max_wait_ms) == (s.batch_max_size, s.batch_max_wait_ms)
    assert plan.candidates == s.runtime_candidates and plan.skipped == {}


@no_cuda
def test_auto_serves_on_the_cpu_without_a_gpu_and_cuda_is_refused():
    assert serving_plan(AppSettings(serve_device="auto")).device.type == "cpu"
    with pytest.raises(ServeDeviceUnavailable, match="no CUDA device"):
        serving_plan(AppSettings(serve_device="cuda"))


@no_cuda
def test_gpu_runtimes_are_skipped_with_their_reason_without_cuda():
    assert set(gpu_runtime_status("cuda").values()) == {"no CUDA device is available"}
    assert all("not a CUDA device" in why for why in gpu_runtime_status("cpu").values())
    plan = serving_plan(AppSettings(runtime_candidates=["channels_last", "cuda_graphs", "cuda_amp", "bogus"]))
    assert plan.candidates == ["channels_last"]
    assert set(plan.skipped) == {"cuda_graphs", "cuda_amp", "bogus"} and plan.skipped["bogus"] == "unknown runtime"
    assert "not a CUDA device" in plan.skipped["cuda_graphs"]


def _trial(device: str, candidates: list[str]):
    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=3).to(device).eval()
    examples = [x.to(device) for x in example_inputs((1, 28, 28))]
    return choose_runtime(model, examples, lambda logits: probabilities(logits, Task.MULTILABEL),
                          candidates=candidates, repeats=2)


def test_a_gpu_candidate_that_cannot_run_is_refused_with_its_reason_and_eager_serves():
    choice = _trial("cpu", ["cuda_graphs", "cuda_amp", "onnxruntime_tensorrt", "channels_last"])
    trials = {t.name: t for t in choice.trials}
    assert set(trials) == {"eager", "cuda_graphs", "cuda_amp", "onnxruntime_tensorrt", "channels_last"}
    for name in ("cuda_graphs", "cuda_amp", "onnxruntime_tensorrt"):
        assert not trials[name].accepted and "RuntimeUnavailable" in trials[name].reason
    assert trials["channels_last"].accepted and choice.name in ("eager", "channels_last")


@cuda
def test_on_a_gpu_the_exact_runtimes_agree_with_eager_and_amp_needs_the_accuracy_check():
    choice = _trial("cuda", ["channels_last", "cuda_graphs", "cuda_amp"])
    trials = {t.name: t for t in choice.trials}
    assert trials["cuda_graphs"].accepted and trials["cuda_graphs"].max_abs_diff <= 1e-4
    assert not trials["cuda_amp"].accepted and trials["cuda_amp"].reason == "no accuracy check given"
    plan = serving_plan(AppSettings(serve_device="cuda"))
    assert plan.cuda and plan.batch_max_size == AppSettings().gpu_batch_max_size
    assert set(plan.candidates) | set(plan.skipped) == set(AppSettings().gpu_runtime_candidates)
    assert set(GPU_RUNTIMES) >= {n for n in plan.candidates if n != "channels_last"}
    assert "cuda_amp" not in AppSettings().gpu_runtime_candidates  # served through an admitted bf16 variant


def _gpu_marked_model():
    """A loaded model that says it serves on CUDA (its weights stay on the CPU: only the path is checked)."""
    from ml.checkpoint import build_checkpoint
    from ml.inference import LoadedModel
    from ml.transforms import resolve_data_config

    model = create_model("simple_cnn", num_classes=1)
    loaded = LoadedModel.from_checkpoint(build_checkpoint(model, model_kwargs={}, labels=["Pneumonia"], task="binary",
                                                          data_config=resolve_data_config(model.cfg)))
    loaded.device = torch.device("cuda")
    return loaded


@no_cuda
def test_on_a_gpu_server_an_admitted_bf16_variant_is_cuda_autocast_and_int8_is_refused():
    from app.serving.reduced import Variant
    from ml.gpu_runtimes import RuntimeUnavailable

    loaded = _gpu_marked_model()
    with pytest.raises(RuntimeUnavailable, match="no CUDA device"):  # it went for CUDA autocast, not the CPU's
        Variant("bf16", None, {}).build(loaded, None)
    for name in ("int8_static", "int8_openvino"):
        with pytest.raises(ValueError, match=f"variant {name} runs on the CPU, not on a GPU server"):
            Variant(name, b"onnx", {}).build(loaded, None)


@cuda
def test_on_a_gpu_an_admitted_bf16_variant_runs_under_cuda_autocast():
    from app.serving.reduced import Variant

    loaded = _gpu_marked_model()
    loaded.model.cuda()
    runtime = Variant("bf16", None, {}).build(loaded, None)
    x = torch.randn(2, *((1, 28, 28) if loaded.model.cfg.in_chans == 1 else (3, 28, 28)), device="cuda")
    assert runtime.name == "bf16" and runtime(x).dtype == torch.float32 and runtime(x).is_cuda
