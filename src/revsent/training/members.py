"""Bags: ``cfg.model.members`` LSTM branches, each trained apart by :func:`~.loop.fit` on its own
validation slice, then averaged into one model. One member is the model itself.

Member i trains on the training rows its mask (``RunData.masks``) leaves out and is validated on
the rows it marks, at seed + i. Early stopping runs on member 0, whose best epoch is then the
most epochs the others run (each keeps its best on its own slice): the epochs past the best that
patience costs are spent once, not once per member. A bag's n-gram branches share one idf, that
of the whole training part (no labels are read for it), so the bag's logits, the mean of its
branches' plus the mean of their n-gram branches, are exactly the mean of its members' logits.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import artifacts
from ..data.parts import RunData
from ..model import SentimentLSTM
from ..ngrams import NgramFeatures, WideTable, fit_table
from ..progress import Progress
from .checkpoint import load_member, save_member
from .distributed import SINGLE, Ranks
from .inputs import ngram_part
from .loop import fit
from .state import FitState


def fit_members(data: RunData, *, device: torch.device, progress: Progress, out: Path | None = None,
                resume: bool = False, ranks: Ranks = SINGLE,
                start: list[dict[str, torch.Tensor]] | None = None) -> tuple[SentimentLSTM, list[FitState]]:
    """The model of ``data.cfg``, its members trained one after another. With ``out``, checkpoints
    go there and each finished member is kept in ``out/.members`` until the run ends, so that
    ``resume`` goes on from them. ``start`` (``InitFrom.readers``): the weights each member's LSTM
    branch starts from (fine-tuning); what they leave out keeps its fresh initialisation."""
    cfg, n_classes = data.cfg, len(data.classes)
    k, seed = cfg.model.members, cfg.train.seed
    features = NgramFeatures.of(cfg.model)
    shared = k > 1 and features is not None and features.weighting == "tfidf"
    table = fit_table(ngram_part(data.train, cfg.model).seqs, features, cfg.model.ngram_min_df) if shared else None
    members, states = [], []
    for i in range(k):
        member_cfg = cfg.with_settings(members=1, seed=seed + i)
        if i:  # member 0 starts from the run's seed, as a single model does
            torch.manual_seed(member_cfg.train.seed)
            if cfg.train.patience and states[0].best_epoch:  # member 0 found how long to train: not again
                member_cfg = member_cfg.with_settings(epochs=states[0].best_epoch)
        member = SentimentLSTM(member_cfg.model, n_classes, data.encoder.rows)
        if start is not None:
            member.readers[0].load_state_dict(start[i], strict=False)
        member.to(device)
        fit_part, val_part = data.member(i)
        if k > 1:
            progress.log(f"member {i + 1} of {k}: {len(fit_part)} training, {len(val_part)} validation reviews, "
                         f"seed {member_cfg.train.seed}")
        finished = None if out is None or k == 1 else out / artifacts.MEMBERS / f"member{i}.safetensors"
        if resume and finished is not None and finished.exists():
            state = load_member(finished, member, device)
            progress.log(f"member {i + 1}: finished before, taken from {finished}")
        else:
            checkpoint = None if out is None else out / artifacts.CHECKPOINT
            under_way = resume and checkpoint is not None and checkpoint.exists()  # this member's, half done
            state = fit(member, member_cfg, fit_part, val_part, device=device, progress=progress,
                        checkpoint=checkpoint, resume=under_way, ranks=ranks, table=table, unlabelled=data.unlabelled)
            if finished is not None and ranks.main:
                save_member(finished, member, state)
                checkpoint.unlink(missing_ok=True)  # the next member's checkpoint starts afresh
        members.append(member)
        states.append(state)
    model = members[0] if k == 1 else averaged(cfg, n_classes, members, device, table)
    return model.round_as_stored(), states  # float16 where large, as the model file holds it


def averaged(cfg, n_classes: int, members: list[SentimentLSTM], device: torch.device,
             table: WideTable | None) -> SentimentLSTM:
    """One model holding every member's LSTM branch, and the mean of their n-gram branches (over
    one ``table``, the whole training part's)."""
    model = SentimentLSTM(cfg.model, n_classes, members[0].words).to(device)
    for reader, member in zip(model.readers, members):
        reader.load_state_dict(member.readers[0].state_dict())
    if table is not None:
        mean = lambda name: torch.stack([getattr(member, name) for member in members]).mean(dim=0).cpu().numpy()  # noqa: E731
        model.set_wide(table, mean("wide_weight"), mean("wide_bias"))
    return model


def member_history(states: list[FitState]) -> list[dict]:
    """The epochs' rows; with several members, each row says whose it is."""
    if len(states) == 1:
        return states[0].history
    return [{"member": i + 1, **row} for i, state in enumerate(states) for row in state.history]
