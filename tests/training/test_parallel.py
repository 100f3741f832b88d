"""Mesh construction, logical->mesh rules, batch sharding and sharded init on 8 fake CPU devices."""
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxir import parallel
from jaxir.parallel import DATA, EMBED, MLP, MODEL, VOCAB
from jaxir.training.toy import TOY_RULES, toy_init


def test_make_mesh_shapes_and_errors():
    assert jax.device_count() == 8
    mesh = parallel.make_mesh()
    assert mesh.axis_names == (DATA, MODEL) and dict(mesh.shape) == {DATA: 8, MODEL: 1}
    mesh = parallel.make_mesh(data=-1, model=4)
    assert dict(mesh.shape) == {DATA: 2, MODEL: 4}
    one = parallel.make_mesh(devices=jax.devices()[:1])
    assert one.devices.size == 1
    with pytest.raises(ValueError, match="not divisible"):
        parallel.make_mesh(model=3)
    with pytest.raises(ValueError, match="8 devices"):
        parallel.make_mesh(data=2, model=2)


def test_spec_rules_first_match_trailing_dims_and_fallback():
    mesh = parallel.make_mesh(data=2, model=4)
    rules = [(r"embedding$", (VOCAB, EMBED)), (r"kernel$", (EMBED, MLP))]
    assert parallel.spec_for("embed/embedding", (64, 16), mesh, rules) == P(MODEL, None)
    # An optimizer moment of the same param keeps the param's layout.
    assert parallel.spec_for("opt_state/0/mu/embed/embedding", (64, 16), mesh, rules) == \
        P(MODEL, None)
    assert parallel.spec_for("dense/kernel", (16, 8), mesh, rules) == P(None, MODEL)
    assert parallel.spec_for("dense/bias", (8,), mesh, rules) == P()
    with pytest.warns(UserWarning, match="not divisible"):
        assert parallel.spec_for("embed/embedding", (30522, 16), mesh, rules) == P(None, None)
    with pytest.raises(ValueError, match="names 2 axes"):
        parallel.spec_for("x/kernel", (8,), mesh, rules)


def test_init_sharded_places_params_by_rules():
    mesh = parallel.make_mesh(data=2, model=4)
    batch = {"query": np.zeros((4, 6), np.int32)}
    params = parallel.init_sharded(toy_init, jax.random.PRNGKey(0), batch, mesh, TOY_RULES)
    emb = params["embed"]["embedding"]
    assert emb.sharding.spec == P(MODEL, None)
    # Each "model" shard holds a quarter of the vocabulary rows.
    assert {s.data.shape for s in emb.addressable_shards} == {(16, 16)}
    assert params["dense"]["kernel"].sharding.spec == P(None, MODEL)
    ref = toy_init(jax.random.PRNGKey(0), batch)
    np.testing.assert_array_equal(np.asarray(emb), np.asarray(ref["embed"]["embedding"]))


def test_shard_batch_splits_rows_on_data():
    mesh = parallel.make_mesh(data=4, model=2)
    x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    out = parallel.shard_batch({"x": x}, mesh)["x"]
    assert out.shape == (8, 3) and out.sharding.spec == P(DATA)
    assert {s.data.shape for s in out.addressable_shards} == {(2, 3)}
    np.testing.assert_array_equal(np.asarray(out), x)
    with pytest.raises(ValueError, match="divisible"):
        parallel.shard_batch({"x": x[:6]}, mesh)


def test_to_host_and_distributed_noop(monkeypatch):
    for var in ("JAXIR_COORDINATOR_ADDRESS", "JAXIR_NUM_PROCESSES", "JAXIR_PROCESS_ID",
                "JAXIR_DISTRIBUTED"):
        monkeypatch.delenv(var, raising=False)
    assert parallel.maybe_initialize_distributed() is False
    with pytest.raises(ValueError, match="without num_processes"):
        parallel.maybe_initialize_distributed("127.0.0.1:1234")
    mesh = parallel.make_mesh()
    x = jax.device_put(np.float32(2.5), parallel.replicated(mesh))
    assert parallel.to_host(x) == np.float32(2.5)
