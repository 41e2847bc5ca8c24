"""Reading review data and the datasets built from it.

    sources, yelp, sample   files and bundled samples -> rows
    records                 rows -> records (text, label), with the label schemes and tallies
    labelled                records read whole into memory (small data, the benchmarks)
    splits                  the training / held-out split and the validation slices, as masks
    build                   records -> a prepared dataset on disk (``revsent prepare``)
    store                   opening a prepared dataset: memory maps checked against its manifest
    parts                   the data of one run, built once: the dataset cut into its parts
"""
from .labelled import Labelled, read_labelled
from .records import Record, RecordReader, Tally
from .splits import split

__all__ = ["Labelled", "Record", "RecordReader", "Tally", "read_labelled", "split"]
