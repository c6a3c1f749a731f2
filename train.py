"""The authors' entry point: ``python train.py --dataset 'movingmnist' ...`` (same flags as
``swinlstm train``; see ``python train.py --help``)."""

from swinlstm.cli.train import main

if __name__ == "__main__":
    main()
