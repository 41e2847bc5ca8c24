"""`revsent pretrain`: a language model of review text, with or without labels (:mod:`revsent.lm`).

    texts ──► a dataset of texts (data/build.py, labelled=False; or a prepared dataset's training
              part) ──► a training stream and a held-out stream of token ids (files, memory-mapped)
          ──► epochs of random windows (both directions, a sampled softmax, AWD-LSTM's dropouts)
          ──► held-out perplexity (full softmax) after each epoch ──► the LM directory

Adam on the LSTMs and SparseAdam on the embedding (only the rows a step touched), on ULMFiT's
slanted triangular schedule over the whole run (Howard & Ruder 2018). Under torchrun each rank
takes its share of every step's windows (DDP; the embedding's gradient then dense). A checkpoint
is written at every epoch's end and every ``checkpoint_minutes``; ``--resume`` goes on from it.
What the model learnt from is recorded: the files, how many reviews and tokens, a digest of the
token stream, and a fingerprint of each training review (``train_hashes.npy``), which a classifier
started from it carries so that its test part can be checked against them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from .. import artifacts
from ..config import CONTINUE_LR, LM_PRESET, Config
from ..data import build, store
from ..data.parts import cached_dataset
from ..data.splits import heldout_mask
from ..device import hardware, start_run, trains_in_bf16
from ..errors import ArtifactError, ConfigError, DataError
from ..lm import LanguageModel
from ..progress import Progress
from ..text import TextEncoder
from .checkpoint import Clock, load_optimizer, optimizer_tensors
from .init_from import InitFrom
from .distributed import Ranks, dropout_seed, finish, from_main, init, shard, wrap
from .run import open_out
from .schedule import slanted_triangular

STREAM_ROWS = 1 << 16  # reviews copied into a stream at a time


@dataclass
class Texts:
    """A language model's text: its vocabulary, the training and held-out token streams, the
    training words' counts and what it was read from."""

    cfg: Config
    encoder: TextEncoder
    train: np.ndarray  # token ids of the training reviews, one after another (memory-mapped)
    heldout: np.ndarray
    counts: np.ndarray  # (rows,) occurrences of each id in the training stream
    record: dict  # metrics.json's "texts"
    hashes: tuple[np.ndarray, int | None]  # the training reviews' fingerprints (store.fingerprint_sample)


@dataclass
class PretrainResult:
    out: Path
    metrics: dict
    history: list[dict]


def pretrain(cfg: Config, out: str | Path, *, resume: bool = False, force: bool = False,
             progress: Progress | None = None, start: InitFrom | None = None) -> PretrainResult:
    """Train a language model on the texts of ``cfg.data`` and write its directory ``out``.

    ``start``: the language model ``cfg.train.init_from`` names, read (by default read here); its
    vocabulary numbers the texts and its weights are the start (continuing it on new text)."""
    progress, ranks = progress or Progress(False), Ranks.from_environment()
    _check(cfg)
    if start is None and cfg.train.init_from:
        cfg, start = continued(cfg, set_explicitly(cfg))
    prepared = len(cfg.data.paths) == 1 and store.is_dataset(cfg.data.paths[0])
    if ranks.enabled and not prepared:
        raise ConfigError("under torchrun, DATA must be a dataset made by `revsent prepare`, at the same path on every "
                          "machine: every process opens it (memory-mapped)")
    started = time.perf_counter()
    out = artifacts.check_writable(out) if ranks.main else Path(out)
    if not ranks.main:
        progress = Progress(False)
    with artifacts.removed_on_failure(out if ranks.main else None):
        if ranks.main:
            out, resume = open_out(out, resume=resume, force=force, progress=progress)
        ranks, device = init(start_run(cfg.train))
        try:
            from_main([float(resume)], ranks, device)  # every rank waits for rank 0's --out before writing in it
            texts = open_texts(cfg, out / artifacts.DATASET, progress=progress, reuse=resume,
                               encoder=None if start is None else start.encoder)
            if resume and ranks.main:
                _check_resumable(out, texts.cfg)
            return _pretrain(texts, out, ranks, device, resume=resume, progress=progress, started=started,
                             start=start)
        finally:
            finish()


def _check(cfg: Config) -> None:
    if cfg.model.layers != 1:
        raise ConfigError("a language model has one LSTM each way (--layers 1): a classifier's deeper layers read "
                          "both directions at once, which a model predicting words cannot")
    if not cfg.model.bidirectional:
        raise ConfigError("a language model is trained in both directions (a classifier that reads one way uses the "
                          "forward one); leave out --no-bidirectional")


