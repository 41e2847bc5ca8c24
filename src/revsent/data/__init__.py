"""Reading review data: files -> rows -> records -> labelled data."""
from .dataset import Labelled, read_labelled, split
from .records import Record, RecordReader, Tally

__all__ = ["Labelled", "Record", "RecordReader", "Tally", "read_labelled", "split"]
