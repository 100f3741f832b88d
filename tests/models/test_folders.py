"""A recipe's output folder reads as its model folder, by one rule (`jaxir.models.folders`): the
subfolder named by the method its model.json records, never another model beside it."""
import json

from jaxir.models.folders import model_folder


def _model(folder, method):
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"method": method}))
    return folder


def test_the_method_subfolder_and_never_a_warm_up_model_beside_it(tmp_path):
    out = tmp_path / "run"
    _model(out / "mlm-params", "sparse")  # the sparse recipe's warm-up: same method, another name
    assert model_folder(out) == out and model_folder(out, "sparse") == out  # interrupted run: no model
    _model(out / "sparse", "sparse")
    assert model_folder(out) == out / "sparse" == model_folder(out, "sparse")
    assert model_folder(out, "splade") == out  # another method's name: its loader says what is missing
    assert model_folder(out / "sparse") == out / "sparse"  # a model folder is itself


def test_a_subfolder_named_for_another_method_than_it_records_is_not_taken(tmp_path):
    out = tmp_path / "ce"
    _model(out / "reranker", "cross-encoder")  # the layout before the one rule: refused, not read silently
    assert model_folder(out, "cross-encoder") == out
    _model(out / "cross-encoder", "cross-encoder")
    assert model_folder(out) == out / "cross-encoder"
    assert model_folder(tmp_path / "missing") == tmp_path / "missing"
    _model(out / "mice", "mice")  # two models, both named for their methods: ambiguous without one
    assert model_folder(out) == out and model_folder(out, "mice") == out / "mice"
