"""swinlstm: spatiotemporal prediction with SwinLSTM, ConvLSTM and LMC-Memory."""

__version__ = "0.1.0"