def continued(cfg: Config, given: Iterable[str] = ()) -> tuple[Config, InitFrom]:
    """The language model ``cfg.train.init_from`` names, read (a classifier is refused), and
    ``cfg`` with its vocabulary and sizes; an option in ``given`` (set explicitly) that differs is
    refused. Without a given ``lr``, the rate is ``CONTINUE_LR``."""
    start = InitFrom.load(cfg.train.init_from)
    if start.lm is None:
        raise ConfigError(f"--init-from {start.path}: is a classifier; `revsent pretrain --init-from` continues a "
                          "language model (one made by `revsent pretrain`)")
    cfg = start.settings(cfg, given)
    if "lr" not in set(given):
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=CONTINUE_LR))
    return cfg, start


def set_explicitly(cfg: Config) -> list[str]:
    """The settings of ``cfg`` that differ from the language-model preset's (set by its maker)."""
    preset = Config.from_preset(LM_PRESET)
    return [f.name for section in ("data", "model", "train", "lm") for f in dataclasses.fields(getattr(cfg, section))
            if getattr(getattr(cfg, section), f.name) != getattr(getattr(preset, section), f.name)]


def _check_resumable(out: Path, cfg: Config) -> None:
    saved = artifacts.read_lm_config(out)
    if (saved.model, saved.data, saved.lm, saved.train.seed, saved.train.init_from) != \
            (cfg.model, cfg.data, cfg.lm, cfg.train.seed, cfg.train.init_from):
        raise ConfigError(f"{out}: --resume needs the same data, model and language-model settings as the "
                          "interrupted run (only training settings such as --epochs may change)")


def open_texts(cfg: Config, cache: Path, *, progress: Progress, reuse: bool = False,
               encoder: TextEncoder | None = None) -> Texts:
    """The texts of ``cfg.data``: one prepared dataset's training part (its test part is never
    read), or files prepared into ``cache`` as texts alone; held out as ``cfg.lm.heldout`` says.
    ``encoder``: the vocabulary to number them by (a language model continued, ``--init-from``)."""
    paths = cfg.data.paths
    if any(store.is_dataset(p) for p in paths):
        if len(paths) > 1:
            raise ConfigError(f"A prepared dataset must be the only DATA; got {', '.join(paths)}.")
        ds = store.Dataset.open(paths[0])
        if encoder is not None and ds.encoder.vocab != encoder.vocab:
            raise ConfigError(f"{paths[0]}: its vocabulary is not that of --init-from {cfg.train.init_from}; prepare "
                              f"the dataset with `revsent prepare ... --init-from {cfg.train.init_from}`")
        cfg = Config(data=cfg.data, model=ds.model_config(cfg.model), train=cfg.train, preset=cfg.preset, lm=cfg.lm)
        rows = ds.rows(0)
        if ds.classes:  # a labelled dataset: its training part alone, part of it held out
            held = heldout_mask(len(rows), cfg.lm.heldout, cfg.train.seed, "--heldout").astype(bool)
            train_rows, held_rows = rows[~held], rows[held]
        else:
            train_rows, held_rows = rows, ds.rows(1)
    else:
        ds = cached_dataset(cfg, cache) if reuse else None
        ds = None if ds is None or ds.classes else ds  # texts alone, as this run prepares them
        if ds is None:
            ds = build.prepare(cfg, cache, force=True, work_dir=cache.parent, progress=progress, labelled=False,
                               encoder=encoder)
        train_rows, held_rows = ds.rows(0), ds.rows(1)
    cache.mkdir(parents=True, exist_ok=True)
    train, counts, digest = _stream(ds, train_rows, cache / "lm_train.bin")
    heldout = _stream(ds, held_rows, cache / "lm_heldout.bin")[0]
    if len(train) < 2 * (cfg.lm.bptt + 1):
        raise DataError(", ".join(paths) or "imdb", f"{len(train):,} training tokens are too few for windows of "
                        f"--bptt {cfg.lm.bptt}; give more text")
    record = {"files": list(paths) or ["imdb"], "reviews": int(len(train_rows)), "tokens": int(len(train)),
              "heldout_reviews": int(len(held_rows)), "heldout_tokens": int(len(heldout)), "sha256": digest,
              "dataset": ds.id, "counts": ds.manifest["counts"]}
    hashes = store.fingerprint_sample(ds.seqs.take(train_rows))
    return Texts(cfg, ds.encoder, train, heldout, counts, record, hashes)


