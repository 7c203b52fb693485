"""Training: configs, the Trainer (EMA, AdamW + schedule, clipping, autocast), engines (local, DDP via
torchrun), checkpoints, trackers, and the run API (``train``, ``load_run``, ``sample_run``, ``evaluate``)."""

from genlab.training.api import EvalResult, Run, RunSamples, evaluate, load_run, sample_run, train
from genlab.training.batches import StepBatches
from genlab.training.checkpoint import (
    CheckpointManager,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from genlab.training.components import Components, build_components, make_field
from genlab.training.config import (
    EVAL_METRICS,
    CouplingConfig,
    DataConfig,
    EvalConfig,
    InterpolantConfig,
    LoggingConfig,
    ModelConfig,
    RunConfig,
    SampleConfig,
    TrainConfig,
    check_components,
    load_config,
)
from genlab.training.ema import EMA, ema_decay_at
from genlab.training.engines import DDPEngine, Engine, LocalEngine, get_engine, resolve_device
from genlab.training.evaluation import distances, sample_metrics, validation_loss
from genlab.training.objective import LossOutput, Objective, sample_times
from genlab.training.precond import EDMPreconditioner, MaskedOutput, edm_loss_weight
from genlab.training.sampling import Samples, draw_samples, reference_data, save_picture
from genlab.training.tracking import (
    JsonlTracker,
    MultiTracker,
    NullTracker,
    Tracker,
    WandbTracker,
    make_tracker,
)
from genlab.training.trainer import RESUMABLE_CHANGES, Hook, Trainer, TrainResult, lr_factor

__all__ = [
    "EMA",
    "EVAL_METRICS",
    "RESUMABLE_CHANGES",
    "CheckpointManager",
    "Components",
    "CouplingConfig",
    "DDPEngine",
    "DataConfig",
    "EDMPreconditioner",
    "Engine",
    "EvalConfig",
    "EvalResult",
    "Hook",
    "InterpolantConfig",
    "JsonlTracker",
    "LocalEngine",
    "LoggingConfig",
    "LossOutput",
    "MaskedOutput",
    "ModelConfig",
    "MultiTracker",
    "NullTracker",
    "Objective",
    "Run",
    "RunConfig",
    "RunSamples",
    "SampleConfig",
    "Samples",
    "StepBatches",
    "Tracker",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "WandbTracker",
    "build_components",
    "capture_rng_state",
    "check_components",
    "distances",
    "draw_samples",
    "edm_loss_weight",
    "ema_decay_at",
    "evaluate",
    "get_engine",
    "load_checkpoint",
    "load_config",
    "load_run",
    "lr_factor",
    "make_field",
    "make_tracker",
    "reference_data",
    "resolve_device",
    "restore_rng_state",
    "sample_metrics",
    "sample_run",
    "sample_times",
    "save_checkpoint",
    "save_picture",
    "train",
    "validation_loss",
]
