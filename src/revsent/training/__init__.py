"""Training: from a run's data to a model directory, and the search over settings.

    run.py          train(): the whole run: data, the fit, the test part scored once, the model directory
    loop.py         fit(): the plain epoch loop of one model (epochs -> batches -> step -> validate)
    inputs.py       what the loop is given, prepared once: class weights, the n-gram branch, its offsets
    selection.py    the best weights by validation loss, and patience
    regularisers.py adversarial training's second pass, weight averaging
    checkpoint.py   the checkpoint codec, timed checkpoints, a bag's finished members
    members.py      bags: several LSTM branches trained apart, then averaged
    init_from.py    the model a run starts from (--init-from), read once
    schedule.py     ULMFiT's fine-tuning schedule: the slanted triangular rate, gradual unfreezing
    pretrain.py     pretrain(): a language model of review text (revsent pretrain)
    word_vectors.py PPMI + SVD word vectors of the training texts, the embedding's start
    distributed.py  torchrun + DistributedDataParallel
    tune.py         Optuna's search over settings, then the best trained once
"""
from .run import TrainResult, train

__all__ = ["TrainResult", "train"]
