"""The ground floor: config schema and loader, errors, constants, files, HamNoSys
head data, the annotation reader, plots and statistics. Imports nothing of the rest."""
