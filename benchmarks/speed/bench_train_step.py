"""Training-step throughput: jaxir's engine vs an equivalent PyTorch + transformers step.

Both systems train all-MiniLM-L6-v2 (real weights) as a cross-encoder on the same batch:
``Q`` queries x ``N`` (query, doc) pairs of ``L`` tokens (random ids in [1000, 30000), full
attention masks, token types 0 on the first quarter, 1 after), one linear score head on [CLS]:

    s_qn  = w . BERT(pair_qn)[CLS] + b                                  [Q, N]
    loss  = mean_q -log softmax(s_q)[0]                                 (column 0 = positive)
    step  = AdamW(lr 2e-5, b 0.9/0.999, eps 1e-8, wd 0.01 on matrices only) after clipping the
            global grad norm to 2.0, constant learning rate

jaxir: ``CrossEncoderModel.loss_fn`` through ``make_train_step`` (jitted, donated state) with the
optimizer from ``make_optimizer``; torch: ``BertModel`` + ``Linear(384, 1)``, ``torch.optim.AdamW``
with the same groups and ``clip_grad_norm_``, dropout off (jaxir's encoder has none). The head is
copied from jaxir to torch, so the first-step losses must agree (fp32: within 1e-6 here). Warm-up steps
(compile) come first, then timed rounds of ``--steps`` steps alternate between the systems.

    python -m benchmarks.speed.bench_train_step [--queries 2 --docs 8 --length 192 --steps 2 --rounds 3]
    python -m benchmarks.speed.bench_train_step --bf16     # jaxir bf16 compute, torch bf16 autocast
    python -m benchmarks.speed.bench_train_step --torch-threads 1   # torch on a busy machine, see below

On a machine that other jobs keep busy, torch's OpenMP threads (one per core) wait on each other
and its step slows far more than XLA's (seen here under load 6 on 2 cores: a tiny step took 2.8 s
with 2 torch threads, 0.6 s with 1), so the printed load average says how far to trust the ratio.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

LEARNING_RATE, WEIGHT_DECAY, CLIP_NORM, BETAS, EPS = 2e-5, 0.01, 2.0, (0.9, 0.999), 1e-8


def make_batch(queries: int, docs: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """{"input_ids", "attention_mask", "token_type_ids"}: int32 [Q, N, L]."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 30000, (queries, docs, length)).astype(np.int32)
    ids[..., 0] = 101  # [CLS]
    types = np.zeros_like(ids)
    types[..., length // 4:] = 1  # "document" segment
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": types}


class JaxirStep:
    """The real engine: CrossEncoderModel task -> init_train_state -> make_train_step."""

    def __init__(self, batch: dict[str, np.ndarray], *, bf16: bool):
        import jax
        import jax.numpy as jnp

        from jaxir.methods.cross_encoder import CrossEncoderModel
        from jaxir.methods.cross_encoder_config import CrossEncoderConfig
        from jaxir.models.hf import load_bert
        from jaxir.parallel import make_mesh, shard_batch
        from jaxir.training.optim import OptimConfig, make_optimizer
        from jaxir.training.state import init_train_state
        from jaxir.training.step import make_train_step
        from jaxir.training.task import Task

        q, n, length = batch["input_ids"].shape
        bert_config, bert_params = load_bert(dtype=jnp.bfloat16 if bf16 else jnp.float32)
        model = CrossEncoderModel(CrossEncoderConfig(pair_maxlen=length),  # batch shape: q x n x length
                             bert_config=bert_config, bert_params=bert_params)
        task = Task(init=model.init, loss_fn=model.loss_fn, config=model.description())
        # warmup 0 + end ratio 1 = constant rate, as torch's AdamW without a scheduler.
        optim = OptimConfig(learning_rate=LEARNING_RATE, warmup_steps=0, total_steps=10**6,
                            end_lr_ratio=1.0, weight_decay=WEIGHT_DECAY, b1=BETAS[0], b2=BETAS[1],
                            eps=EPS, clip_norm=CLIP_NORM)
        optimizer, schedule = make_optimizer(optim)
        mesh = make_mesh(devices=jax.devices()[:1])
        self.state, shardings = init_train_state(task, optimizer, jax.random.PRNGKey(0), batch,
                                                 mesh)
        self.step_fn = make_train_step(task, optimizer, schedule, mesh, shardings,
                                       compute_dtype="bfloat16" if bf16 else "float32")
        self.batch = shard_batch(batch, mesh)  # on device once: no host->device copy per step

    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """Score head (kernel [H, 1], bias [1]) as NumPy copies (the state is donated later)."""
        dense = self.state.params["head"]["dense"]
        return np.array(dense["kernel"]), np.array(dense["bias"])

    def run(self, steps: int) -> list[float]:
        """``steps`` train steps; one host sync at the end. Returns the loss of each step."""
        metrics = []
        for _ in range(steps):
            self.state, m = self.step_fn(self.state, self.batch)
            metrics.append(m["loss"])
        return [float(x) for x in metrics]  # blocks on the last step


class TorchStep:
    """BertModel + Linear(H, 1) on [CLS], the same loss and AdamW, dropout off."""

    def __init__(self, batch: dict[str, np.ndarray], head: tuple[np.ndarray, np.ndarray], *,
                 bf16: bool):
        import torch
        from transformers import BertModel

        from jaxir.text.model_dir import default_model_dir

        self.torch, self.bf16 = torch, bf16
        self.shape = batch["input_ids"].shape
        flat = lambda x: torch.from_numpy(x.reshape(-1, x.shape[-1]).astype(np.int64))  # noqa: E731
        self.inputs = {k: flat(v) for k, v in batch.items()}
        self.bert = BertModel.from_pretrained(str(default_model_dir())).eval()  # eval: no dropout
        kernel, bias = head
        self.head = torch.nn.Linear(kernel.shape[0], 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(kernel.T.copy()))
            self.head.bias.copy_(torch.from_numpy(bias.copy()))
        self.params = list(self.bert.parameters()) + list(self.head.parameters())
        decay = [p for p in self.params if p.ndim >= 2]  # as jaxir's decay_mask
        no_decay = [p for p in self.params if p.ndim < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                      {"params": no_decay, "weight_decay": 0.0}],
                                     lr=LEARNING_RATE, betas=BETAS, eps=EPS)
        self.labels = torch.zeros(self.shape[0], dtype=torch.long)

    def one_step(self) -> float:
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            hidden = self.bert(**self.inputs).last_hidden_state
            scores = self.head(hidden[:, 0]).float().reshape(self.shape[0], self.shape[1])
        loss = torch.nn.functional.cross_entropy(scores, self.labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, CLIP_NORM)
        self.opt.step()
        return loss.detach()

    def run(self, steps: int) -> list[float]:
        losses = [self.one_step() for _ in range(steps)]
        return [float(x) for x in losses]


