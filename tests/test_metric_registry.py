"""The metric registry (genlab/metrics/registry.py) is the one list of metrics: every
registered name is accepted wherever metrics are named, the direction each key declares is
the one best.pt, a sweep and genlab report follow, and an unknown name is refused in one
line that lists the registered ones. Parametrised over the registry, not a list kept here."""

import re
from pathlib import Path

import pytest

from genlab import GenlabError
from genlab.evaluate import chosen_metrics
from genlab.metrics.registry import METRICS, metric_direction, monitor, objective, register_metric, refusal
from genlab.models.base import GenerativeModel
from genlab.report import Run, _ranked
from genlab.validation import check_values

# (metric, logged key, direction) for every key a metric declares a direction for; a
# pattern's * stands for what the trainer logs there (log_likelihood_iw1000, cycle_A)
DIRECTED = [(name, key.replace("*", "A" if key.startswith("cycle_") else "1000"), mode)
            for name, m in METRICS.items() for key, mode in m.keys.items() if mode]


class Bare(GenerativeModel):
    """A model with no capability: no model metric applies, and it makes no images."""

    def sample(self, n, labels=None): ...


def test_the_registry_holds_every_metric_once_in_its_order():
    assert list(METRICS) == ["recon", "translation", "nll", "modes", "stacked_modes", "class_accuracy", "ifid", "fid", "is", "kid", "pr"]


@pytest.mark.parametrize("name", list(METRICS))
def test_every_registered_metric_is_accepted_by_the_config_checks_and_by_eval(name, make_cfg):
    check_values(make_cfg("train", [f"trainer.eval_metrics=[{name}]"]), "train")
    check_values(make_cfg("eval", [f"metrics=[{name}]"]), "eval")
    declared = METRICS[name]
    says = "needs generated images" if declared.images else refusal(declared, Bare()).strip()
    with pytest.raises(GenlabError, match=f"^metric '{name}' {re.escape(says)}") as e:  # refused for what it needs, not as an unknown name
        chosen_metrics([name], Bare(), None)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("name", "key", "mode"), DIRECTED)
def test_each_declared_direction_is_what_best_pt_a_sweep_and_the_report_follow(name, key, mode, make_cfg):
    logged = f"val/{key}"
    assert metric_direction(logged) == metric_direction(f"{logged}_AtoB") == mode
    cfg = make_cfg("train", ["model=gan", f"trainer.monitor={logged}"])
    assert monitor(cfg.trainer, None) == (logged, mode)  # best.pt, trainer.monitor_mode=auto
    assert objective(cfg) == (logged, mode)  # the sweep follows best.pt's metric
    assert objective(make_cfg("train", ["model=gan", f"trainer.objective={logged}"])) == (logged, mode)
    low, high = (Run(Path(p), {}, None, series={logged: [(0, 5.0), (1, v)]}, label=p) for p, v in (("low", 1.0), ("high", 9.0)))
    best_first = _ranked([low, high], (logged, mode))
    assert [r.label for r in best_first] == (["low", "high"] if mode == "min" else ["high", "low"])
    assert low.best(logged, mode) == (1.0 if mode == "min" else 5.0)


@pytest.mark.parametrize("name", [n for n, m in METRICS.items() if m.monitor_rank is not None])
def test_a_computed_metric_keeps_best_pt_by_its_first_key_in_its_direction(name, make_cfg):
    key, mode = next(iter(METRICS[name].keys.items()))
    assert monitor(make_cfg("train", ["model=gan", f"trainer.eval_metrics=[{name}]"]).trainer, None) == (f"val/{key}", mode)


def test_best_pt_follows_the_metric_of_lowest_rank(make_cfg):
    assert monitor(make_cfg("train", ["model=gan", "trainer.eval_metrics=[class_accuracy,ifid,fid]"]).trainer, None) == ("val/fid", "min")
    assert monitor(make_cfg("train", ["model=gan", "trainer.eval_metrics=[class_accuracy,ifid]"]).trainer, None) == ("val/ifid", "min")


def test_an_unknown_metric_is_one_line_listing_the_registered_ones(make_cfg):
    names = ", ".join(METRICS)
    with pytest.raises(GenlabError) as e:
        check_values(make_cfg("train", ["trainer.eval_metrics=[fid,fdi]"]), "train")
    assert str(e.value) == f"trainer.eval_metrics=['fid', 'fdi'] has 'fdi', which is not a metric; choose from {names}"
    with pytest.raises(GenlabError) as e:
        check_values(make_cfg("eval", ["metrics=[fdi]"]), "eval")
    assert str(e.value) == f"metrics=['fdi'] has 'fdi', which is not a metric; choose from {names}, auto"
    with pytest.raises(GenlabError) as e:
        chosen_metrics(["fdi"], Bare(), None)
    assert str(e.value) == f"metrics has 'fdi', which is not a metric; choose from {names}"


def test_a_monitor_of_unknown_direction_asks_for_its_mode(make_cfg):
    with pytest.raises(GenlabError, match=r"^trainer.monitor=val/d_real: genlab does not know which way is better; set trainer.monitor_mode=min or max$"):
        monitor(make_cfg("train", ["model=gan", "trainer.monitor=val/d_real"]).trainer, None)
    assert monitor(make_cfg("train", ["model=gan", "trainer.monitor=val/d_real", "trainer.monitor_mode=max"]).trainer, None) == ("val/d_real", "max")


def test_a_metric_is_registered_once_and_a_key_has_one_direction():
    before = dict(METRICS)
    with pytest.raises(ValueError, match="metric 'fid' is registered twice"):
        register_metric("fid", keys={"fid": "min"})(lambda c: {})
    with pytest.raises(ValueError, match="metric 'fid_max': key 'fid' is max here and min in another metric"):
        register_metric("fid_max", keys={"fid": "max"})(lambda c: {})
    assert METRICS == before
