"""Each job kind's options, declared once: a pydantic model per kind, one field per option.

The same model is the `options` of the run's spec.yaml as the runner receives it (run_spec.py):
a field the spec function places elsewhere (spec=False: the name, the device, the data, the
parent's checkpoint) is read there, from the run spec, never from here.

A field holds its default, its range or check, its help text and its form hints. Three things are
derived from it, so that an option added here appears everywhere at once:
- the CLI's arguments (`ddae_core.cli.common.add_options`): flag, type, default and help;
- the spec's validation (`specs.train_spec`, `eval_specs.*_spec` go through `fields.parse_options`), which
  copies every field into the spec's `options` unless the field says otherwise;
- the launch form's fields and placeholders (`app.launch_kinds`).
How a field is declared and checked (`option()`, Whole, Positive, ...) is fields.py.
Checks raise ConfigError naming the field, in the one sentence the CLI, the form and the worker show.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, model_validator

from .fields import (
    MAX_COUNT,
    MAX_LR,
    MAX_SEED,
    PROTOCOLS,
    DataSpecText,
    Device,
    Flag,
    Layers,
    OneOf,
    Passed,
    Positive,
    Text,
    Whole,
    option,
)


class JobOptions(BaseModel):
    """What every job kind takes: a name, a device and a seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str | None, Text()] = option(None, "a name for the run", hint="automatic", spec=False,
                                                tip="A label for the run; editable later in Runs")
    device: Annotated[str, Device()] = option(
        "auto", "auto (CUDA if present), cpu or cuda", label="Device", spec=False,
        choices=(("auto", "auto (a GPU if there is one)"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)")),
        cli_choices=False, tip="auto runs on a GPU when the machine has one, else on the CPU")
    seed: Annotated[int, Whole(0, MAX_SEED)] = option(0, "random seed", filled=True)


# The types a field's check comes from (the form's editor and the CLI's type follow from them).
Count = Annotated[int | None, Whole()]
Amount = Annotated[int, Whole()]                  # a count that always has a value (its default when blank)
Integer = Annotated[int | None, Whole(-MAX_COUNT, MAX_COUNT)]   # a timestep: its schedule checks the range
Rate = Annotated[float | None, Positive()]
LearningRate = Annotated[float | None, Positive(MAX_LR)]
FixedLearningRate = Annotated[float, Positive(MAX_LR)]
Words = Annotated[str | list | None, Text()]
Word = Annotated[str | None, Text()]          # one word or a path
Switch = Annotated[bool, Flag()]
Data = Annotated[str | None, DataSpecText()]
StudioCount = Annotated[Any, Passed()]
SAMPLERS = (("", "default (DDIM or Heun)"), ("ddim", "DDIM"), ("ddpm", "DDPM"), ("heun", "Heun (EDM)"))


def _checkpoint(help: str = "latest or a step", tip: str = "latest, or a step the parent saved") -> Any:
    return option("latest", help, label="Checkpoint", kind="checkpoint", spec=False, tip=tip)


def _amp() -> Any:
    """The engine's precision for an evaluation (device.amp_dtype_for); set in a spec by hand, on no form."""
    return option("auto", "mixed precision: auto, bf16, fp16 or fp32", cli=False, gui=False, spec=False)


def _limits() -> tuple[Any, Any]:
    return (option(None, "use only this many training images (quick checks)", label="Train examples", hint="all",
                   tip="Use at most this many training images (balanced by class); blank for all"),
            option(None, "use only this many test images", label="Test examples", hint="all",
                   tip="Evaluate on at most this many test images; blank for all"))


class TrainOptions(JobOptions):
    """`ddae train`, the train form, `train_spec`: what the preset or config does not fix."""

    data: Data = option(None, "dataset: builtin:shapes, cifar10, cifar100, folder:PATH, tiny-imagenet:PATH",
                        label="Dataset", metavar="SPEC", default_text="the config's", spec=False, kind="data")
    steps: Count = option(None, "optimizer steps to train", exclusive="length",
                          tip="Optimizer steps; blank for the preset's epochs")
    epochs: Count = option(None, "epochs to train", exclusive="length", tip="Epochs; blank for the preset's")
    minutes: Rate = option(None, "time budget: the step it allows, estimated once in its first minutes and then fixed "
                                 "(with --steps/--epochs: whichever comes first)", label="Time limit (min)",
                           hint="none", spec=False,
                           tip="Train the steps this many minutes allow, as measured in the first minutes (the run "
                               "still ends as done)")
    batch_size: Count = option(None, "images per optimizer step", default_text="the config's")
    lr: LearningRate = option(None, "learning rate", label="Learning rate", default_text="the config's")
    # Keys of the config's studio block, checked (and named) there as the preset's own values are.
    checkpoint_every_steps: StudioCount = option(None, "steps between checkpoints", label="Checkpoint every",
                                                 flag="--checkpoint-every", spec=False, kind="int")
    sample_every_steps: StudioCount = option(None, "steps between sample grids", label="Samples every",
                                             flag="--sample-every", spec=False, kind="int")
    data_limit: Count = option(None, "use only this many training images (quick tests)", label="Train images",
                               hint="all")
    monitor_layers: Annotated[list | None, Layers()] = option(
        None, "compute alignment/uniformity of these layers at every checkpoint (a label-free monitor)",
        metavar="L1,L2", hint="none; or out_6,out_7")
    gpus: Annotated[int, Whole(0)] = option(1, "GPUs the job needs (several: DDP with torchrun)", label="GPUs",
                                            cli=False, spec=False, filled=True)   # the CLI's is --queue's --gpus


class EvalOptions(JobOptions):
    """What every evaluation takes beside its parent run."""

    name: Annotated[str | None, Text()] = option(None, "a name for this evaluation run", hint="automatic",
                                                spec=False, tip="A label for the run; editable later in Runs")
    data: Data = option(None, "dataset", label="Dataset", metavar="SPEC", default_text="the run's", spec=False,
                        kind="data", tip="Blank: the parent run's dataset")
    amp: Annotated[str, Passed()] = _amp()
    sweep: Word = option(None, "the checkpoint sweep that queued this job (jobs.sweep)", cli=False, gui=False,
                         spec=False)


class ProbeOptions(EvalOptions):
    """A probe grid: linear heads over layers x noise levels."""

    checkpoint: Words = _checkpoint()
    protocol: Annotated[str, OneOf(tuple(PROTOCOLS))] = option(
        "fast", "fast (official optimiser on cached features; default), official (the official code's probe), "
                "standardized (fast on zero-mean, unit-variance features; MAE-style, not official), "
                "knn (cosine k-NN, k=20, T=0.07, on the features: no training, a grid in seconds), "
                "dit-official (a DiT run: the DDAE code's DiT probe on the cached latent copies), "
                "attentive (a cross-attention pooling head over each tap's spatial tokens, not the mean), "
                "aggregate (standardized, then one head over softmax-mixed cells: the gain over the best cell)",
        choices=(("fast", "fast: cached features, many heads"), ("official", "official: one head, augmented views"),
                 ("standardized", "standardized: fast on standardised features"),
                 ("knn", "k-NN: no training, a grid in seconds"),
                 ("attentive", "attentive: attention pooling over spatial tokens"),
                 ("aggregate", "aggregate: standardized + learned mixture of all cells"),
                 ("dit-official", "DiT official: cached latent copies (DiT runs)")))
    timesteps: Words = option(None, "DDPM steps, EDM sigma indices or DiT steps (0-indexed), e.g. 1,11,21",
                              hint="1,11,21 (the paper's)", default_text="the paper's grid; dit-official: the config's",
                              tip="DDPM timesteps 1..n_T, EDM sigma indices 1..18, or DiT timesteps 0..n_T-1")
    layers: Words = option("all", "all (decoder taps out_k; a DiT's blocks layer-k), every (with enc_k and mid), or a "
                                  "list like out_6,out_7; dit-official: all means the config's layer (layer-13)",
                           hint="all (decoder out_k); every; or out_5,out_6")
    epochs: Amount = option(None, "epochs of each head", default_text="15; dit-official: 30 (as DiT/linear.py)",
                            hint="15; dit-official: 30")
    batch_size: Amount = option(128, "images per step")
    lr: FixedLearningRate = option(1e-3, "learning rate", label="Learning rate")
    views: Amount = option(1, "fast protocol: augmented views cached per timestep")
    latent_copies: Amount = option(10, "dit-official: augmented latent copies of the training split in the latent "
                                       "cache (the official 10)", label="Latent copies")
    train_limit: Count
    test_limit: Count
    train_limit, test_limit = _limits()
    cache_memory_mb: Annotated[int | None, Whole(0)] = option(
        None, "fast protocol: feature cache budget before spilling to disk (0: keep none in memory)",
        label="Feature cache (MB)", hint="automatic")
    knn_preview: Annotated[int, Whole(0, 50)] = option(
        10, "fast protocols: percent of the training images extracted first, at every noise level, for a k-NN preview "
            "of the whole grid (0: no preview)", label="k-NN preview (%)",
        tip="A k-NN heatmap from a class-spread subset in a fraction of the extraction's time; the full one follows")
    standardize: Switch = option(False, "the same as --protocol standardized", label="Standardise",
                                 hint="zero-mean, unit-variance features (fast only; not the official protocol)",
                                 tip="A diagnostic: how much more the features hold than the official probe gets out")
    holdout: Annotated[int | None, Whole(0)] = option(
        None, "training images held out to choose the best cell (0: choose on the test images, and say so)",
        label="Held out to choose", hint="automatic: 10% of 5,000+ training images",
        default_text="a tenth of the training split where it has 5,000+ images",
        tip="The headline cell is chosen on these, then quoted with its test accuracy")
    baselines: Switch = option(True, "skip the raw-pixel and random-init baselines (each grid trains them by "
                                     "default)", hint="raw-pixel and random-init baselines",
                               tip="Train the same heads on raw pixels and on the network at random initialisation")
    extract_batch_size: Count = option(None, "images per forward pass (default: the device's fastest)", cli=False,
                                       gui=False, spec=False)

    @model_validator(mode="before")
    @classmethod
    def _standardized(cls, values: Any) -> Any:
        """`standardize` is the older spelling of protocol standardized (with fast, or no protocol named); blank
        epochs are the protocol's official ones (DiT/linear.py trains 30, the DDPM/EDM probe 15)."""
        if not isinstance(values, dict):
            return values
        if values.get("standardize") and values.get("protocol") in (None, "fast"):
            values = {**values, "protocol": "standardized"}
        if values.get("epochs") is None:
            values = {**values, "epochs": 30 if values.get("protocol") == "dit-official" else 15}
        return values


class AlignOptions(EvalOptions):
    """Alignment and uniformity of layers over the parent's checkpoints."""

    checkpoints: Words = option("all", "all, latest, or steps like 1000,2000", hint="all; latest; or 500,1000",
                                spec=False)
    layers: Words = option(None, "layers, e.g. out_6,out_7", default_text="the config's probe layer",
                           hint="the config's feature layer")
    timestep: Integer = option(None, "noise level", default_text="the config's, 11 or 4", hint="the config's")
    limit: Count = option(None, "use only this many training images", label="Images", hint="all")
    batch_size: Amount = option(128, "images per step")


class NoisyOptions(EvalOptions):
    """A noise-conditional classifier on one layer (or the WRN baseline), tested at every noise level."""

    checkpoint: Words = _checkpoint()
    layer: Words = option(None, "feature layer", default_text="the config's probe layer",
                          hint="the config's feature layer")
    baseline: Words = option(None, "train the noise-conditional WRN from scratch instead",
                             choices=(("", "none: DDAE features"), ("wrn", "WideResNet trained on noisy images")))
    # The official scripts' defaults: 200 epochs for the WRN (noisy_classifier_WRN.py), 15 for the head.
    # Blank: the official defaults of each, filled in by _official_defaults.
    epochs: Amount = option(None, "epochs", default_text="15 for the head, 200 for --baseline wrn (the official)",
                            hint="15; WRN: 200")
    batch_size: Amount = option(128, "images per step")
    lr: FixedLearningRate = option(None, "learning rate", label="Learning rate",
                                   default_text="0.001; 0.1 for --baseline wrn", hint="0.001")
    width: Amount = option(10, "WRN widen factor", label="WRN width")
    depth: Amount = option(28, "WRN depth (6n+4)", label="WRN depth")
    train_limit: Count
    test_limit: Count
    train_limit, test_limit = _limits()

    @model_validator(mode="before")
    @classmethod
    def _official_defaults(cls, values: Any) -> Any:
        """The official scripts' epochs and lr: 200 and 0.1 for the WRN (noisy_classifier_WRN.py), 15 and 1e-3
        for the head."""
        if not isinstance(values, dict):
            return values
        wrn = values.get("baseline") == "wrn"
        return {**values, "epochs": values["epochs"] if values.get("epochs") is not None else (200 if wrn else 15),
                "lr": values["lr"] if values.get("lr") is not None else (0.1 if wrn else 1e-3)}


class FinetuneOptions(EvalOptions):
    """The network truncated after a layer, fine-tuned with a linear head on clean images."""

    checkpoint: Words = _checkpoint()
    layer: Words = option(None, "truncate after this tap", default_text="the config's probe layer",
                          hint="the config's feature layer")
    timestep: Integer = option(None, "fixed time input", default_text="the config's, 11 or 4", hint="the config's")
    epochs: Amount = option(15, "epochs")
    batch_size: Amount = option(128, "images per step")
    lr: FixedLearningRate = option(1e-4, "learning rate", label="Learning rate")
    scratch: Switch = option(False, "same truncated network from random weights", label="From scratch",
                             hint="random weights (baseline)")
    train_limit: Count
    test_limit: Count
    train_limit, test_limit = _limits()


class SampleOptions(JobOptions):
    """A grid of samples from one checkpoint."""

    checkpoint: Words = _checkpoint()
    n: Annotated[int, Whole(1, 4096)] = option(64, "number of images", label="Images", filled=True)
    sampler: Word = option(None, "sampler", default_text="ddim for DDPM, heun for EDM", choices=SAMPLERS)
    steps: Count = option(None, "sampler steps", default_text="100 for DDIM, 18 for Heun", hint="100 DDIM, 18 Heun")
    amp: Annotated[str, Passed()] = _amp()


class FidOptions(EvalOptions):
    """FID of the EMA model's samples against the training set, per checkpoint."""

    checkpoint: Words = _checkpoint("latest, a step, or all", "latest, all, or a step the parent saved")
    n: Annotated[int, Whole(2)] = option(10000, "samples per checkpoint (the official: 50000)", label="Samples",
                                         hint="10000 (official: 50000)", spec=False)
    sampler: Word = option(None, "sampler", default_text="ddim for DDPM, heun for EDM", choices=SAMPLERS,
                            spec=False)
    steps: Count = option(None, "sampler steps", default_text="100 for DDIM, 18 for Heun, as the official FIDs",
                          hint="100 DDIM, 18 Heun", spec=False)
    batch_size: Amount = option(250, "images sampled and scored at once", flag="--batch", spec=False)
    dims: Annotated[int, Whole(1)] = option(
        2048, "Inception feature size (2048 is the standard FID; the others are for quick checks)",
        label="Features", spec=False,
        choices=((2048, "2048 (the standard FID)"), (768, "768"), (192, "192"), (64, "64")))
    inception: Word = option(None, "the FID Inception weights pt_inception-2015-12-05-6726825d.pth",
                              label="Inception weights", metavar="PATH", spec=False, hint="found by itself",
                              default_text="$DDAE_INCEPTION, WORKSPACE/data/fid/, or torch's hub cache",
                              tip="pt_inception-2015-12-05-6726825d.pth; blank: $DDAE_INCEPTION, the "
                                  "workspace's data/fid/, or torch's hub cache")
    checkpoints: Words = option(None, "the checkpoints fid_spec resolved: all, latest or a list of steps", cli=False,
                                gui=False, spec=False)


class SweepOptions(BaseModel):
    """A checkpoint sweep's own options (`ddae sweep`, `ddae train --sweep-...`, the train form's sweep group);
    its FID jobs take FidOptions' sampler, steps, batch_size, dims and inception. jobs.sweep.sweep_plan checks
    them, in its own words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoints: StudioCount = option("all", "all checkpoints, or every K: those at multiples of K steps",
                                      hint="all; or every K (steps)", cli=False)   # the CLI's takes several words
    fid_n: StudioCount = option(10000, "FID samples per checkpoint (0: no FID)", label="FID samples", kind="int",
                                hint="10000 (0: no FID)",
                                tip="Samples per checkpoint; needs pytorch-fid and the Inception weights file")
    probe: StudioCount = option(None, "probe per checkpoint, fast protocol: one cell T,LAYER like 11,out_6, grid "
                                      "(the paper's grid, its best cell), or none", label="Probe",
                                metavar="T,LAYER|grid|none", default_text="the config's",
                                hint="the config's cell; or 11,out_6; grid; none",
                                tip="Fast protocol: one cell t,layer, the paper's whole grid (its best cell counts), "
                                    "or none")


class SimilarityOptions(EvalOptions):
    """Linear CKA and mutual k-NN between every tap of two models: two checkpoints, two runs, or random init."""

    checkpoint: Words = _checkpoint()
    other: Word = option(None, "the second run: id, id prefix or name (blank: this run, at --other-checkpoint)",
                         label="Second run", hint="this run", cli=False)   # the CLI's is a positional RUN_B
    other_checkpoint: Words = option("latest", "the second run's checkpoint: latest or a step",
                                     label="Second checkpoint", kind="checkpoint")
    random_init: Switch = option(False, "compare with the same network at random initialisation",
                                 label="Random init", hint="B is the network before training")
    timestep: Integer = option(None, "noise level both models see", flag="--t", label="Noise level",
                               default_text="the best probe cell's, else the config's", hint="the best cell's")
    layers: Words = option("every", "every (enc_k, mid, out_k), all (decoder taps) or a list like out_5,out_6",
                           hint="every tap")
    images: Amount = option(1000, "test images both models see, with the same noise", label="Images")
    k: Amount = option(10, "neighbours of mutual k-NN (REPA's: 10)", label="k (mutual k-NN)")
    batch_size: Amount = option(128, "images per forward pass")


class SegmentationOptions(EvalOptions):
    """A per-pixel linear probe (a 1x1 convolution on upsampled features) over layers x noise, on builtin:shapes."""

    checkpoint: Words = _checkpoint()
    timesteps: Words = option(None, "DDPM steps or EDM sigma indices, e.g. 1,11,21", hint="1,11,21 (the paper's)",
                              default_text="the paper's grid")
    layers: Words = option("all", "all (decoder taps out_k), every, or a list like out_6,out_7",
                           hint="all (decoder out_k)")
    epochs: Amount = option(5, "epochs of each head")
    batch_size: Amount = option(64, "images per step")
    lr: FixedLearningRate = option(1e-2, "learning rate", label="Learning rate")
    train_limit: Count = option(1000, "training images (each gives 1,024 labelled pixels)", label="Train images")
    test_limit: Count = option(500, "test images", label="Test images")


# kind -> its options; the CLI, the spec functions and the launch forms look the model up here.
MODELS: dict[str, type[JobOptions]] = {
    "train": TrainOptions, "probe": ProbeOptions, "align-uniform": AlignOptions, "noisy-classifier": NoisyOptions,
    "finetune": FinetuneOptions, "sample": SampleOptions, "fid": FidOptions,
    "similarity": SimilarityOptions, "segmentation": SegmentationOptions,
}
