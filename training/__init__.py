"""Training with Lightning: the LightningModules, DataModule, callbacks, transfer,
loggers and the run. Every Lightning import of signpipe lives here."""
