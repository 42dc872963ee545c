"""The ground floor's small shared helpers: errors, command-line running, constants,
files, landmark point names, the annotation reader and the label statistics command.
Beside `config/`; imports nothing of the floors above."""
