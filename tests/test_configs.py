"""Every config composes, and every object in it instantiates."""

import importlib.resources

import pytest
import torch
from hydra.utils import get_class, get_method, instantiate

from genlab.config import build

CONFIGS = importlib.resources.files("genlab.configs")


def options(group: str) -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in CONFIGS.joinpath(group).iterdir() if p.name.endswith(".yaml"))


def test_every_group_has_options():
    for group in ("model", "data", "optim", "scheduler", "trainer", "logger", "experiment"):
        assert options(group), group


@pytest.mark.parametrize("name", options("data"))
def test_data_configs_compose_and_name_an_importable_dataset(name, make_cfg):
    cfg = make_cfg("train", [f"data={name}"] + (["data.dataset.root=/tmp"] if name == "image_folder" else []))
    assert get_class(cfg.data.dataset._target_)
    assert cfg.data.batch_size > 0 and cfg.data.num_classes >= 0
    if len(cfg.data.shape) == 3:  # images
        assert list(cfg.data.shape) == [cfg.data.channels, cfg.data.image_size, cfg.data.image_size] and cfg.data.channels in (1, 3)
    else:  # points of a 2-D benchmark
        assert list(cfg.data.shape) == [2]


@pytest.mark.parametrize("name", options("optim"))
def test_optimizers_instantiate_on_a_parameter_group(name, make_cfg):
    from omegaconf import OmegaConf

    cfg = make_cfg("train", [f"optim={name}"])
    opt = instantiate(cfg.optim)([torch.nn.Parameter(torch.zeros(3))])
    settings = {k: v for k, v in OmegaConf.to_container(cfg.optim).items() if not k.startswith("_")}
    assert type(opt) is get_class(cfg.optim._target_) and "lr" in settings
    assert {k: opt.defaults[k] for k in settings} == {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}  # each setting reaches it


@pytest.mark.parametrize("name", options("scheduler"))
def test_schedulers_instantiate_with_the_run_length(name, make_cfg):
    cfg = make_cfg("train", [f"scheduler={name}"])
    if not cfg.scheduler:
        return  # none: constant learning rate
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = instantiate(cfg.scheduler)(opt, total_steps=2000)
    lrs = []
    for _ in range(2000):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0 and all(0 <= lr <= 1 for lr in lrs) and lrs[-1] < 1.0


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_configs_set_only_the_default_trainer_keys(name, make_cfg):
    default = make_cfg("train", ["trainer=default"], fast=False).trainer
    cfg = make_cfg("train", [f"trainer={name}"], fast=False).trainer
    assert set(cfg) == set(default)  # a preset changes values, never adds a key nothing reads
    assert int(cfg.max_steps) >= 1 and int(cfg.log_every) >= 1


@pytest.mark.parametrize("name", options("logger"))
def test_logger_configs_name_known_sinks_and_give_each_its_options(name, make_cfg):
    from genlab.loggers import SINKS, sink_names

    logger = make_cfg("train", [f"logger={name}"]).logger
    names = sink_names(logger)
    assert names == list(logger.sinks) and set(names) <= set(SINKS)
    assert names == ([] if name == "jsonl" else [name])
    for sink in ("wandb", "mlflow"):  # the sinks that take options have them in their own file
        assert (sink in logger) == (name == sink)


@pytest.mark.parametrize("name", options("experiment"))
def test_experiments_compose_and_build_their_model(name, make_cfg):
    cfg = make_cfg("train", [f"experiment={name}"], fast=False)
    model = build(cfg.model, "model")
    assert type(model) is get_class(cfg.model._target_) and sum(p.numel() for p in model.parameters()) > 0
    assert get_class(cfg.data.dataset._target_)


@pytest.mark.parametrize("verb", ["eval", "sample", "export"])
def test_eval_and_sample_configs_compose(verb, make_cfg):
    cfg = make_cfg(verb, ["ckpt=outputs/run"])
    assert cfg.ckpt == "outputs/run" and cfg.seed == 0