def timed(system, steps: int) -> float:
    t = time.perf_counter()
    system.run(steps)
    return time.perf_counter() - t


def warm_up(systems: dict, steps: int) -> None:
    """Untimed first steps (jaxir compiles here); prints each step's loss on both systems."""
    losses = {}
    for name, system in systems.items():
        t = time.perf_counter()
        losses[name] = system.run(steps)
        note = " incl. compile" if name == "jaxir" else ""
        print(f"{name} warm-up, {steps} steps{note}: {time.perf_counter() - t:.1f} s")
    for i, (a, b) in enumerate(zip(losses["jaxir"], losses["torch"])):
        print(f"loss at step {i + 1}: jaxir {a:.6f}  torch {b:.6f}  |diff| {abs(a - b):.2e}")


def report(secs: dict[str, list[float]], pairs: int, length: int) -> None:
    """Median s/step, pairs/s and tokens/s per system, and the ratio jaxir / torch."""
    print(f"{'system':<8}{'s/step':>9}{'pairs/s':>10}{'tokens/s':>11}{'ratio jaxir/torch':>19}")
    med = {name: float(np.median(v)) for name, v in secs.items()}
    for name in secs:
        ratio = f"{med['torch'] / med['jaxir']:.2f}" if name == "jaxir" else ""
        print(f"{name:<8}{med[name]:>9.2f}{pairs / med[name]:>10.2f}"
              f"{pairs * length / med[name]:>11,.0f}{ratio:>19}")
    paired = np.median(np.asarray(secs["torch"]) / np.asarray(secs["jaxir"]))
    print(f"median of per-round ratios (each round's pair ran back to back): {paired:.2f}")
    print("per-round s/step: " + "; ".join(f"{k} " + " ".join(f"{s:.2f}" for s in v)
                                          for k, v in secs.items()))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2, help="queries per step (Q)")
    ap.add_argument("--docs", type=int, default=8, help="pairs per query: 1 positive + N-1 negatives")
    ap.add_argument("--length", type=int, default=192, help="tokens per pair (L)")
    ap.add_argument("--steps", type=int, default=2, help="train steps per timed round")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per system (interleaved)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile)")
    ap.add_argument("--bf16", action="store_true", help="jaxir bf16 compute, torch bf16 autocast")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch.set_num_threads (default: torch's own, one per core)")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    import jax
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    batch = make_batch(args.queries, args.docs, args.length)
    pairs = args.queries * args.docs
    tag = "bf16" if args.bf16 else "fp32"
    print(f"MiniLM-L6 cross-encoder step, {tag}: {args.queries} queries x {args.docs} pairs x "
          f"{args.length} tokens; jax {jax.__version__} ({jax.default_backend()}), torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    t0 = time.perf_counter()
    systems = {"jaxir": JaxirStep(batch, bf16=args.bf16)}
    systems["torch"] = TorchStep(batch, systems["jaxir"].head(), bf16=args.bf16)
    print(f"setup (load weights, init state): {time.perf_counter() - t0:.1f} s")
    warm_up(systems, args.warmup)
    secs = {name: [] for name in systems}
    for _ in range(args.rounds):  # interleaved, so machine drift hits both alike
        for name, system in systems.items():
            secs[name].append(timed(system, args.steps) / args.steps)
    report(secs, pairs, args.length)


if __name__ == "__main__":
    main()
