"""Workers on the cluster a job finds: `run.num_workers: auto`, the line that says what a run
trains on, and the warning when GPUs of the allocation would sit idle.

`auto` means one Ray Train worker per GPU of the cluster (with `use_gpu: false`, one per node),
so a SLURM allocation of 2 nodes x 4 GPUs trains on 8 workers without anyone counting them. The
pure functions take the nodes' resources (`ray.nodes()`' `Resources` of the live nodes), so they
are tested without a cluster; `cluster_nodes()` reads them from the running Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUTO = "auto"


@dataclass(frozen=True)
class WorkerPlan:
    num_workers: int
    line: str
    """What the run trains on, e.g. `training on 8 workers: 4 GPUs on each of 2 nodes`."""
    warning: str | None = None
    """One line when GPUs of the cluster are left idle (or the workers cannot all be placed)."""


def cluster_nodes() -> list[dict[str, float]]:
    """The resources of every live node of the running Ray cluster."""
    import ray

    return [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")


def describe_gpus(nodes: list[dict[str, float]]) -> str:
    """`4 GPUs on each of 2 nodes`, `4 + 2 GPUs on 2 nodes`, `1 GPU on 1 node`, `no GPUs`."""
    counts = [int(n.get("GPU", 0)) for n in nodes if n.get("GPU", 0) >= 1]
    if not counts:
        return "no GPUs"
    if len(counts) == 1:
        return f"{_plural(counts[0], 'GPU')} on 1 node"
    if len(set(counts)) == 1:
        return f"{_plural(counts[0], 'GPU')} on each of {len(counts)} nodes"
    return f"{' + '.join(str(c) for c in counts)} GPUs on {len(counts)} nodes"


def gpu_total(nodes: list[dict[str, float]]) -> int:
    return sum(int(n.get("GPU", 0)) for n in nodes)


def plan_workers(
    num_workers: int | str,
    use_gpu: bool,
    cpus_per_worker: float,
    nodes: list[dict[str, float]],
    verb: str = "training",
) -> WorkerPlan:
    """The workers a run gets on `nodes`: `auto` resolved (one per GPU, or one per node without
    GPUs), and the line that says so. ValueError when `auto` finds nothing to run on."""
    gpus = gpu_total(nodes)
    if num_workers == AUTO:
        if use_gpu:
            if gpus == 0:
                raise ValueError(
                    "run.num_workers=auto trains one worker per GPU, but the Ray cluster has no "
                    "GPUs: set run.use_gpu=false to train on CPU workers, or start Ray on GPU nodes"
                )
            # a node's GPUs are usable as far as its CPUs hold run.cpus_per_worker each
            per_node = [
                min(int(n.get("GPU", 0)), _cpu_slots(n, cpus_per_worker))
                for n in nodes
                if n.get("GPU", 0) >= 1
            ]
            n = sum(per_node)
            if n == 0:
                raise ValueError(
                    f"run.cpus_per_worker={cpus_per_worker:g} is more than any GPU node's CPUs: "
                    "lower it"
                )
            line = f"{verb} on {_plural(n, 'worker')}: {describe_gpus(nodes)}"
            warning = None
            if n < gpus:
                warning = (
                    f"warning: run.cpus_per_worker={cpus_per_worker:g} leaves {gpus - n} of the "
                    f"cluster's {gpus} GPUs without the CPUs for a worker; lower it to use them all"
                )
            return WorkerPlan(n, line, warning)
        usable = [n for n in nodes if _cpu_slots(n, cpus_per_worker) >= 1]
        if not usable:
            raise ValueError(
                f"run.cpus_per_worker={cpus_per_worker:g} is more than any node's CPUs: lower it"
            )
        k = len(usable)
        where = "on 1 node" if k == 1 else f"one on each of {k} nodes"
        line = f"{verb} on {_plural(k, 'CPU worker')}: {where}"
        return WorkerPlan(k, line, idle_without_gpu(gpus))
    n = int(num_workers)
    kind = "GPU" if use_gpu else "CPU"
    line = f"{verb} on {_plural(n, kind + ' worker')} (run.num_workers={n})"
    if use_gpu:
        line += f" of the cluster's {describe_gpus(nodes)}"
        if n < gpus:
            return WorkerPlan(
                n,
                line,
                f"warning: run.num_workers={n} leaves {gpus - n} of the cluster's {gpus} GPUs "
                "idle; set run.num_workers=auto to train on all of them",
            )
        if n > gpus:
            return WorkerPlan(
                n,
                line,
                f"warning: run.num_workers={n} needs {n} GPUs and the cluster has {gpus}: the "
                "run waits for more (an autoscaler) or fails to start; set run.num_workers=auto",
            )
        return WorkerPlan(n, line)
    return WorkerPlan(n, line, idle_without_gpu(gpus))


def _cpu_slots(node: dict[str, float], cpus_per_worker: float) -> int:
    cpus = node.get("CPU", 0)
    return int(cpus // cpus_per_worker) if cpus_per_worker > 0 else 1 << 30


def idle_without_gpu(gpus: int, prefix: str = "run.") -> str | None:
    """The warning for CPU workers on a cluster with `gpus` GPUs (`prefix`: where the run's
    settings are, `train.run.` in a sweep)."""
    if not gpus:
        return None
    return (
        f"warning: {prefix}use_gpu=false leaves the cluster's {_plural(gpus, 'GPU')} idle; set "
        f"{prefix}use_gpu=true (and {prefix}num_workers=auto) to train on them"
    )


def resolve(
    run: Any, verb: str = "training", nodes: list[dict[str, float]] | None = None
) -> WorkerPlan:
    """`plan_workers` for a `RunConfig` (the section of a `TrainConfig`) on the running cluster."""
    return plan_workers(
        run.num_workers,
        run.use_gpu,
        run.cpus_per_worker,
        cluster_nodes() if nodes is None else nodes,
        verb,
    )
