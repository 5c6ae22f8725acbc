import pytest
import torch

from ml.models import create_model
from ml.runtime import build_runtime, choose_runtime, example_inputs, export_onnx, openvino_runtime


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("simple_cnn", num_classes=3).eval()


@pytest.mark.parametrize("name", ["channels_last", "onnxruntime", "eager"])
def test_exact_runtimes_agree_with_eager_for_several_batch_sizes(model, name):
    examples = example_inputs((1, 28, 28), batch_sizes=(1, 4))
    runtime = build_runtime(name, model, examples[0])
    for x in examples:
        with torch.inference_mode():
            ref = torch.sigmoid(model(x))
        out = torch.sigmoid(runtime(x))
        assert out.shape == ref.shape
        assert float((out - ref).abs().max()) < 1e-5


def test_choose_runtime_returns_the_fastest_accepted_and_reports_every_trial(model):
    choice = choose_runtime(model, example_inputs((1, 28, 28)), torch.sigmoid,
                            candidates=("channels_last", "onnxruntime", "int8_dynamic", "nonsense"), repeats=3)
    trials = {t.name: t for t in choice.trials}
    assert set(trials) == {"eager", "channels_last", "onnxruntime", "int8_dynamic", "nonsense"}
    assert trials["eager"].accepted and trials["eager"].max_abs_diff == 0
    assert not trials["nonsense"].accepted and "unknown runtime" in trials["nonsense"].reason
    assert not trials["int8_dynamic"].accepted and "accuracy check" in trials["int8_dynamic"].reason
    accepted = [t for t in choice.trials if t.accepted]
    assert choice.name == min(accepted, key=lambda t: t.median_ms).name
    x = example_inputs((1, 28, 28), batch_sizes=(2,))[0]
    assert torch.allclose(torch.sigmoid(choice.runtime(x)), torch.sigmoid(model(x)), atol=1e-4)


def test_approximate_runtime_needs_the_callers_accuracy_check(model):
    examples = example_inputs((1, 28, 28))
    refused = choose_runtime(model, examples, torch.sigmoid, candidates=("int8_dynamic",), repeats=2,
                             accuracy_check=lambda rt: (False, "AUROC changed in the third decimal"))
    assert refused.name == "eager"
    assert "third decimal" in next(t for t in refused.trials if t.name == "int8_dynamic").reason
    admitted = choose_runtime(model, examples, torch.sigmoid, candidates=("int8_dynamic",), repeats=2,
                              accuracy_check=lambda rt: (True, ""))
    assert any(t.name == "int8_dynamic" and t.accepted for t in admitted.trials)


def test_a_runtime_off_by_more_than_the_tolerance_is_refused(model):
    # No runtime can be closer than a negative tolerance: every candidate but the reference is refused.
    choice = choose_runtime(model, example_inputs((1, 28, 28)), torch.sigmoid,
                            candidates=("channels_last", "onnxruntime"), tolerance=-1.0, repeats=2)
    assert choice.name == "eager"
    for trial in choice.trials[1:]:
        assert not trial.accepted and "differ from eager" in trial.reason


def test_openvino_runs_an_onnx_model_as_eager_does_from_several_threads(model):
    """OpenVINO's CPU plugin on the exported fp32 model: eager's probabilities for each batch size, with an
    infer request per calling thread (they are not thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    examples = example_inputs((1, 28, 28), batch_sizes=(1, 4, 3))
    runtime = openvino_runtime("openvino", export_onnx(model, examples[0]), threads=1)
    with torch.inference_mode():
        expected = [torch.sigmoid(model(x)) for x in examples]
    with ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda x: torch.sigmoid(runtime(x)), examples * 4))
    for out, ref in zip(outs, expected * 4, strict=True):
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert float((out - ref).abs().max()) < 1e-5
