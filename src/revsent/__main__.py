"""`python -m revsent ...`, as torchrun starts it: `torchrun --nproc-per-node 2 -m revsent train DATASET ...`."""
from .cli import main

main()
