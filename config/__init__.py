"""The config: its schema (one section per YAML section), the loader that reads and
validates a file (with HearAI's keys translated), and the reference page generator.

On the ground floor beside `utils/`: every floor above reads the config object.
"""