def test_schedule_functions_are_pure_and_exact():
    from genlab.schedules import constant_then_linear_factor, step_factor, warmup_cosine_factor

    # the reference's lambda_rule: 1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1), per epoch
    lambda_rule = lambda epoch, n, n_decay: 1.0 - max(0, epoch + 1 - n) / float(n_decay + 1)  # noqa: E731
    per_epoch = [constant_then_linear_factor(s, 200 * 7, 0.5, steps_per_epoch=7) for s in range(200 * 7)]
    assert per_epoch == [lambda_rule(s // 7, 100, 100) for s in range(200 * 7)]
    assert per_epoch[0] == per_epoch[99 * 7 + 6] == 1.0 and per_epoch[-1] == pytest.approx(1 / 101)
    assert [constant_then_linear_factor(s, 200, 100) for s in (0, 99, 100, 199)] == pytest.approx([1.0, 1.0, 1 - 1 / 101, 1 / 101])
    assert warmup_cosine_factor(0, 100, warmup_steps=10) == 0.1 and warmup_cosine_factor(10, 100, warmup_steps=10) == 1.0
    assert warmup_cosine_factor(55, 100, warmup_steps=10) == pytest.approx(0.5)
    assert [step_factor(s, 0, step_size=10, gamma=0.5) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    assert get_method("genlab.schedules.warmup_cosine")


TRANSLATION_SETS = ["horse2zebra", "monet2photo", "summer2winter_yosemite", "facades", "edges2shoes", "maps", "cityscapes"]


@pytest.mark.parametrize("name", TRANSLATION_SETS)
def test_translation_data_configs_compose_as_before_their_shared_base(name, make_cfg):
    """configs/_translation_data.yaml factors the two-domain sets; each still composes to the
    data node it had as a flat file (tests/data/translation_data_configs.yaml), unresolved."""
    from pathlib import Path

    import yaml
    from omegaconf import OmegaConf

    expected = yaml.safe_load((Path(__file__).parent / "data" / "translation_data_configs.yaml").read_text())
    assert OmegaConf.to_container(make_cfg("train", [f"data={name}"], fast=False).data, resolve=False) == expected[name]


def test_the_translation_base_is_not_a_data_option():
    assert "_translation_data" not in options("data") and CONFIGS.joinpath("_translation_data.yaml").is_file()


# -- per-(experiment, loss) settings: configs/experiment_loss/<experiment>/<loss>.yaml --------
@pytest.mark.parametrize("data", ["ring8", "grid25"])
def test_gan_ring8_with_wgan_gp_gets_the_toy_settings_of_gan_toy_py(data, make_cfg):
    """igul222/improved_wgan_training gan_toy.py: lambda 0.1, Adam(1e-4, (0.5, 0.9)), 5 critic steps."""
    cfg = make_cfg("train", ["experiment=gan_ring8", "loss=wgan_gp", f"data={data}"], fast=False)
    assert (cfg.loss.gp_weight, cfg.loss.n_critic) == (0.1, 5)
    assert (cfg.optim._target_, cfg.optim.lr, list(cfg.optim.betas)) == ("torch.optim.Adam", 1e-4, [0.5, 0.9])


def test_gan_ring8_with_r1_applies_it_on_every_discriminator_step_as_its_paper(make_cfg):
    """Mescheder et al. 2018 (LMescheder/GAN_stability): gamma 10 on every step, not lazily every 16."""
    cfg = make_cfg("train", ["experiment=gan_ring8", "loss=r1"], fast=False)
    assert (cfg.loss.r1_gamma, cfg.loss.r1_every, cfg.optim.lr) == (10.0, 1, 1e-3)
    assert make_cfg("train", ["model=gan_mlp", "loss=r1"], fast=False).loss.r1_every == 16


@pytest.mark.parametrize("data", ["ring8", "grid25"])
def test_gan_ring8_with_wgan_swaps_the_experiments_adam_for_gan_toy_pys_rmsprop(data, make_cfg):
    """gan_toy.py MODE 'wgan': RMSprop 5e-5 for both networks, clip 0.01, 5 critic steps, no bursts;
    the experiment's Adam goes whole (RMSprop has no betas), and the command line still wins."""
    from omegaconf import OmegaConf

    from genlab.trainer import build_optimizers
    from genlab.validation import check_values

    cfg = make_cfg("train", ["experiment=gan_ring8", "loss=wgan", f"data={data}"], fast=False)
    assert OmegaConf.to_container(cfg.optim) == {"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": 5e-5, "alpha": 0.99, "weight_decay": 0.0}
    assert (cfg.loss.clip, cfg.loss.n_critic, cfg.loss.critic_burst) == (0.01, 5, None)
    check_values(cfg, "train")
    optimizers = build_optimizers(build(cfg.model, "model"), cfg.optim, cfg.optim_groups)
    assert sorted(optimizers) == ["d", "g"]
    for opt in optimizers.values():
        assert type(opt) is torch.optim.RMSprop and (opt.defaults["lr"], opt.defaults["alpha"]) == (5e-5, 0.99)
    assert make_cfg("train", ["experiment=gan_ring8", "loss=wgan", "optim.lr=2e-4"], fast=False).optim.lr == 2e-4
    dropped = make_cfg("train", ["experiment=gan_ring8", "loss=wgan", "~experiment_loss"], fast=False).optim
    assert (dropped._target_, dropped.lr, list(dropped.betas)) == ("torch.optim.Adam", 1e-3, [0.5, 0.999])


PER_LOSS_FILES = sorted((exp.name, f.name.removesuffix(".yaml")) for exp in CONFIGS.joinpath("experiment_loss").iterdir() for f in exp.iterdir())


def _leaves(node, prefix=""):
    """(dotted key, value) of every non-null leaf a config file sets, its defaults list aside."""
    from omegaconf import DictConfig

    for key, value in node.items():
        if key == "defaults" or value is None:
            continue
        if isinstance(value, DictConfig):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("experiment,loss", PER_LOSS_FILES)
def test_each_per_loss_file_is_picked_for_its_loss_and_dropped_by_tilde(experiment, loss, make_cfg):
    """Every value the file sets is in the composed config of experiment + loss, and is not there with ~experiment_loss."""
    from omegaconf import OmegaConf

    own = OmegaConf.load(CONFIGS.joinpath("experiment_loss", experiment, f"{loss}.yaml"))
    cfg = make_cfg("train", [f"experiment={experiment}", f"loss={loss}"], fast=False)
    dropped = make_cfg("train", [f"experiment={experiment}", f"loss={loss}", "~experiment_loss"], fast=False)
    assert cfg != dropped
    for key, value in _leaves(own):
        assert OmegaConf.select(cfg, key) == value and OmegaConf.select(dropped, key) != value, key


@pytest.mark.parametrize("loss", ["hinge", "ragan", "rahinge"])
def test_gan_ring8_with_hinge_and_the_relativistic_losses_gets_gan_toy_pys_adam_betas(loss, make_cfg):
    """Adam betas (0.5, 0.9) of gan_toy.py at the experiment's lr 1e-3, one discriminator step, the loss untouched."""
    cfg = make_cfg("train", ["experiment=gan_ring8", f"loss={loss}"], fast=False)
    assert (cfg.optim._target_, cfg.optim.lr, list(cfg.optim.betas), cfg.loss.n_critic) == ("torch.optim.Adam", 1e-3, [0.5, 0.9], 1)
    assert cfg.loss == make_cfg("train", ["model=gan_mlp", f"loss={loss}"], fast=False).loss


def test_a_loss_without_toy_settings_gets_the_experiments_own(make_cfg):
    cfg = make_cfg("train", ["experiment=gan_ring8", "loss=lsgan"], fast=False)
    assert (cfg.optim.lr, list(cfg.optim.betas)) == (1e-3, [0.5, 0.999])
    assert cfg.loss == make_cfg("train", ["model=gan_mlp", "loss=lsgan"], fast=False).loss


def test_the_command_line_wins_over_the_per_loss_settings(make_cfg):
    cfg = make_cfg("train", ["experiment=gan_ring8", "loss=wgan_gp", "loss.gp_weight=5", "optim.lr=3e-4"], fast=False)
    assert (cfg.loss.gp_weight, cfg.optim.lr, list(cfg.optim.betas)) == (5, 3e-4, [0.5, 0.9])
    dropped = make_cfg("train", ["experiment=gan_ring8", "loss=wgan_gp", "~experiment_loss"], fast=False)
    assert (dropped.loss.gp_weight, dropped.optim.lr) == (10.0, 1e-3)


def test_the_per_loss_settings_belong_to_a_real_experiment_and_loss():
    """A renamed experiment or loss would otherwise leave its per-loss settings unread (the default is optional)."""
    files = [(exp.name, f.name.removesuffix(".yaml")) for exp in CONFIGS.joinpath("experiment_loss").iterdir() for f in exp.iterdir()]
    assert files and all(exp in options("experiment") and loss in options("loss") for exp, loss in files)


def test_a_run_records_the_per_loss_settings_only_where_they_exist():
    from genlab.config import applied_choices

    assert applied_choices({"experiment": "gan_ring8", "loss": "wgan_gp", "experiment_loss": "gan_ring8/wgan_gp"})["experiment_loss"] == "gan_ring8/wgan_gp"
    assert "experiment_loss" not in applied_choices({"experiment": "gan_ring8", "loss": "lsgan", "experiment_loss": "gan_ring8/lsgan"})
    assert "experiment_loss" not in applied_choices({"experiment": None, "loss": "default", "experiment_loss": "None/default"})