def _stream(ds: store.Dataset, rows: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """The ids of reviews ``rows`` one after another, written to ``path`` a block at a time and
    memory-mapped; each id's count, and the stream's SHA-256."""
    seqs, digest = ds.seqs, hashlib.sha256()
    counts = np.zeros(ds.encoder.rows, np.int64)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # torchrun's ranks each write the same stream
    with open(tmp, "wb") as handle:
        for start in range(0, len(rows), STREAM_ROWS):
            block = np.concatenate([seqs[int(r)] for r in rows[start: start + STREAM_ROWS]] or [np.zeros(0, np.int32)])
            block = block.astype(seqs.ids.dtype, copy=False)
            handle.write(block.tobytes())
            digest.update(block.astype("<i4").tobytes())
            counts += np.bincount(block, minlength=len(counts))[: len(counts)]
    tmp.replace(path)
    if not path.stat().st_size:
        return np.zeros(0, seqs.ids.dtype), counts, digest.hexdigest()
    return np.memmap(path, dtype=seqs.ids.dtype, mode="r").view(np.ndarray), counts, digest.hexdigest()


def _pretrain(texts: Texts, out: Path, ranks: Ranks, device: torch.device, *, resume: bool, progress: Progress,
              started: float, start: InitFrom | None) -> PretrainResult:
    cfg, settings = texts.cfg, texts.cfg.train
    record = texts.record
    progress.log(f"language model on {record['reviews']:,} reviews ({record['tokens']:,} tokens) of "
                 f"{', '.join(record['files'])}; {record['heldout_reviews']:,} held out for perplexity; "
                 f"vocabulary {texts.encoder.rows:,} ids")
    if ranks.main:
        artifacts.atomic_write(out / artifacts.TOKENIZER, texts.encoder.to_str())
        artifacts.write_json(out / artifacts.CONFIG, artifacts.lm_config_document(cfg))
    torch.manual_seed(settings.seed)
    model = LanguageModel(cfg.model, cfg.lm, texts.encoder.rows).to(device)
    model.sparse = not ranks.enabled  # DDP all-reduces dense gradients only
    model.set_noise(texts.counts)
    began_from = _start_from(model, start, texts, device, progress) if start is not None else None
    run = LMRun(model, texts, ranks, device)
    if resume and artifacts.has_checkpoint(out):
        run.load(out / artifacts.CHECKPOINT)
        progress.log(f"resuming at epoch {run.epoch + 1}, step {run.step} ({out / artifacts.CHECKPOINT})")
    elif ranks.enabled:
        torch.manual_seed(dropout_seed(settings.seed, ranks))
    run.fit(out / artifacts.CHECKPOINT if ranks.main else None, progress)
    finish(together=True)  # the ranks part here: the rest is rank 0's alone
    if not ranks.main:
        return PretrainResult(out, {}, run.history)
    metrics = _metrics(texts, run, device, started)
    if start is not None:
        metrics["init_from"] = began_from
        known = start.texts_read()  # what any classifier of it must not test on: both texts
        texts.hashes = store.merged_samples([texts.hashes] + ([] if known is None else [known]))
    _save(out, texts, model, metrics, run.history)
    (out / artifacts.CHECKPOINT).unlink(missing_ok=True)
    shutil.rmtree(out / artifacts.DATASET, ignore_errors=True)
    return PretrainResult(out, metrics, run.history)


def _start_from(model: LanguageModel, start: InitFrom, texts: Texts, device: torch.device,
                progress: Progress) -> dict:
    """Load the continued language model's weights into ``model``; what metrics.json says of it,
    with its perplexity on these held-out texts before training (the baseline the run improves on)."""
    model.load_state_dict(start.lm)
    forward, backward, n = perplexity(model, texts.heldout, texts.cfg.lm.bptt, texts.cfg.lm.heldout_tokens, device)
    described = {k: v for k, v in start.describe([]).items() if k != "output_layer"}
    before = _round(math.sqrt(forward * backward)) if n else None
    progress.log(f"continuing the language model {start.path} (held-out perplexity {described['heldout_perplexity']} "
                 f"on its own texts; {before} on these before training)")
    return {**described, "perplexity_here_before": before}


class LMRun:
    """The optimisation: the windows of each epoch, the step, perplexity, checkpoints."""

    def __init__(self, model: LanguageModel, texts: Texts, ranks: Ranks, device: torch.device):
        self.model, self.texts, self.ranks, self.device = model, texts, ranks, device
        self.settings, self.bptt = texts.cfg.train, texts.cfg.lm.bptt
        embedding = [model.embedding.weight]
        dense = [p for name, p in model.named_parameters() if name != "embedding.weight"]
        self.dense = dense if model.sparse else [*embedding, *dense]
        self.optimizers = [torch.optim.Adam(self.dense, lr=self.settings.lr, weight_decay=self.settings.weight_decay)]
        if model.sparse:  # Adam's moments of only the rows a step touched
            self.optimizers.append(torch.optim.SparseAdam(embedding, lr=self.settings.lr))
        self.net = wrap(model, ranks, device)
        self.bf16 = trains_in_bf16(self.settings.precision, device)
        self.windows = (len(texts.train) - 1) // self.bptt  # window w: tokens w * bptt ... w * bptt + bptt
        self.global_batch = self.settings.batch_size * ranks.world
        self.steps = max(1, math.ceil(self.windows / self.global_batch))  # per epoch
        self.epoch = self.step = 0
        self.seconds, self.loss_sum, self.history = 0.0, 0.0, []

    def lr(self, step: int) -> float:
        """ULMFiT's slanted triangular rate at global step ``step``: a tenth of the run rising to
        ``lr``, the rest falling to lr / 32."""
        return self.settings.lr * slanted_triangular(step / (self.steps * self.settings.epochs))

    def batch(self, windows: np.ndarray) -> torch.Tensor:
        starts = windows.astype(np.int64) * self.bptt
        rows = self.texts.train[starts[:, None] + np.arange(self.bptt + 1)[None, :]]  # (B, bptt + 1)
        return torch.from_numpy(rows.astype(np.int64)).to(self.device, non_blocking=True)

    def fit(self, checkpoint: Path | None, progress: Progress) -> None:
        settings = self.settings
        clock = Clock(checkpoint, settings.checkpoint_minutes, self.ranks, self.device)
        while self.epoch < settings.epochs:
            order = np.arange(self.windows, dtype=np.int32 if self.windows < 1 << 31 else np.int64)
            np.random.default_rng([settings.seed, self.epoch]).shuffle(order)  # in place: 4 bytes a window
            began = time.perf_counter() - self.seconds
            self.model.train()
            bar = progress.bar(self.steps, f"epoch {self.epoch + 1}/{settings.epochs}")
            bar.update(self.step)
            while self.step < self.steps:
                loss = self.train_step(order[self.step * self.global_batch: (self.step + 1) * self.global_batch])
                self.step += 1
                self.loss_sum += loss
                bar.update(1)
                bar.set_postfix(loss=f"{self.loss_sum / self.step:.3f}", refresh=False)
                if clock.due(self.step < self.steps):
                    self.seconds = time.perf_counter() - began
                    self.save(checkpoint)
                    clock.saved()
            bar.close()
            self.end_epoch(time.perf_counter() - began, progress)
            self.save(checkpoint)
            clock.saved()

    def train_step(self, global_windows: np.ndarray) -> float:
        mine, padding = shard(global_windows, self.ranks)
        rate = self.lr(self.epoch * self.steps + self.step)
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = rate
            optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.net(self.batch(mine))
        (loss * (0.0 if padding else 1.0)).backward()
        if self.settings.clip_norm:
            nn.utils.clip_grad_norm_([p for p in self.dense if p.grad is not None and not p.grad.is_sparse],
                                     self.settings.clip_norm)
        for optimizer in self.optimizers:
            optimizer.step()
        return float(loss.detach())

    def end_epoch(self, seconds: float, progress: Progress) -> None:
        forward, backward, n = perplexity(self.model, self.texts.heldout, self.bptt, self.texts.cfg.lm.heldout_tokens,
                                          self.device)
        row = {"epoch": self.epoch + 1, "train_loss": round(self.loss_sum / max(1, self.step), 4),
               "heldout_perplexity": _round(math.sqrt(forward * backward) if n else None),
               "forward_perplexity": _round(forward if n else None),
               "backward_perplexity": _round(backward if n else None), "heldout_tokens": n,
               "seconds": round(seconds, 1), "lr": self.lr(self.epoch * self.steps + self.step - 1)}
        self.history.append(row)
        self.epoch, self.step, self.loss_sum, self.seconds = self.epoch + 1, 0, 0.0, 0.0
        where = f"held-out perplexity {row['heldout_perplexity']} (forward {row['forward_perplexity']}, backward " \
                f"{row['backward_perplexity']}; {n:,} tokens)" if n else "no held-out text"
        progress.log(f"epoch {row['epoch']}/{self.settings.epochs}: sampled-softmax loss {row['train_loss']:.3f}, "
                     f"{where}, {seconds:.0f}s")

    def save(self, path: Path | None) -> None:
        """The checkpoint (rank 0; the others' RNG is reseeded on a resume): weights, both
        optimisers' moments, where the run is, and the RNG."""
        if path is None:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        groups = []
        for i, optimizer in enumerate(self.optimizers):
            state, param_groups = optimizer_tensors(optimizer, f"optim{i}")
            tensors.update(state)
            groups.append(param_groups)
        tensors["rng.torch"] = torch.get_rng_state()
        place = {"epoch": self.epoch, "step": self.step, "seconds": self.seconds, "loss_sum": self.loss_sum,
                 "history": self.history, "world": self.ranks.world, "windows": self.windows}
        artifacts.atomic_save_tensors(path, tensors, {"place": json.dumps(place), "param_groups": json.dumps(groups)})

    def load(self, path: Path) -> None:
        try:
            tensors = load_file(path)
            with safe_open(path, "pt") as handle:
                meta = handle.metadata()
            place, groups = json.loads(meta["place"]), json.loads(meta["param_groups"])
            self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            for i, optimizer in enumerate(self.optimizers):
                load_optimizer(optimizer, tensors, f"optim{i}", groups[i])
        except Exception as exc:  # any damage makes the checkpoint unusable; say which file
            raise ArtifactError(f"{path}: unusable checkpoint ({type(exc).__name__}: {exc}); train again without "
                                "--resume") from None
        if place["windows"] != self.windows or (place["step"] and place["world"] != self.ranks.world):
            raise ConfigError(f"{path}: written for other text or another number of processes in the middle of an "
                              "epoch; resume it as it was started")
        self.epoch, self.step, self.seconds = place["epoch"], place["step"], place["seconds"]
        self.loss_sum, self.history = place["loss_sum"], place["history"]
        if self.ranks.main:
            torch.set_rng_state(tensors["rng.torch"].clone())
        else:
            torch.manual_seed(dropout_seed(self.settings.seed, self.ranks, self.epoch))


def perplexity(model: LanguageModel, stream: np.ndarray, bptt: int, most: int, device: torch.device,
               batch: int = 64) -> tuple[float, float, int]:
    """Each direction's perplexity under the full softmax over the first windows of ``stream``
    (at most ``most`` predictions a direction), and how many predictions that was."""
    windows = min((len(stream) - 1) // bptt, max(1, most // bptt))
    if len(stream) <= bptt:
        return float("nan"), float("nan"), 0
    model.eval()
    sums, n = [0.0, 0.0], 0
    for start in range(0, windows, batch):
        starts = np.arange(start, min(start + batch, windows), dtype=np.int64) * bptt
        rows = torch.from_numpy(stream[starts[:, None] + np.arange(bptt + 1)[None, :]].astype(np.int64)).to(device)
        forward, backward, count = model.log_likelihood(rows)
        sums[0], sums[1], n = sums[0] + forward, sums[1] + backward, n + count
    model.train()
    return math.exp(sums[0] / n), math.exp(sums[1] / n), n


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 2)


def _metrics(texts: Texts, run: LMRun, device: torch.device, started: float) -> dict:
    last = run.history[-1] if run.history else {}
    return {"kind": artifacts.LM_KIND, "heldout_perplexity": last.get("heldout_perplexity"),
            "forward_perplexity": last.get("forward_perplexity"), "backward_perplexity": last.get("backward_perplexity"),
            "heldout_tokens_scored": last.get("heldout_tokens"), "epochs_run": run.epoch,
            "texts": texts.record, "train_seconds": round(sum(row["seconds"] for row in run.history), 1),
            "seconds": round(time.perf_counter() - started, 1), "hardware": hardware(device),
            "precision": "bf16" if run.bf16 else "fp32", "processes": run.ranks.world,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "train_hashes": {"reviews": texts.record["reviews"], "kept": len(texts.hashes[0]),
                             "bound": texts.hashes[1]}}


def _save(out: Path, texts: Texts, model: LanguageModel, metrics: dict, history: list[dict]) -> None:
    """metrics.json, history.csv and the training reviews' fingerprints, then the model, its weights last."""
    artifacts.write_json(out / artifacts.METRICS, metrics)
    if history:
        artifacts.write_csv(out / artifacts.HISTORY, history)
    artifacts.write_npy(out / artifacts.TRAIN_HASHES, texts.hashes[0])
    artifacts.save_lm(out, texts.cfg, texts.encoder, {k: v.detach().cpu() for k, v in model.state_dict().items()})
